"""CTI end to end: the event WebSocket, resume by sequence number, role scoping, webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
from aiohttp import web

from controller.plugins.cti.schemas import all_schemas
from tests.e2e.conftest import ADMIN_TOKEN, REPO, ControllerProcess, free_port, hang_up_everything
from tests.sipp import Caller, Pause

pytestmark = pytest.mark.e2e
DID = "4008001234"
SECRET = "webhook-test-secret"


def config_with_webhook(tmp_path: Path, receiver_port: int, types: str = '["call.*"]',
                        max_attempts: int = 5) -> Path:
    text = (REPO / "demo/controller.yaml").read_text().replace("../ivr_flows", str(REPO / "ivr_flows"))
    text += f"""
webhooks:
  - name: crm
    url: http://127.0.0.1:{receiver_port}/events
    secret: {SECRET}
    types: {types}
    max_attempts: {max_attempts}
"""
    path = tmp_path / "controller.yaml"
    path.write_text(text)
    return path


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    event: dict[str, Any]
    status: int  # what the receiver answered


class Receiver:
    """A CRM's webhook endpoint that can be taken down and brought back, or refuse some events.

    It only records what it got (and answers `refuse(event)` or 204): the tests check the record,
    so a wrong header fails the test instead of becoming a 500 the controller retries forever.
    """

    def __init__(self, port: int, refuse: Callable[[dict[str, Any]], int | None] = lambda event: None) -> None:
        self.port = port
        self.refuse = refuse
        self.deliveries: list[Delivery] = []
        self.runner: web.AppRunner | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events taken (answered 2xx), in arrival order."""
        return [d.event for d in self.deliveries if d.status < 300]

    def problems(self) -> list[str]:
        """Each delivery whose signature or headers do not match its body."""
        found = []
        for d in self.deliveries:
            expected = "sha256=" + hmac.new(SECRET.encode(), d.body, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, d.headers.get("X-CCC-Signature", "")):
                found.append(f"seq {d.event.get('seq')}: bad signature")
            if d.headers.get("X-CCC-Seq") != str(d.event.get("seq")):
                found.append(f"seq {d.event.get('seq')}: X-CCC-Seq {d.headers.get('X-CCC-Seq')}")
            if d.headers.get("X-CCC-Event") != d.event.get("type"):
                found.append(f"seq {d.event.get('seq')}: X-CCC-Event {d.headers.get('X-CCC-Event')}")
        return found

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event = json.loads(body)
        status = self.refuse(event) or 204
        self.deliveries.append(Delivery(dict(request.headers), body, event, status))
        return web.Response(status=status)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/events", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self.runner:
            await self.runner.cleanup()
            self.runner = None


async def read_events(ws: aiohttp.ClientWebSocketResponse, until: str, timeout: float = 20) -> list[dict]:  # type: ignore[type-arg]
    events = []
    async with asyncio.timeout(timeout):
        async for message in ws:
            event = json.loads(message.data)
            if event.get("type") == "hello":
                continue
            events.append(event)
            if event["type"] == until:
                return events
    return events


async def test_websocket_stream_resume_and_schemas(controller: ControllerProcess) -> None:
    schemas = all_schemas()
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{controller.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}") as ws:
            result = await Caller(DID, caller="13800138000", steps=[Pause(2000)]).run()
            assert result.ok, result.output
            events = await read_events(ws, until="call.ended")
        types = [e["type"] for e in events]
        assert types[0] == "call.offered" and types[-1] == "call.ended"
        assert events[0]["data"]["caller"] == "13800138000" and events[0]["data"]["did"] == DID
        assert events[-1]["data"]["cause"] == 16
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        for event in events:
            jsonschema.validate(event, schemas[event["type"]])
        assert len({e["call_id"] for e in events}) == 1

        # A client that was away resumes from the last sequence number it processed: nothing is missed.
        first = events[0]["seq"]
        async with http.ws_connect(f"{controller.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}"
                                   f"&since={first}") as ws:
            replayed = await read_events(ws, until="call.ended", timeout=5)
        assert [e["seq"] for e in replayed] == seqs[1:]

        # An agent's token sees only that agent's events: none of this unassigned call, but its own
        # log-in (so the filter lets the right things through); a filter narrows the stream by type.
        status, body = await controller.api("POST", "/api/agents/1001/login", json={"ready": False})
        assert status == 200, body
        async with asyncio.timeout(5):  # events go out once committed, a moment after the API answers
            while not (await controller.api("GET", "/api/events?since=0", token="demo-agent-1001-token"))[1]["events"]:
                await asyncio.sleep(0.05)
        status, body = await controller.api("GET", "/api/events?since=0", token="demo-agent-1001-token")
        assert status == 200, body
        assert {(e["type"], e["agent_id"]) for e in body["events"]} == {("agent.state_changed", "1001")}
        status, everything = await controller.api("GET", "/api/events?since=0")
        assert {e["call_id"] for e in everything["events"]} >= {events[0]["call_id"]}
        status, body = await controller.api("GET", "/api/events?since=0&types=call.ended")
        assert [e["type"] for e in body["events"]] == ["call.ended"]
        status, body = await controller.api("GET", "/api/events?since=abc")
        assert status == 400


