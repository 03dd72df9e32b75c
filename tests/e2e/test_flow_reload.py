"""Hot reload on the real Asterisk: a call in progress keeps its flow version, new calls get the new
one, and a broken file is refused while the old version goes on serving calls."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ControllerProcess, demo_config
from tests.e2e.test_foundation import _channel_in_context, ccctl, wait_until
from tests.e2e.test_ivr_acd import events_of, flows_dir, kinds, stop_after  # noqa: F401 (fixture)
from tests.sipp import Caller, Pause, WaitForBye

pytestmark = pytest.mark.e2e
RELOAD_DID = "4008006666"


def flow(version: str) -> str:
    """A flow that keeps the caller a few seconds in a menu (no key pressed) between two prompts."""
    return f"""flow: reloadtest
language: en
dids: ["{RELOAD_DID}"]
nodes:
  first: {{type: play, prompts: ["{version} first"], next: ask}}
  ask: {{type: menu, prompt: ["{version} menu"], options: {{"1": second}}, timeout: 2, retries: 2,
         default: second}}
  second: {{type: play, prompts: ["{version} second"], next: bye}}
  bye: {{type: hangup}}
"""


async def prompts_of(process: ControllerProcess, call_id: str) -> list[str]:
    return [str(e["text"]) for e in kinds(await events_of(process, call_id), "prompt")]


async def wait_for_node(process: ControllerProcess, node: str, timeout: float = 20) -> str:
    """The id of the first live call that has entered `node`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in await process.call_records():
            if call.get("ended_at") is None and node in [e["node"] for e in kinds(
                    await events_of(process, call["call_id"]), "node")]:
                return str(call["call_id"])
        await asyncio.sleep(0.2)
    raise AssertionError(f"no call reached node {node!r}")


async def wait_for_version(process: ControllerProcess, text: str, timeout: float = 10) -> None:
    """Until /api/flows says the flow's live version is `text` (its SHA-256 prefix)."""
    version = hashlib.sha256(text.encode()).hexdigest()[:12]
    deadline = time.monotonic() + timeout
    while True:
        _, body = await process.api("GET", "/api/flows")
        live = {f["id"]: f["version"] for f in body["flows"]}
        if live.get("reloadtest") == version:
            return
        assert time.monotonic() < deadline, f"the flow was not reloaded: {live}"
        await asyncio.sleep(0.2)


