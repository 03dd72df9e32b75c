"""Existing Asterisk tools keep working: our queue_log against app_queue's own, a queue_log reader
against our report, CDRs against our call records.

The same five scenarios (answered, abandoned while ringing, RONA then answered, transferred to
another queue, timed out to the overflow queue) run once through app_queue (`Queue()` in a
test-only dialplan on the sandbox, Asterisk's own queue_log) and once through the controller, with
the same SIPp phones and callers. The two logs are compared line by line: same events in the same
order, same queue and agent, same number of fields, same values where they are not ids or times
(times within TIME_SLACK). Differences we accept are listed in ACCEPTED, with why.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import pytest

from tests.ami_client import Ami
from tests.e2e.conftest import ARI, ARI_HEADERS, ControllerProcess, demo_config, free_port, sandbox
from tests.e2e.test_call_control import wait_for_state
from tests.e2e.test_ivr_acd import login, rows, stop_after  # noqa: F401 (fixture)
from tests.e2e.test_report_cli import ccctl
from tests.sipp import Caller, Pause, Phone

pytestmark = pytest.mark.e2e
DID = "5550100"  # app_queue's test route (the test dialplan)
CONTROLLER_DID = "4008007100"  # the controller's (Stasis)
CALLER = "13800138000"
RING_TIMEOUT, MAX_WAIT = 4, 8
AMI_USER, AMI_SECRET = "qlogtest", "qlogtest-secret"

# -- app_queue's side: test-only configuration added to the running sandbox ----------------------------

DIALPLAN = f"""
[ccc-inbound]
exten => _55501XX,1,Goto(qlog-test,${{EXTEN}},1)

[qlog-test]
exten => {DID},1,Answer()
 same => n,Queue(support,,,,{MAX_WAIT})
 same => n,Queue(orders,,,,60)
 same => n,Hangup()
exten => orders,1,Queue(orders,,,,60)
 same => n,Hangup()
"""
QUEUE = f"""strategy = linear
timeout = {RING_TIMEOUT}
retry = 1
wrapuptime = 1
autopause = yes
joinempty = yes
leavewhenempty = no
ringinuse = no
announce-frequency = 0
periodic-announce-frequency = 0
"""
MANAGER_USER = f"""
[{AMI_USER}]
secret = {AMI_SECRET}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
"""
ENDPOINTS = {"1001": "8001", "1002": "8002"}
#: Which queues each agent serves, with penalties (the same on both sides).
MEMBERSHIP = {"1001": {"support": 0}, "1002": {"support": 1, "orders": 0}}

# -- the comparison ------------------------------------------------------------------------------------

TIME_SLACK = 2  # seconds (times in ms: 2000 ms)
#: Lines only one side writes, not about calls or agents: left out of the comparison.
IGNORED_EVENTS = {"QUEUESTART", "CONFIGRELOAD"}
#: (event, data index) -> why the values may differ.
ACCEPTED = {
    ("BLINDTRANSFER", 1): "the context: app_queue gives the dialplan context the caller was sent to; we give the "
                          "kind of target ('queue' for queue:NAME, 'number', 'node', 'agent')",
    ("CONNECT", 1): "the agent's channel uniqueid: an id on both sides (checked non-empty)",
}
#: (event, data index) -> kind of field: seconds / ms are compared within TIME_SLACK.
SECONDS = {("CONNECT", 0), ("CONNECT", 2), ("COMPLETECALLER", 0), ("COMPLETECALLER", 1), ("COMPLETEAGENT", 0),
           ("COMPLETEAGENT", 1), ("ABANDON", 2), ("EXITWITHTIMEOUT", 2), ("EXITEMPTY", 2), ("BLINDTRANSFER", 2),
           ("BLINDTRANSFER", 3)}
MILLISECONDS = {("RINGNOANSWER", 0), ("RINGCANCELED", 0)}
MEMBER_EVENTS = {"ADDMEMBER", "REMOVEMEMBER", "PAUSE", "UNPAUSE"}


@dataclass(frozen=True)
class LogLine:
    """One queue_log line, parsed as Asterisk's documentation describes it."""

    time: int
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> LogLine:
        stamp, callid, queue, agent, event, *data = text.rstrip("\n").split("|")
        return cls(int(stamp), callid, queue, agent, event, tuple(data))


def read_log(path: Path) -> list[LogLine]:
    if not path.exists():
        return []
    return [LogLine.parse(line) for line in path.read_text().splitlines()
            if line.strip() and line.split("|")[4] not in IGNORED_EVENTS]


