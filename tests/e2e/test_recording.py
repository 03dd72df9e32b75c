"""Call recording on the real Asterisk: one mixed file, a paused span of silence, the index, access, ccctl."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_TOKEN, REPO, ControllerProcess
from tests.e2e.test_call_control import start, wait_for_state
from tests.e2e.test_ivr_acd import ACD_DID, login, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e
AGENT_1001, AGENT_1002 = "demo-agent-1001-token", "demo-agent-1002-token"


def rms(path: Path, start: float, length: float) -> float:
    """The RMS amplitude of a span of a WAV file (sox's `stat`)."""
    result = subprocess.run(["sox", str(path), "-n", "trim", f"{start}", f"{length}", "stat"],
                            capture_output=True, text=True, check=True)
    line = next(row for row in result.stderr.splitlines() if row.startswith("RMS     amplitude"))
    return float(line.split(":")[1])


def duration(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


def ccctl(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli.main", "--url", url, "--token", ADMIN_TOKEN, *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


async def test_recorded_call_keeps_silence_where_it_was_paused(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path, recording="always")
    stop_after.append(process)
    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=9000, talk=True)  # 7 s of speech, then hangs up
    await agent_phone.start()
    await login(process, "1001")
    caller = Caller(ACD_DID, steps=[WaitForBye(40000)])
    call_placed = time.monotonic()
    await caller.start()
    call_id = (await wait_for_state(process, "1001", "talking"))["current_call"]
    await asyncio.sleep(1.5)
    assert (await process.api("POST", f"/api/calls/{call_id}/recording/pause", token=AGENT_1002))[0] == 403
    pause_sent = time.monotonic()
    status, body = await process.api("POST", f"/api/calls/{call_id}/recording/pause", token=AGENT_1001)
    pause_answered = time.monotonic()
    assert (status, body["state"]) == (200, "paused"), body
    assert (await process.api("POST", f"/api/calls/{call_id}/recording/pause"))[0] == 409
    await asyncio.sleep(2.5)
    resume_sent = time.monotonic()
    status, body = await process.api("POST", f"/api/calls/{call_id}/recording/resume", token=AGENT_1001)
    resume_answered = time.monotonic()
    assert (status, body["state"]) == (200, "recording"), body
    assert (await caller.wait()).ok
    await process.wait_for_records(1)  # the recording's row is complete before the call's record is closed

    _, found = await process.api("GET", f"/api/recordings?call_id={call_id}")
    (row,) = found["recordings"]
    assert (row["queue"], row["agents"], row["reason"]) == ("general", ["1001"], "queue_policy")
    (pause,) = row["pauses"]
    # The pause starts 1.5 s after the agent answered at least, and no later than the pause command was
    # answered (the recording cannot have started before the call); it lasts as long as the test saw
    # (give or take the offsets' rounding to the millisecond).
    assert 1.3 <= pause[0] <= pause_answered - call_placed, (row, pause_answered - call_placed)
    assert resume_sent - pause_answered - 0.002 <= pause[1] - pause[0] <= resume_answered - pause_sent + 0.002, \
        (row, resume_sent - pause_answered, resume_answered - pause_sent)
    wav = Path(row["file"])
    assert wav.exists()
    assert abs(duration(wav) - row["duration"]) <= 1.0, (duration(wav), row)
    assert rms(wav, pause[0] + 0.3, pause[1] - pause[0] - 0.6) < 0.001  # nothing while paused
    assert rms(wav, pause[1] + 0.3, 1.5) > 0.005  # the agent's speech after the pause

    # Access: the agent on the call may fetch it, another agent may not.
    assert (await process.api("GET", f"/api/recordings/{row['id']}", token=AGENT_1001))[0] == 200
    assert (await process.api("GET", f"/api/recordings/{row['id']}", token=AGENT_1002))[0] == 403
    assert (await process.api("GET", "/api/recordings/999999"))[0] == 404
    _, mine = await process.api("GET", "/api/recordings", token=AGENT_1002)
    assert mine["recordings"] == []

    listing = await asyncio.to_thread(ccctl, process.url, "recordings", "list", "--agent", "1001", "--json")
    assert [r["id"] for r in json.loads(listing.stdout)["recordings"]] == [row["id"]]
    shown = await asyncio.to_thread(ccctl, process.url, "recordings", "show", str(row["id"]))
    assert "paused" in shown.stdout and call_id in shown.stdout
    target = tmp_path / "exported.wav"
    exported = await asyncio.to_thread(ccctl, process.url, "recordings", "export", str(row["id"]), "--out",
                                       str(target))
    assert exported.returncode == 0 and target.read_bytes() == wav.read_bytes()
    missing = await asyncio.to_thread(ccctl, process.url, "recordings", "show", "424242")
    assert missing.returncode == 1 and "no recording" in missing.stderr


async def test_a_flow_that_records_always_records_from_the_start(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)  # the queue records on demand only
    stop_after.append(process)
    flow = tmp_path / "flows" / "acdtest.yaml"
    flow.write_text(flow.read_text().replace("language: zh\n", "language: zh\nrecording: always\n"))
    status, body = await process.api("POST", "/api/flows/reload")
    assert status == 200, body
    agent_phone = Phone(15001, answer_after_ms=300, hold_ms=2000)
    await agent_phone.start()
    await login(process, "1001")
    assert (await Caller(ACD_DID, steps=[WaitForBye(60_000)]).run()).ok
    await process.wait_for_records(1)  # the recording's row is complete before the call's record is closed
    _, found = await process.api("GET", "/api/recordings")
    (row,) = found["recordings"]
    assert (row["reason"], row["queue"], row["agents"]) == ("flow_policy", None, ["1001"])
    wav = Path(row["file"])
    assert wav.exists() and wav.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert abs(duration(wav) - row["duration"]) <= 1.0