async def test_websocket_needs_a_valid_token(controller: ControllerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            async with http.ws_connect(f"{controller.url.replace('http', 'ws')}/ws?token=wrong"):
                pass
        assert refused.value.status == 401


async def test_webhooks_are_signed_and_survive_the_receiver_being_down(fresh_asterisk: Path,
                                                                        tmp_path: Path) -> None:
    receiver = Receiver(free_port())
    controller = ControllerProcess(tmp_path / "data", config=config_with_webhook(tmp_path, receiver.port))
    await controller.start()
    try:
        await receiver.up()
        assert (await Caller(DID, steps=[Pause(1000)]).run()).ok
        await _wait_for(lambda: len(receiver.events) >= 2)
        await receiver.down()  # the CRM goes down; calls go on
        for _ in range(2):
            assert (await Caller(DID, steps=[Pause(800)]).run()).ok
        await asyncio.sleep(2)
        assert len(receiver.events) == 2
        await receiver.up()  # back: every event arrives, in order, none twice
        await _wait_for(lambda: len(receiver.events) >= 6, timeout=30)
        types = [e["type"] for e in receiver.events]
        assert types == ["call.offered", "call.ended"] * 3
        seqs = [e["seq"] for e in receiver.events]
        assert seqs == sorted(seqs) and len(set(seqs)) == 6
        assert receiver.problems() == []
    finally:
        controller.terminate()
        await receiver.down()


async def _wait_for(predicate, timeout: float = 15) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)


class WsClient:
    """A /ws client that keeps every event it gets and, reconnecting, resumes from the last one."""

    def __init__(self, http: aiohttp.ClientSession) -> None:
        self.http = http
        self.events: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None

    def follow(self, controller: ControllerProcess) -> None:
        since = self.events[-1]["seq"] if self.events else 0
        self.task = asyncio.create_task(self._read(f"{controller.url.replace('http', 'ws')}/ws?token={ADMIN_TOKEN}"
                                                   f"&since={since}"))

    async def _read(self, url: str) -> None:
        async with self.http.ws_connect(url) as ws:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                event = json.loads(message.data)
                if event["type"] != "hello":
                    self.events.append(event)

    async def stopped(self) -> None:
        assert self.task is not None
        async with asyncio.timeout(10):
            await asyncio.gather(self.task, return_exceptions=True)


def ended_calls(events: list[dict[str, Any]]) -> list[str]:
    return [e["call_id"] for e in events if e["type"] == "call.ended"]