def transfer_first(lines: list[LogLine]) -> list[LogLine]:
    """app_queue writes a transfer's line from a Stasis message handler, which races the transferred
    caller's next `Queue()`: its ENTERQUEUE in the new queue may come first (seen on the sandbox).
    Put the transfer first, where it happened (an accepted difference of order, not of content)."""
    ordered = list(lines)
    for index in range(len(ordered) - 1):
        entered, transfer = ordered[index], ordered[index + 1]
        if entered.event == "ENTERQUEUE" and transfer.event in ("BLINDTRANSFER", "ATTENDEDTRANSFER") \
                and entered.callid == transfer.callid:
            ordered[index], ordered[index + 1] = transfer, entered
    return ordered


def differences(ours: list[LogLine], theirs: list[LogLine]) -> list[str]:
    """What differs between two scenarios' lines, beyond ids, times within slack and ACCEPTED."""
    theirs = transfer_first(theirs)
    problems = []
    if [(x.event, x.queue, x.agent) for x in ours] != [(x.event, x.queue, x.agent) for x in theirs]:
        return ["events differ:\n  ours:     " + "\n            ".join(f"{x.queue}|{x.agent}|{x.event}" for x in ours)
                + "\n  app_queue: " + "\n            ".join(f"{x.queue}|{x.agent}|{x.event}" for x in theirs)]
    calls: dict[str, str] = {}
    for mine, real in zip(ours, theirs, strict=True):
        if len(mine.data) != len(real.data):
            problems.append(f"{mine.event}: {len(mine.data)} fields, app_queue {len(real.data)}: {mine} / {real}")
            continue
        # The same call on both sides, line after line.
        if mine.event not in MEMBER_EVENTS and calls.setdefault(mine.callid, real.callid) != real.callid:
            problems.append(f"{mine.event}: call ids do not pair up ({mine.callid} / {real.callid})")
        for index, (a, b) in enumerate(zip(mine.data, real.data, strict=True)):
            key = (mine.event, index)
            if key in ACCEPTED:
                if key == ("CONNECT", 1) and not (a and b):
                    problems.append(f"CONNECT: an empty agent channel ({a!r} / {b!r})")
                continue
            slack = TIME_SLACK if key in SECONDS else TIME_SLACK * 1000 if key in MILLISECONDS else 0
            if slack:
                if abs(int(a) - int(b)) > slack:
                    problems.append(f"{mine.event} field {index + 1}: {a} vs app_queue {b} (more than {slack} apart)")
            elif a != b:
                problems.append(f"{mine.event} field {index + 1}: {a!r} vs app_queue {b!r}")
    return problems


#: The AMI queue events wallboards use, compared with Asterisk's own; QueueMemberStatus (device
#: states, sent by Asterisk for every phone change, ours for agent states) is left out.
COMPARED_AMI_EVENTS = {"QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon", "AgentCalled", "AgentConnect",
                       "AgentComplete", "AgentRingNoAnswer", "QueueMemberAdded", "QueueMemberRemoved",
                       "QueueMemberPause"}


def transfer_complete_first(events: list[dict[str, str]]) -> list[dict[str, str]]:
    """The AMI side of `transfer_first`: app_queue's AgentComplete for a transfer may follow the
    caller's QueueCallerJoin in the next queue."""
    ordered = list(events)
    for index in range(len(ordered) - 1):
        joined, complete = ordered[index], ordered[index + 1]
        if joined["Event"] == "QueueCallerJoin" and complete["Event"] == "AgentComplete" \
                and complete.get("Reason") == "transfer":
            ordered[index], ordered[index + 1] = complete, joined
    return ordered


def ami_summary(events: list[dict[str, str]]) -> list[tuple[str, ...]]:
    """What must be the same: the events, in order, with their queue, member and the fields tools read
    that are not times or ids."""
    keys = {"QueueCallerJoin": ("Position",), "QueueCallerAbandon": ("Position", "OriginalPosition"),
            "AgentComplete": ("Reason",), "QueueMemberPause": ("Paused", "PausedReason"),
            "QueueMemberAdded": ("Paused",)}
    return [(e["Event"], e.get("Queue", ""), e.get("MemberName", ""), *(e.get(k, "") for k in keys.get(e["Event"], ())))
            for e in events]


# -- the two sites, driven the same way --------------------------------------------------------------------


