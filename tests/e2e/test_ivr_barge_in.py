"""Barge-in on the real Asterisk: a key pressed during a menu's prompt cuts it short (one `playbacks.stop`), and a
key pressed after the prompt has ended costs no stop request (the full-path call's case)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ControllerProcess, demo_config
from tests.sipp import Caller, Dtmf, Pause, WaitForBye

pytestmark = pytest.mark.e2e
LONG_PROMPT_DID, SHORT_PROMPT_DID = "4008006001", "4008006002"

# Sound files named by their folder: the sandbox's sounds/en is a link that resolves only inside its chroot.
FLOW = """
flow: barge{n}
language: en
dids: ["{did}"]
nodes:
  menu: {{type: menu, prompt: [{{sound: en_US_f_Allison/silence/{seconds}}}], options: {{"1": after}}, timeout: 5,
         retries: 1, default: bye}}
  after: {{type: play, prompts: [{{sound: en_US_f_Allison/beep}}], next: wait}}
  wait: {{type: play, prompts: [{{sound: en_US_f_Allison/silence/3}}], next: bye}}
  bye: {{type: hangup}}
"""


async def playback_stops(process: ControllerProcess) -> int:
    status, text = await process.api("GET", "/metrics")
    assert status == 200, text
    match = re.search(r'ccc_ari_requests_total\{operation="playbacks.stop"\} ([0-9.e+]+)', str(text))
    return int(float(match.group(1))) if match else 0


def of_kind(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


async def test_a_key_cuts_a_playing_prompt_short_and_none_is_stopped_after_it_ended(fresh_asterisk: Path,
                                                                                   tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    for n, (did, seconds) in enumerate([(LONG_PROMPT_DID, 10), (SHORT_PROMPT_DID, 1)]):
        (flows / f"barge{n}.yaml").write_text(FLOW.format(n=n, did=did, seconds=seconds))
    process = ControllerProcess(tmp_path / "data", config=demo_config(tmp_path, ivr={"flows_dir": str(flows)}))
    await process.start()
    try:
        # 10 s prompt, key 1 after 1.5 s: the prompt is stopped, the next one (a 0.4 s beep) plays at once.
        result = await Caller(LONG_PROMPT_DID, steps=[Pause(1500), Dtmf("1"), WaitForBye(30_000)]).run()
        assert result.ok, result.output + result.errors
        (record,) = await process.wait_for_records(1)
        events = (await process.call_record(record["call_id"]))["events"]
        menu_playback, beep_playback, _ = of_kind(events, "playback")
        assert menu_playback["state"] == "interrupted", events
        assert beep_playback["state"] == "done", events
        (key,) = of_kind(events, "input")
        assert key["value"] == "1"
        # Without the stop, the beep would wait behind the rest of the 10 s prompt (about 8.5 s).
        assert beep_playback["at"] - key["at"] < 3.0, events
        assert await playback_stops(process) == 1

        # 1 s prompt, key 1 after 2 s: the prompt has finished, no stop request goes out.
        result = await Caller(SHORT_PROMPT_DID, steps=[Pause(2000), Dtmf("1"), WaitForBye(30_000)]).run()
        assert result.ok, result.output + result.errors
        second = next(r for r in await process.wait_for_records(2) if r["call_id"] != record["call_id"])
        events = (await process.call_record(second["call_id"]))["events"]
        assert [e["state"] for e in of_kind(events, "playback")] == ["done", "done", "done"], events
        assert [e["value"] for e in of_kind(events, "input")] == ["1"], events
        assert await playback_stops(process) == 1  # still the first call's only
    finally:
        process.terminate()
        print(process.log.read_text()[-3000:])