async def metric(controller: ControllerProcess, name: str) -> float:
    status, text = await controller.api("GET", "/metrics")
    assert status == 200
    return next(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


class Watched:
    """A controller whose every event goes to a webhook receiver and to a /ws client that follows it
    across restarts (resuming with since), on one data directory."""

    def __init__(self, tmp_path: Path, http: aiohttp.ClientSession) -> None:
        self.receiver = Receiver(free_port())
        self.config = config_with_webhook(tmp_path, self.receiver.port, types="[]")
        self.data = tmp_path / "data"
        self.client = WsClient(http)
        self.controller = ControllerProcess(self.data, config=self.config)

    async def start(self) -> None:
        """Start (again, after a stop or a kill) and have the client resume."""
        self.controller = ControllerProcess(self.data, config=self.config)
        await self.controller.start()
        self.client.follow(self.controller)

    def assert_gap_free(self) -> None:
        """Both saw 1, 2, 3… (the webhook from where it started), each number one event, signed."""
        ws_seqs = [e["seq"] for e in self.client.events]
        assert ws_seqs == list(range(1, len(ws_seqs) + 1)), ws_seqs
        # A kill between a receiver's answer and the cursor's commit sends that one event again (README
        # "webhooks": receivers de-duplicate by X-CCC-Seq): a repeat is the same event, right after itself,
        # at most one per kill (this test kills twice).
        events = self.receiver.events
        repeats = [(earlier, later) for earlier, later in itertools.pairwise(events) if earlier["seq"] == later["seq"]]
        assert len(repeats) <= 2 and all((earlier["type"], earlier["call_id"]) == (later["type"], later["call_id"])
                                         for earlier, later in repeats), repeats
        hook_seqs = [e["seq"] for i, e in enumerate(events) if i == 0 or e["seq"] != events[i - 1]["seq"]]
        assert hook_seqs == list(range(hook_seqs[0], hook_seqs[0] + len(hook_seqs))), hook_seqs
        by_seq = {e["seq"]: (e["type"], e["call_id"]) for e in self.client.events}
        assert all(by_seq[e["seq"]] == (e["type"], e["call_id"]) for e in self.receiver.events)
        assert self.receiver.problems() == []


@pytest.fixture
async def watched(fresh_asterisk: Path, tmp_path: Path) -> AsyncIterator[Watched]:
    async with aiohttp.ClientSession() as http:
        system = Watched(tmp_path, http)
        await system.receiver.up()
        await system.start()
        try:
            yield system
        finally:
            if system.client.task is not None:
                system.client.task.cancel()
            system.controller.terminate()
            await system.receiver.down()


async def test_no_gap_or_repeat_across_a_crash_and_a_failing_store(watched: Watched) -> None:
    """A webhook receiver and a /ws client see every event once, numbered 1, 2, 3… with no hole, across a
    SIGKILL while the store could not commit and a SIGKILL in the middle of a call."""
    client, receiver = watched.client, watched.receiver
    # 1. All is well: a call's events reach both.
    assert (await Caller(DID, caller="13800000001", steps=[Pause(1000)]).run()).ok
    await _wait_for(lambda: len(ended_calls(client.events)) == 1 and len(ended_calls(receiver.events)) == 1)

    # 2. Another process holds the store's write lock: the next call's events are numbered but wait,
    # unpublished; then the controller is killed.
    lock = sqlite3.connect(watched.controller.db, timeout=0, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    seen_before = len(client.events)
    assert (await Caller(DID, caller="13800000002", steps=[Pause(1000)]).run()).ok
    async with asyncio.timeout(15):
        while await metric(watched.controller, "ccc_cti_events_unpersisted") == 0:
            await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    assert len(client.events) == seen_before  # nothing went out un-persisted ...
    assert await metric(watched.controller, "ccc_cti_events_unpersisted") > 0  # ... though the events exist
    watched.controller.kill()
    lock.execute("ROLLBACK")
    lock.close()
    await client.stopped()

    # 3. Restarted: the client resumes; a call is cut by a second SIGKILL right after its first event.
    await watched.start()
    caller = Caller(DID, caller="13800000003", steps=[Pause(3000)])
    await caller.start()
    offered = len(client.events) + 1
    await _wait_for(lambda: len(client.events) >= offered)
    watched.controller.kill()
    await client.stopped()
    await caller.wait()

    # 4. Restarted again: one more call, seen whole by both.
    await watched.start()
    assert (await Caller(DID, caller="13800000004", steps=[Pause(1000)]).run()).ok
    await _wait_for(lambda: "13800000004" in callers(client.events)
                    and ended_calls(client.events)[-1] == offered_call(client.events, "13800000004"))
    await _wait_for(lambda: "13800000004" in callers(receiver.events)
                    and ended_calls(receiver.events)[-1] == offered_call(receiver.events, "13800000004"),
                    timeout=30)

    watched.assert_gap_free()
    assert "13800000002" not in callers(client.events)  # the call whose events were never committed
    assert {"13800000001", "13800000004"} <= set(callers(client.events))


def callers(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["caller"] for e in events if e["type"] == "call.offered"]


def offered_call(events: list[dict[str, Any]], caller: str) -> str:
    return next(e["call_id"] for e in events if e["type"] == "call.offered" and e["data"]["caller"] == caller)


def ccctl(controller: ControllerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller.cli.main", "--url", controller.url, "--token",
                           "demo-integration-token", *args], capture_output=True, text=True, timeout=30, cwd=REPO)


async def test_a_refused_event_is_a_dead_letter_an_operator_replays_with_ccctl(fresh_asterisk: Path,
                                                                               tmp_path: Path) -> None:
    refusing = {"on": True}
    receiver = Receiver(free_port(), refuse=lambda e: 422 if refusing["on"] and e["type"] == "call.offered" else None)
    await receiver.up()
    controller = ControllerProcess(tmp_path / "data",
                                   config=config_with_webhook(tmp_path, receiver.port, max_attempts=2))
    await controller.start()
    try:
        for _ in range(2):
            assert (await Caller(DID, steps=[Pause(800)]).run()).ok
        # The refused events do not hold the others up: both calls' ends arrive.
        await _wait_for(lambda: len(ended_calls(receiver.events)) == 2, timeout=30)
        assert [e["type"] for e in receiver.events] == ["call.ended", "call.ended"]
        refused = [d.event["seq"] for d in receiver.deliveries if d.status == 422]
        assert len(refused) == 4 and len(set(refused)) == 2  # each tried max_attempts times

        listing = ccctl(controller, "webhooks", "dead-letters", "crm", "--json")
        assert listing.returncode == 0, listing.stderr
        letters = json.loads(listing.stdout)["dead_letters"]
        assert [(d["seq"], d["type"], d["last_error"], d["attempts"]) for d in letters] == [
            (seq, "call.offered", "HTTP 422", 2) for seq in sorted(set(refused))]
        text = ccctl(controller, "webhooks", "list")
        assert text.returncode == 0 and "crm" in text.stdout, text.stderr
        assert await metric(controller, "ccc_webhook_dead_lettered_total") == 2

        # A since no event can have (beyond int64 here) is refused and wedges nothing: the replay below works.
        status, body = await controller.api("POST", "/api/webhooks/crm/replay", json={"since": 2**63},
                                            token="demo-integration-token")
        assert status == 400 and "since" in body["error"], body

        refusing["on"] = False  # the CRM is fixed: the operator replays the dead letters
        replay = ccctl(controller, "webhooks", "replay-dead", "crm")
        assert replay.returncode == 0 and "2 dead letters queued again" in replay.stdout, replay.stdout + replay.stderr
        await _wait_for(lambda: len(receiver.events) == 4)
        assert [e["seq"] for e in receiver.events[2:]] == sorted(set(refused))
        assert json.loads(ccctl(controller, "webhooks", "dead-letters", "crm", "--json").stdout)["dead_letters"] == []
        bad = ccctl(controller, "webhooks", "replay", "crm", "--since", "99999")
        assert bad.returncode == 1 and "beyond the newest event" in bad.stderr
    finally:
        controller.terminate()
        await receiver.down()


async def test_events_of_a_graceful_stop_are_kept_and_sent_after_the_restart(watched: Watched) -> None:
    """A graceful stop leaves the call in Asterisk; the next process resumes it, and its events through
    to its end reach the webhook and a resuming /ws client (from this process or the next), numbered on."""
    client, receiver = watched.client, watched.receiver
    caller = Caller(DID, caller="13800000005", steps=[Pause(30000)])
    await caller.start()
    await _wait_for(lambda: "13800000005" in callers(client.events))
    # In a thread: the receiver and the WebSocket client answer from this test's event loop.
    assert await asyncio.to_thread(watched.controller.terminate) == 0
    await client.stopped()
    call_id = offered_call(client.events, "13800000005")
    assert call_id not in ended_calls(client.events)  # the stop did not end it

    await watched.start()
    await asyncio.sleep(1)  # the new process resumes the call (no second call.offered)
    await hang_up_everything()  # the caller's channel: the resumed call ends now
    caller.kill()
    await _wait_for(lambda: call_id in ended_calls(client.events))
    await _wait_for(lambda: call_id in ended_calls(receiver.events))
    assert [e["type"] for e in client.events if e["call_id"] == call_id].count("call.offered") == 1
    watched.assert_gap_free()