class Site(Protocol):
    log: Path
    did: str

    async def add_members(self) -> None: ...
    async def pause(self, agent_id: str, reason: str) -> None: ...
    async def unpause(self, agent_id: str) -> None: ...
    async def remove(self, agent_id: str) -> None: ...
    async def wait_talking(self, agent_id: str) -> None: ...
    async def transfer_to_orders(self, agent_id: str) -> None: ...


async def agent_channel(endpoint: str, timeout: float = 15) -> str:
    """The name of an agent phone's answered channel on the sandbox."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http:
        while time.monotonic() < deadline:
            async with http.get(f"{ARI}/channels") as response:
                for channel in await response.json():
                    if channel["name"].startswith(f"PJSIP/{endpoint}-") and channel["state"] == "Up":
                        return str(channel["name"])
            await asyncio.sleep(0.1)
    raise AssertionError(f"no answered channel of {endpoint}")


class AppQueueSite:
    """app_queue on the sandbox, driven like a site does: CLI for members, AMI for the transfer."""

    def __init__(self, ami: Ami) -> None:
        self.log = sandbox.ROOT / "var/log/asterisk/queue_log"
        self.did = DID
        self.ami = ami

    @staticmethod
    async def cli(command: str) -> str:
        return await asyncio.to_thread(sandbox.cli, command)

    async def add_members(self) -> None:
        for agent_id, queues in MEMBERSHIP.items():
            for queue, penalty in queues.items():
                await self.cli(f"queue add member PJSIP/{ENDPOINTS[agent_id]} to {queue} penalty {penalty}"
                               f" as Agent/{agent_id}")

    async def pause(self, agent_id: str, reason: str) -> None:
        for queue in MEMBERSHIP[agent_id]:
            await self.cli(f"queue pause member PJSIP/{ENDPOINTS[agent_id]} queue {queue} reason {reason}")

    async def unpause(self, agent_id: str) -> None:
        for queue in MEMBERSHIP[agent_id]:
            await self.cli(f"queue unpause member PJSIP/{ENDPOINTS[agent_id]} queue {queue}")

    async def remove(self, agent_id: str) -> None:
        for queue in MEMBERSHIP[agent_id]:
            await self.cli(f"queue remove member PJSIP/{ENDPOINTS[agent_id]} from {queue}")

    async def wait_talking(self, agent_id: str) -> None:
        await agent_channel(ENDPOINTS[agent_id])

    async def transfer_to_orders(self, agent_id: str) -> None:
        channel = await agent_channel(ENDPOINTS[agent_id])
        response = await self.ami.action("BlindTransfer", Channel=channel, Context="qlog-test", Exten="orders")
        assert response["Response"] == "Success", response


class ControllerSite:
    def __init__(self, process: ControllerProcess) -> None:
        self.process = process
        self.log = process.data_dir / "queue_log"
        self.did = CONTROLLER_DID

    async def command(self, agent_id: str, action: str, **body: Any) -> None:
        status, answer = await self.process.api("POST", f"/api/agents/{agent_id}/{action}", json=body)
        assert status == 200, answer

    async def add_members(self) -> None:
        for agent_id in MEMBERSHIP:
            await login(self.process, agent_id)

    async def pause(self, agent_id: str, reason: str) -> None:
        await self.command(agent_id, "not_ready", reason=reason)

    async def unpause(self, agent_id: str) -> None:
        await self.command(agent_id, "ready")

    async def remove(self, agent_id: str) -> None:
        await self.command(agent_id, "logout")

    async def wait_talking(self, agent_id: str) -> None:
        await wait_for_state(self.process, agent_id, "talking")

    async def transfer_to_orders(self, agent_id: str) -> None:
        call_id = (await wait_for_state(self.process, agent_id, "talking"))["current_call"]
        status, body = await self.process.api("POST", f"/api/calls/{call_id}/transfer", json={"to": "queue:orders"})
        assert status == 200, body


async def call(did: str, pause_ms: int) -> Caller:
    caller = Caller(did, caller=CALLER, steps=[Pause(pause_ms)])
    await caller.start()
    return caller


async def with_phones(phones: list[Phone], body: Callable[[], Awaitable[None]]) -> None:
    for phone in phones:
        await phone.start()
    try:
        await body()
        # Let each phone take the end of its call (BYE, CANCEL): one sent after a phone is killed is
        # retransmitted to the next phone on that port, which then aborts its own call.
        for phone in phones:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    await phone.wait()
    finally:
        for phone in phones:
            phone.kill()


def ringing_only(port: int) -> Phone:
    return Phone(port, answer_after_ms=30_000)


def answering(port: int) -> Phone:
    return Phone(port, answer_after_ms=1000)


async def run_scenarios(site: Site, while_waiting: Callable[[], Awaitable[None]] | None = None,
                        ) -> dict[str, list[LogLine]]:
    """The five scenarios; returns each one's queue_log lines (agent lines included).
    `while_waiting` runs while the last caller waits in the first queue."""
    marks: list[tuple[str, int]] = []

    def mark(name: str) -> None:
        marks.append((name, len(read_log(site.log))))

    mark("members")
    await site.add_members()
    await asyncio.sleep(0.5)

    async def answered() -> None:
        assert (await (await call(site.did, 5000)).wait()).ok

    mark("answered")
    await with_phones([answering(15001)], answered)
    await asyncio.sleep(2)

    async def abandoned() -> None:
        await (await call(site.did, 2500)).wait()

    mark("abandoned")
    await with_phones([ringing_only(15001)], abandoned)
    await asyncio.sleep(1.5)

    async def rona() -> None:
        assert (await (await call(site.did, RING_TIMEOUT * 1000 + 5000)).wait()).ok

    mark("rona_then_answered")
    await with_phones([ringing_only(15001), answering(15002)], rona)
    await asyncio.sleep(1)
    await site.unpause("1001")
    await asyncio.sleep(2)

    async def transferred() -> None:
        caller = await call(site.did, 11_000)
        await site.wait_talking("1001")
        await asyncio.sleep(1.5)
        await site.transfer_to_orders("1001")
        assert (await caller.wait()).ok

    mark("transferred")
    await with_phones([answering(15001), answering(15002)], transferred)
    await asyncio.sleep(2)

    mark("timeout_overflow")
    await site.pause("1001", "meeting")
    await site.remove("1002")
    last = await call(site.did, MAX_WAIT * 1000 + 3500)
    if while_waiting is not None:
        await asyncio.sleep(3)
        await while_waiting()
    assert (await last.wait()).ok
    await asyncio.sleep(1.5)
    mark("end")
    lines = read_log(site.log)
    return {name: lines[start:marks[index + 1][1]] for index, (name, start) in enumerate(marks[:-1])}


# -- fixtures ---------------------------------------------------------------------------------------------


@pytest.fixture
async def app_queue(fresh_asterisk: Path) -> AsyncIterator[Ami]:
    """The test queues, dialplan and AMI user added to the running sandbox (removed afterwards)."""
    etc = sandbox.ROOT / "etc/asterisk"
    originals = {name: (etc / name).read_text() for name in ("queues.conf", "manager.conf")}
    (etc / "dialplans/qlog-test.conf").write_text(DIALPLAN)
    # Members are logged by their names (Agent/1001), as QueueMetrics-style sites configure it.
    queues = originals["queues.conf"].replace("[general]\n", "[general]\nlog_membername_as_agent = yes\n", 1)
    (etc / "queues.conf").write_text(queues + f"\n[support]\n{QUEUE}\n[orders]\n{QUEUE}")
    (etc / "manager.conf").write_text(originals["manager.conf"] + MANAGER_USER)
    for command in ("dialplan reload", "module reload app_queue.so", "manager reload"):
        await asyncio.to_thread(sandbox.cli, command)
    ami = Ami()
    login_answer = await ami.connect(AMI_USER, AMI_SECRET)
    assert login_answer["Response"] == "Success", login_answer
    yield ami
    await ami.close()
    (etc / "dialplans/qlog-test.conf").unlink()
    for name, text in originals.items():
        (etc / name).write_text(text)
    for command in ("dialplan reload", "module reload app_queue.so", "manager reload"):
        await asyncio.to_thread(sandbox.cli, command)


FLOW = f"""
flow: qlogtest
language: en
dids: ["{CONTROLLER_DID}"]
nodes:
  queue: {{type: queue, queue: support, answered: bye, otherwise: bye}}
  bye: {{type: hangup}}