async def test_reload_keeps_calls_in_progress_on_their_version_and_refuses_a_broken_file(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    flows = flows_dir(tmp_path, "always")
    path = flows / "reloadtest.yaml"
    path.write_text(flow("one"))
    process = ControllerProcess(tmp_path / "data", config=demo_config(tmp_path, ivr={"flows_dir": str(flows)}))
    await process.start()
    stop_after.append(process)

    first_caller = Caller(RELOAD_DID, steps=[WaitForBye(30000)])
    await first_caller.start()
    first_call = await wait_for_node(process, "ask")       # in the menu, on version one
    path.write_text(flow("two"))
    assert process.process is not None
    process.process.send_signal(signal.SIGHUP)              # `systemctl reload` does this
    await wait_for_version(process, flow("two"))
    second = await Caller(RELOAD_DID, steps=[WaitForBye(30000)]).run()
    assert second.ok, second.output + second.errors
    assert (await first_caller.wait()).ok
    records = {r["call_id"]: r for r in await process.wait_for_records(2)}
    (second_call,) = set(records) - {first_call}
    assert [p for p in await prompts_of(process, first_call) if "first" in p or "second" in p] == \
        ["tts en 'one first'", "tts en 'one second'"]        # finished on the version it started with
    assert [p for p in await prompts_of(process, second_call) if "first" in p or "second" in p] == \
        ["tts en 'two first'", "tts en 'two second'"]

    path.write_text(flow("three").replace("type: hangup", "type: hang_up"))
    status, body = await process.api("POST", "/api/flows/reload")
    assert status == 422 and not body["ok"], body
    assert any(f"{path}:9:" in error and "unknown type 'hang_up'" in error for error in body["errors"]), body
    third = await Caller(RELOAD_DID, steps=[WaitForBye(30000)]).run()
    assert third.ok, third.output + third.errors
    (third_call,) = {r["call_id"] for r in await process.wait_for_records(3)} - {first_call, second_call}
    assert "tts en 'two first'" in await prompts_of(process, third_call)  # the old version still serves
    await wait_for_version(process, flow("two"), timeout=0)


async def test_a_broken_flow_at_start_up_is_reported_and_calls_get_the_fallback_route(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "reloadtest.yaml").write_text(flow("one").replace("type: hangup", "type: hang_up"))
    process = ControllerProcess(tmp_path / "data", config=demo_config(tmp_path, ivr={"flows_dir": str(flows)},
                                                                      dids={}))  # no hotline here
    await process.start()
    stop_after.append(process)
    health = await process.health()
    assert health == {"status": "degraded", "ari_connected": True, "prompts_ready": True,  # public: no paths
                      "nodes": {"default": "up"}}, health
    details = await process.status()
    assert details is not None and (details["flows"]["live"], details["flows"]["errors"]) == (0, 1), details
    status = await asyncio.to_thread(ccctl, process.url, "status")
    assert "IVR flows   0 live; NONE LIVE, calls get the fallback route; 1 errors" in status.stdout, status.stdout
    assert "unknown type 'hang_up'" in status.stdout

    caller = Caller(RELOAD_DID, steps=[Pause(14000)])  # the default greeting (8.5 s), then the dialplan
    await caller.start()
    channel = await wait_until(lambda: _channel_in_context("ccc-fallback"), timeout=13)
    assert channel["dialplan"]["exten"] == RELOAD_DID
    assert (await caller.wait()).ok
    (record,) = await process.wait_for_records(1)
    assert record["end_reason"] == "fallback"


MALFORMED_FLOWS = {  # each used to raise out of the loader: SIGHUP then ended the controller's calls
    "start: [greeting]": ("flow: reloadtest\nstart: [greeting]\nnodes:\n  greeting: {type: hangup}\n",
                          2, 8, "start: expected a node id, got ['greeting']"),
    "a recursive alias": ("flow: reloadtest\nnodes: &n\n  x: *n\n", 3, 3,
                          "YAML: a recursive alias: nodes.x contains itself"),
    "a deeply nested expression": ("flow: reloadtest\nnodes:\n  s: {type: switch, cases: [{when: '" + "(" * 3000
                                   + "1" + ")" * 3000 + "', next: h}], default: h}\n  h: {type: hangup}\n", 3, 36,
                                   "switch 's': the expression nests too deeply"),
}


async def test_malformed_flow_files_are_refused_and_the_controller_and_live_calls_go_on(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    flows = flows_dir(tmp_path, "always")
    path = flows / "reloadtest.yaml"
    version_one = flow("one").replace("timeout: 2", "timeout: 6")  # the caller stays ~12 s in the menu
    path.write_text(version_one)
    process = ControllerProcess(tmp_path / "data", config=demo_config(tmp_path, ivr={"flows_dir": str(flows)}))
    await process.start()
    stop_after.append(process)
    caller = Caller(RELOAD_DID, steps=[WaitForBye(40000)])
    await caller.start()
    live_call = await wait_for_node(process, "ask")
    assert process.process is not None

    for case, (text, line, column, message) in MALFORMED_FLOWS.items():
        path.write_text(text)
        process.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while f"{path}:{line}:{column}: {message}" not in process.log.read_text():  # the SIGHUP reload logs it
            assert process.process.poll() is None, f"{case}: the controller ended after SIGHUP"
            assert time.monotonic() < deadline, (case, process.log.read_text()[-2000:])
            await asyncio.sleep(0.2)
        health = await process.health()
        assert health is not None and health["status"] == "ok", (case, health)
        status, body = await process.api("POST", "/api/flows/reload")  # ... and so does the API, as a 422
        assert status == 422 and not body["ok"], (case, status, body)
        assert any(error.startswith(f"{path}:{line}:{column}: {message}") for error in body["errors"]), \
            (case, body["errors"])
        assert process.process.poll() is None, case
        await wait_for_version(process, version_one, timeout=0)   # the old version stays live

    assert (await caller.wait()).ok                               # the live call finished on its version
    assert [p for p in await prompts_of(process, live_call) if "first" in p or "second" in p] == \
        ["tts en 'one first'", "tts en 'one second'"]
    (record,) = await process.wait_for_records(1)
    assert record["end_reason"] != "fallback", record
    next_caller = await Caller(RELOAD_DID, steps=[WaitForBye(40000)]).run()   # new calls: still version one
    assert next_caller.ok, next_caller.output + next_caller.errors
    (new_call,) = {r["call_id"] for r in await process.wait_for_records(2)} - {live_call}
    assert "tts en 'one first'" in await prompts_of(process, new_call)