"""


async def start_controller(tmp_path: Path, ami_port: int) -> ControllerProcess:
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "qlogtest.yaml").write_text(FLOW)
    common = {"wrapup_seconds": 1, "ring_timeout": RING_TIMEOUT, "announce_interval": 0,
              "announce_agent_number": False, "no_agents": "wait", "strategy": "longest_idle"}
    config = demo_config(
        tmp_path, ivr={"flows_dir": str(flows)},
        acd={"queues": [{"name": "support", "max_wait": MAX_WAIT, "overflow": "queue:orders", "recording": "always",
                         **common},
                        {"name": "orders", "max_wait": 60, **common}],
             "agents": [{"id": agent_id, "name": f"Agent {agent_id}", "number": agent_id,
                         "endpoint": ENDPOINTS[agent_id], "queues": queues}
                        for agent_id, queues in MEMBERSHIP.items()]},
        compat={"queue_log": {"enabled": True}, "cdr": {"enabled": True}, "ami_port": ami_port,
                "ami_users": {"wallboard": "wallboard-secret"}})
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start()
    return process


# -- the test ---------------------------------------------------------------------------------------------


async def test_queue_log_cdrs_and_report_match_app_queue(app_queue: Ami, tmp_path: Path,
                                                         stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    app_queue.events.clear()
    theirs = await run_scenarios(AppQueueSite(app_queue))
    their_ami = [event for event in app_queue.events if event.get("Event") in COMPARED_AMI_EVENTS]
    ami_port = free_port()
    process = await start_controller(tmp_path, ami_port)
    stop_after.append(process)
    wallboard = Ami(port=ami_port)
    assert (await wallboard.connect("wallboard", "wallboard-secret"))["Response"] == "Success"
    status: list[dict[str, str]] = []

    async def queue_status() -> None:  # what a wallboard polls, while a caller waits
        answer = await wallboard.action("QueueStatus")
        assert answer["Response"] == "Success" and answer["EventList"] == "start"
        complete = await wallboard.wait_for(lambda e: e.get("Event") == "QueueStatusComplete")
        status.extend(e for e in wallboard.events if e.get("ActionID") == answer["ActionID"])
        assert complete["ListItems"] == str(len(status) - 1)

    ours = await run_scenarios(ControllerSite(process), queue_status)
    await wallboard.close()

    # 1. Event by event, the same queue_log as app_queue's (but for ACCEPTED).
    report = []
    for name in theirs:
        problems = differences(ours[name], theirs[name])
        report += [f"[{name}] {problem}" for problem in problems]
    assert not report, "\n".join(report)
    assert [x.event for x in ours["rona_then_answered"]][:4] == ["ENTERQUEUE", "RINGNOANSWER", "PAUSE", "CONNECT"]
    assert Counter(x.event for lines in ours.values() for x in lines) == Counter(
        {"ENTERQUEUE": 7, "CONNECT": 4, "COMPLETECALLER": 3, "ABANDON": 2, "RINGCANCELED": 1, "RINGNOANSWER": 1,
         "BLINDTRANSFER": 1, "EXITWITHTIMEOUT": 1, "ADDMEMBER": 3, "REMOVEMEMBER": 2, "PAUSE": 2, "UNPAUSE": 1})

    # 2. The AMI endpoint: app_queue's queue events, as Asterisk's own AMI sent them during its run.
    our_ami = [event for event in wallboard.events if event.get("Event") in COMPARED_AMI_EVENTS]
    assert ami_summary(our_ami) == ami_summary(transfer_complete_first(their_ami))
    members = {(e["Queue"], e["Name"]): e for e in status if e["Event"] == "QueueMember"}
    assert (members["support", "Agent/1001"]["Paused"], members["support", "Agent/1001"]["PausedReason"]) == \
        ("1", "meeting")
    (entry,) = [e for e in status if e["Event"] == "QueueEntry"]
    assert (entry["Queue"], entry["Position"], entry["CallerIDNum"]) == ("support", "1", CALLER)
    assert int(entry["Wait"]) >= 2
    # A wrong secret is refused and the connection closed; nothing is answered before a login.
    intruder = Ami(port=ami_port)
    assert (await intruder.connect("wallboard", "guess"))["Message"] == "Authentication failed"
    await intruder.close()
    anonymous = Ami(port=ami_port)
    await anonymous.open()
    assert anonymous.banner.startswith("Asterisk Call Manager/")
    assert (await anonymous.action("QueueStatus"))["Message"] == "Permission denied"
    assert not anonymous.events
    await anonymous.close()

    # The realtime table holds the same lines (data split into data1..data5).
    table = rows(process, "SELECT * FROM queue_log ORDER BY id")
    file_lines = (process.data_dir / "queue_log").read_text().splitlines()
    assert file_lines[0].endswith("|NONE|NONE|NONE|QUEUESTART|")
    assert len(table) == len(file_lines)
    for row, line in zip(table, file_lines, strict=True):
        parsed = LogLine.parse(line)
        data = [row[f"data{n}"] for n in range(1, 6)]
        assert (row["callid"], row["queuename"], row["agent"], row["event"]) == \
            (parsed.callid, parsed.queue, parsed.agent, parsed.event)
        assert data[:len(parsed.data)] == list(parsed.data) and not any(data[len(parsed.data):])

    # 3. A queue_log reader (Asterisk's documented format) gives our report's counts and waits.
    result = await asyncio.to_thread(ccctl, process.url, "report", "--json", "--by", "queue")
    assert result.returncode == 0, result.stderr
    kpis = {row["queue"]: row for row in json.loads(result.stdout)["rows"]}
    from_log = read_queue_stats(process.data_dir / "queue_log")
    assert set(from_log) == {"support", "orders"}
    for queue, stats in from_log.items():
        row = kpis[queue]
        assert (stats.offered, stats.answered, stats.abandoned, stats.overflowed) == \
            (row["offered"], row["answered"], row["abandoned"] + row["short_abandons"], row["overflowed"]), queue
        assert abs(statistics.mean(stats.holdtimes) - row["asa"]) <= 1.0, (queue, stats.holdtimes, row["asa"])
    assert (from_log["support"].answered, from_log["support"].abandoned) == (3, 1)

    # 4. One CDR per call, in the CSV and the table, matching our call records.
    records = {r["call_id"]: r for r in await process.wait_for_records(5)}
    await asyncio.sleep(0.5)
    with (process.data_dir / "cdr/Master.csv").open() as handle:
        cdrs = {row[16]: row for row in csv.reader(handle)}
    table_cdrs = {row["uniqueid"]: row for row in rows(process, "SELECT * FROM cdr")}
    assert set(cdrs) == set(records) == set(table_cdrs)
    served = {}
    for call_id, record in records.items():
        row, db_row = cdrs[call_id], table_cdrs[call_id]
        assert (row[1], row[2]) == (record["caller"], record["did"]) == (db_row["src"], db_row["dst"])
        assert row[9] == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started_at"]))
        assert int(row[12]) == round(record["ended_at"] - record["started_at"]) == db_row["duration"]
        assert int(row[13]) == round(record["ended_at"] - record["answered_at"])
        assert row[14] == "ANSWERED"
        visits = rows(process, "SELECT * FROM queue_calls WHERE call_id = ? ORDER BY id", call_id)
        answered_by = [v["agent_id"] for v in visits if v["outcome"] == "answered"]
        assert row[18] == (answered_by[-1] if answered_by else "") == db_row["agent"]
        assert row[19] == visits[-1]["queue"] if not answered_by else True
        served[call_id] = (row[18], row[19], row[20])
        files = [r["file"] for r in rows(process, "SELECT file FROM recordings WHERE call_id = ? ORDER BY started_at",
                                         call_id)]
        assert row[20] == (files[0] if files else "") == db_row["recording"]
    # `support` records every answered call (a recording that failed to start leaves the CDR's empty).
    assert any(recording.endswith(".wav") for _, _, recording in served.values())
    assert sorted((agent, queue) for agent, queue, _ in served.values()) == \
        sorted([("1001", "support"), ("", "support"), ("1002", "support"), ("1002", "orders"), ("", "orders")])


@dataclass
class QueueStats:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    overflowed: int = 0
    holdtimes: list[int] | None = None


def read_queue_stats(path: Path) -> dict[str, QueueStats]:
    """What a queue_log reporting tool computes, from Asterisk's documented format only:
    ENTERQUEUE offered; CONNECT answered (data1 = holdtime); ABANDON abandoned; EXITWITHTIMEOUT /
    EXITEMPTY overflowed."""
    stats: dict[str, QueueStats] = defaultdict(lambda: QueueStats(holdtimes=[]))
    for line in path.read_text().splitlines():
        _time, _callid, queue, _agent, event, *data = line.split("|")
        if queue == "NONE":
            continue
        entry = stats[queue]
        if event == "ENTERQUEUE":
            entry.offered += 1
        elif event == "CONNECT":
            entry.answered += 1
            assert entry.holdtimes is not None
            entry.holdtimes.append(int(data[0]))
        elif event == "ABANDON":
            entry.abandoned += 1
        elif event in ("EXITWITHTIMEOUT", "EXITEMPTY"):
            entry.overflowed += 1
    return {queue: entry for queue, entry in stats.items() if entry.offered}
