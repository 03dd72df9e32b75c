"""The queue_log formatter and the CDR builder, alone (pure logic; the e2e test checks them against app_queue)."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controller.config import AcdAgentConfig, AcdSettings, CdrSettings, CompatSettings, Config, QueueLogSettings
from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.calls.state_persistor import CallRecords
from controller.plugins.compat.ami_server import AmiServer
from controller.plugins.compat.cdr import build_cdr
from controller.plugins.compat.queue_log import QueueLogEntry, QueueLogFormatter
from controller.plugins.compat.services import CompatError, CompatService, cdr_csv_line
from controller.plugins.cti.services import CtiEvent, EventBus
from controller.store.db import Store
from tests.ami_client import Ami
from tests.conftest import StoreTarget

T0 = 1_790_000_000.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
_seq = itertools.count(1)


def ev(type_: str, at: float, call: str | None = "c1", agent: str | None = None, queue: str | None = None,
       **data: Any) -> CtiEvent:
    return CtiEvent(next(_seq), type_, T0 + at, call, agent, queue, data)


def run(*events: CtiEvent) -> list[str]:
    formatter = QueueLogFormatter({"1001": ["general"], "1002": ["general", "orders"]})
    return [line.line().split("|", 1)[1] for event in events for line in formatter.feed(event)]


def queued(at: float = 0.0, queue: str = "general", call: str = "c1") -> list[CtiEvent]:
    return [ev("call.offered", at, call, caller="13800138000", did="4008001234", direction="inbound"),
            ev("call.queued", at, call, queue=queue, priority=0, skills={}, position=1)]


def test_answered_call_completed_by_the_caller() -> None:
    lines = run(*queued(),
                ev("agent.state_changed", 1, None, "1001", state="ringing", previous="ready", reason=None),
                ev("call.ringing", 1, agent="1001", queue="general", endpoint="8001", screen_pop={}),
                ev("agent.state_changed", 4, None, "1001", state="talking", previous="ringing", reason=None),
                ev("call.answered", 4, agent="1001", queue="general", wait=4.2, agent_channel="leg-1"),
                ev("agent.state_changed", 34, None, "1001", state="acw", previous="talking", reason=None),
                ev("call.completed", 34, agent="1001", queue="general", ended_by="caller"),
                ev("call.ended", 34, reason="caller_hangup", cause=16, cause_txt="Normal", duration=34))
    assert lines == ["c1|general|NONE|ENTERQUEUE||13800138000|1",
                     "c1|general|Agent/1001|CONNECT|4|leg-1|3",
                     "c1|general|Agent/1001|COMPLETECALLER|4|30|1"]


def test_rona_then_answered_by_a_colleague_who_hangs_up() -> None:
    lines = run(*queued(),
                ev("call.ringing", 0.5, agent="1001", queue="general", endpoint="8001", screen_pop={}),
                ev("agent.state_changed", 0.5, None, "1001", state="ringing", previous="ready", reason=None),
                ev("agent.state_changed", 15.5, None, "1001", state="not_ready", previous="ringing",
                   reason="no_answer"),
                ev("call.ringing", 15.6, agent="1002", queue="general", endpoint="8002", screen_pop={}),
                ev("call.answered", 17.6, agent="1002", queue="general", wait=17.6),
                ev("call.completed", 27.6, agent="1002", queue="general", ended_by="agent"))
    assert lines == ["c1|general|NONE|ENTERQUEUE||13800138000|1",
                     "c1|general|Agent/1001|RINGNOANSWER|15000",
                     "NONE|general|Agent/1001|PAUSE|Auto-Pause",
                     "c1|general|Agent/1002|CONNECT|18||2",
                     "c1|general|Agent/1002|COMPLETEAGENT|18|10|1"]


def test_abandon_while_ringing_cancels_the_ring_first() -> None:
    lines = run(*queued(),
                ev("call.position_changed", 1, queue="general", position=1, estimated_wait=None),
                ev("call.ringing", 2, agent="1001", queue="general", endpoint="8001", screen_pop={}),
                ev("agent.state_changed", 2, None, "1001", state="ringing", previous="ready", reason=None),
                ev("agent.state_changed", 5, None, "1001", state="ready", previous="ringing", reason=None),
                ev("call.abandoned", 5, queue="general", wait=5.4))
    assert lines[1:] == ["c1|general|Agent/1001|RINGCANCELED|3000", "c1|general|NONE|ABANDON|1|1|5"]


def test_colleague_answering_first_logs_no_cancel_and_timeout_exits() -> None:
    answered_elsewhere = run(
        *queued(),
        ev("call.ringing", 1, agent="1001", queue="general", endpoint="8001", screen_pop={}),
        ev("call.ringing", 1, agent="1002", queue="general", endpoint="8002", screen_pop={}),
        ev("agent.state_changed", 3, None, "1001", state="ready", previous="ringing", reason=None),
        ev("call.answered", 3, agent="1002", queue="general", wait=3.0))
    assert [line.split("|")[3] for line in answered_elsewhere] == ["ENTERQUEUE", "CONNECT"]
    timeout = run(*queued(), ev("call.overflowed", 8, queue="general", target="queue:orders", wait=8.0,
                                reason="max_wait"),
                  *queued(8, "orders"))
    assert timeout == ["c1|general|NONE|ENTERQUEUE||13800138000|1", "c1|general|NONE|EXITWITHTIMEOUT|1|1|8",
                       "c1|orders|NONE|ENTERQUEUE||13800138000|1"]
    empty = run(*queued(), ev("call.overflowed", 0, queue="general", target="", wait=0.0, reason="no_agents"))
    assert empty[-1] == "c1|general|NONE|EXITEMPTY|1|1|0"


def test_transfer_to_a_queue_is_a_blind_transfer() -> None:
    lines = run(*queued(),
                ev("call.ringing", 1, agent="1001", queue="general", endpoint="8001", screen_pop={}),
                ev("call.answered", 2, agent="1001", queue="general", wait=2.0),
                ev("call.transferred", 12, agent="1001", kind="blind", target="queue:orders"),
                ev("call.completed", 12, agent="1001", queue="general", ended_by="transfer"),
                *queued(12, "orders")[1:])
    assert lines[2:] == ["c1|general|Agent/1001|BLINDTRANSFER|orders|queue|2|10|1",
                         "c1|orders|NONE|ENTERQUEUE||13800138000|1"]
    attended = run(*queued(),
                   ev("call.ringing", 1, agent="1001", queue="general", endpoint="8001", screen_pop={}),
                   ev("call.answered", 2, agent="1001", queue="general", wait=2.0),
                   ev("call.transferred", 32, agent="1001", kind="attended", target="number:13900139000"),
                   ev("call.completed", 32, agent="1001", queue="general", ended_by="transfer"))
    assert attended[2:] == ["c1|general|Agent/1001|ATTENDEDTRANSFER|BRIDGE|13900139000|2|30|1"]


def test_agent_states_become_member_lines_in_each_queue() -> None:
    lines = run(ev("agent.state_changed", 0, None, "1002", state="not_ready", previous="logged_out",
                   reason="login"),
                ev("agent.state_changed", 1, None, "1002", state="ready", previous="not_ready", reason=None),
                ev("agent.state_changed", 2, None, "1002", state="not_ready", previous="ready", reason="meal|lunch"),
                ev("agent.state_changed", 3, None, "1002", state="logged_out", previous="not_ready", reason=None))
    assert lines == ["NONE|general|Agent/1002|ADDMEMBER|PAUSED", "NONE|orders|Agent/1002|ADDMEMBER|PAUSED",
                     "NONE|general|Agent/1002|UNPAUSE|", "NONE|orders|Agent/1002|UNPAUSE|",
                     "NONE|general|Agent/1002|PAUSE|meal_lunch", "NONE|orders|Agent/1002|PAUSE|meal_lunch",
                     "NONE|general|Agent/1002|REMOVEMEMBER|", "NONE|orders|Agent/1002|REMOVEMEMBER|"]


def test_realtime_columns_and_hidden_caller_ids() -> None:
    formatter = QueueLogFormatter({}, agent_format="{id}", log_caller_id=False)
    entries = [entry for event in queued() for entry in formatter.feed(event)]
    assert entries[0].line().endswith("|c1|general|NONE|ENTERQUEUE|||1")  # the caller id field is empty
    columns = entries[0].columns()
    assert columns[1:] == ("c1", "general", "NONE", "ENTERQUEUE", "", "", "1", "", "")
    assert len(columns[0]) == len("2026-09-21 14:13:20.000000")


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="agent_format"):
        QueueLogSettings(agent_format="Agent/{name}")
    with pytest.raises(ValueError, match="separator"):
        QueueLogSettings(agent_format="Agent|{id}")
    with pytest.raises(ValueError, match="nothing would be written"):
        QueueLogSettings(enabled=True, file="", table=False)
    with pytest.raises(ValueError, match="nothing would be written"):
        CdrSettings(enabled=True, csv="", table=False)
    with pytest.raises(ValueError, match="ami_users"):
        CompatSettings(ami_port=5039)
    assert QueueLogSettings(enabled=True, file="", table=True).table


def test_cdr_of_an_answered_recorded_and_transferred_call() -> None:
    call = {"call_id": "c1", "channel_id": "ch1", "caller": "13800138000", "did": "4008001234", "flow": "main",
            "started_at": T0, "answered_at": T0 + 1, "ended_at": T0 + 61.4, "end_reason": "caller_hangup",
            "hangup_cause": 16}
    visits = [{"queue": "general", "agent_id": "1001", "outcome": "answered"},
              {"queue": "orders", "agent_id": "1002", "outcome": "answered"}]
    cdr = build_cdr(call, visits, [{"file": "/rec/c1.wav"}], {"1001": "8001", "1002": "8002"})
    assert (cdr.src, cdr.dst, cdr.duration, cdr.billsec, cdr.disposition) == ("13800138000", "4008001234", 61, 60,
                                                                              "ANSWERED")
    assert (cdr.agent, cdr.queue, cdr.dstchannel, cdr.recording, cdr.lastapp) == ("1002", "orders", "PJSIP/8002",
                                                                                   "/rec/c1.wav", "Queue")
    row = next(csv.reader(io.StringIO(cdr_csv_line(cdr))))
    assert row[1:3] == ["13800138000", "4008001234"] and row[12:15] == ["61", "60", "ANSWERED"]
    assert cdr_csv_line(cdr).startswith('"","13800138000","4008001234","main"')
    unanswered = build_cdr({**call, "answered_at": None, "hangup_cause": 17}, [], [], {})
    assert (unanswered.disposition, unanswered.billsec, unanswered.answer, unanswered.agent) == ("BUSY", 0, "", "")
    abandoned = build_cdr(call, [{"queue": "general", "agent_id": None, "outcome": "abandoned"}], [], {})
    assert (abandoned.queue, abandoned.agent, abandoned.dstchannel) == ("general", "", "")


async def test_service_writes_the_file_the_table_and_one_cdr(tmp_path: Path, store_target: StoreTarget) -> None:
    config = Config(data_dir=str(tmp_path), acd=AcdSettings(agents=[
        AcdAgentConfig(id="1001", name="A", number="1001", endpoint="8001", queues={"general": 0})]),
        compat=CompatSettings(queue_log=QueueLogSettings(enabled=True), cdr=CdrSettings(enabled=True)))
    store = Store(store_target.target, **store_target.kwargs())  # type: ignore[arg-type]
    await store.open()
    bus = EventBus(store, time.time)
    await bus.open()
    service = CompatService(config, store, bus)
    await service.open()
    records = CallRecords(store, time.time)
    async with asyncio.TaskGroup() as tasks:
        writer = tasks.create_task(store.run_writer())
        committer = tasks.create_task(bus.run())  # events reach listeners once committed
        runner = tasks.create_task(service.run())
        records.started("c1", "ch1", direction="inbound", caller="13800138000", did="4008001234")
        records.answered("c1")
        visits = AcdRecords(store, time.time)
        visits.enqueued("c1", "general", 0)
        visits.left("c1", "abandoned", 1.0, None)
        bus.publish("call.offered", call_id="c1", caller="13800138000", did="4008001234", direction="inbound")
        bus.publish("call.queued", call_id="c1", queue="general", priority=0, skills={}, position=1)
        bus.publish("call.abandoned", call_id="c1", queue="general", wait=1.0)
        records.ended("c1", reason="caller_hangup", cause=16)
        bus.publish("call.ended", call_id="c1", reason="caller_hangup", cause=16, cause_txt=None, duration=1.0)
        for _ in range(100):
            if service.cdrs_written and service.lines_written == 3:
                break
            await asyncio.sleep(0.02)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
        await store.flush()
        writer.cancel()
    lines = (tmp_path / "queue_log").read_text().splitlines()
    assert [line.split("|")[4] for line in lines] == ["QUEUESTART", "ENTERQUEUE", "ABANDON"]
    assert (tmp_path / "queue_log").stat().st_mode & 0o777 == 0o640
    table = await store.fetchall("SELECT event, data1, data2, data3 FROM queue_log ORDER BY id")
    assert [tuple(row) for row in table][1:] == [("ENTERQUEUE", "", "13800138000", "1"), ("ABANDON", "1", "1", "0")]
    (cdr_row,) = list(csv.reader((tmp_path / "cdr/Master.csv").open()))
    assert (cdr_row[1], cdr_row[2], cdr_row[14], cdr_row[16], cdr_row[19]) == \
        ("13800138000", "4008001234", "ANSWERED", "c1", "general")
    (db_row,) = await store.fetchall("SELECT src, uniqueid, queue FROM cdr")
    assert tuple(db_row) == ("13800138000", "c1", "general")
    metrics = {metric.name: metric.samples[0].value for metric in service.metrics()}
    assert metrics == {"ccc_queue_log_lines": 3, "ccc_cdrs": 1, "ccc_compat_pending": 0}
    await store.close()


async def test_an_unwritable_file_is_a_clear_error_at_start(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = Config(data_dir=str(tmp_path), compat=CompatSettings(queue_log=QueueLogSettings(
        enabled=True, file=str(blocker / "queue_log"))))
    store = Store(tmp_path / "controller.sqlite3")
    await store.open()
    service = CompatService(config, store, EventBus(store, time.time))
    with pytest.raises(CompatError, match=r"cannot write .*not-a-dir/queue_log"):
        await service.open()
    assert blocker.read_text() == ""
    await store.close()


async def test_ami_endpoint_logins_actions_and_events(tmp_path: Path) -> None:
    """The AMI protocol side (the e2e test compares the events with Asterisk's own)."""
    port = free_port()
    config = Config(data_dir=str(tmp_path), acd=AcdSettings(agents=[
        AcdAgentConfig(id="1001", name="A", number="1001", endpoint="8001", queues={"general": 0})]),
        compat=CompatSettings(ami_port=port, ami_users={"wallboard": "s3cret"}))
    acd = SimpleNamespace(queue_configs={}, agent_configs={agent.id: agent for agent in config.acd.agents})
    server = AmiServer(config, acd)  # type: ignore[arg-type]
    await server.serve()
    try:
        anonymous = Ami(port=port)
        await anonymous.open()
        assert anonymous.banner == "Asterisk Call Manager/11.0.0"
        assert (await anonymous.action("Ping"))["Message"] == "Permission denied"
        assert (await anonymous.action("Login", Username="wallboard", Secret="wrong"))["Message"] == \
            "Authentication failed"
        await anonymous.close()
        board = Ami(port=port)
        assert (await board.connect("wallboard", "s3cret"))["Response"] == "Success"
        assert (await board.action("Ping"))["Ping"] == "Pong"
        assert (await board.action("Originate", Channel="PJSIP/8001"))["Message"] == "Invalid/unknown command"
        entry = QueueLogEntry(T0, "c1", "general", "Agent/1001", "RINGNOANSWER", ("4000",))
        server.on_event(ev("agent.state_changed", 4, None, "1001", state="not_ready", previous="ringing",
                           reason="no_answer"), [entry])
        rona = await board.wait_for(lambda e: e.get("Event") == "AgentRingNoAnswer")
        assert (rona["Queue"], rona["MemberName"], rona["Interface"], rona["RingTime"]) == \
            ("general", "Agent/1001", "PJSIP/8001", "4000")
        status = await board.wait_for(lambda e: e.get("Event") == "QueueMemberStatus")
        assert (status["Paused"], status["Status"]) == ("1", "1")
        assert (await board.action("Events", EventMask="off"))["Events"] == "Off"
        seen = len(board.events)
        server.on_event(ev("call.ringing", 5, "c1", "1001", "general", endpoint="8001", screen_pop={}), [])
        assert (await board.action("Ping"))["Ping"] == "Pong" and len(board.events) == seen  # nothing sent
        await board.close()
    finally:
        server.close()


async def test_lines_of_events_not_written_before_a_crash_are_written_at_restart(
        tmp_path: Path, store_target: StoreTarget) -> None:
    config = Config(data_dir=str(tmp_path), acd=AcdSettings(agents=[
        AcdAgentConfig(id="1001", name="A", number="1001", endpoint="8001", queues={"general": 0})]),
        compat=CompatSettings(queue_log=QueueLogSettings(enabled=True)))
    store = Store(store_target.target, **store_target.kwargs())  # type: ignore[arg-type]
    await store.open()
    bus = EventBus(store, time.time)
    await bus.open()
    log_file = tmp_path / "queue_log"

    async def written(count: int) -> list[str]:
        for _ in range(200):
            lines = log_file.read_text().splitlines() if log_file.exists() else []
            if len(lines) >= count:
                return lines
            await asyncio.sleep(0.02)
        raise AssertionError(f"fewer than {count} lines: {lines}")

    async with asyncio.TaskGroup() as tasks:
        writer = tasks.create_task(store.run_writer())
        committer = tasks.create_task(bus.run())  # events reach listeners once committed
        before = CompatService(config, store, bus)
        await before.open()
        running = tasks.create_task(before.run())
        bus.publish("call.offered", call_id="c1", caller="13800138000", did="4008001234", direction="inbound")
        bus.publish("call.queued", call_id="c1", queue="general", priority=0, skills={}, position=1)
        assert [line.split("|")[4] for line in await written(2)] == ["QUEUESTART", "ENTERQUEUE"]
        await asyncio.sleep(0.1)
        # The controller dies: these events are in the store, their lines never written.
        bus.listeners.remove(before._on_events)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        bus.publish("call.answered", call_id="c1", agent_id="1001", queue="general", wait=3.0)
        bus.publish("call.completed", call_id="c1", agent_id="1001", queue="general", ended_by="caller")
        while bus.unpersisted:  # the events are in the store before the restart
            await asyncio.sleep(0.01)
        await store.flush()
        after = CompatService(config, store, bus)  # the restarted controller
        await after.open()
        bus.publish("agent.state_changed", agent_id="1001", state="ready", previous="logged_out", reason=None)
        resumed = tasks.create_task(after.run())  # that event is this run's: written once
        lines = await written(6)
        await asyncio.sleep(0.2)
        lines = log_file.read_text().splitlines()
        resumed.cancel()
        await asyncio.gather(resumed, return_exceptions=True)
        committer.cancel()
        await asyncio.gather(committer, return_exceptions=True)
        await store.flush()
        writer.cancel()
    assert [line.split("|")[4] for line in lines] == ["QUEUESTART", "ENTERQUEUE", "CONNECT", "COMPLETECALLER",
                                                      "QUEUESTART", "ADDMEMBER"]
    assert lines[2].split("|")[5:] == ["0", "", "0"]  # holdtime from ENTERQUEUE, replayed for its state
    await store.close()


async def test_agents_added_or_changed_live_get_queue_log_members_and_cdr_phones(tmp_path: Path) -> None:
    kept = AcdAgentConfig(id="1001", name="A", number="1001", endpoint="8001", queues={"general": 0})
    config = Config(data_dir=str(tmp_path), acd=AcdSettings(agents=[kept]))
    store = Store(tmp_path / "controller.sqlite3")
    await store.open()
    service = CompatService(config, store, EventBus(store, time.time))
    added = AcdAgentConfig(id="1006", name="N", number="1006", endpoint="8006", queues={"general": 0, "vip": 1})
    moved = AcdAgentConfig(id="1001", name="A", number="1001", endpoint="8009", queues={"vip": 0})
    service.configuration_changed(config, Config(data_dir=str(tmp_path), acd=AcdSettings(agents=[moved, added])))
    assert service.formatter.agent_queues == {"1001": ["vip"], "1006": ["general", "vip"]}
    assert service.agent_endpoints == {"1001": "8009", "1006": "8006"}
    service.configuration_changed(config, Config(data_dir=str(tmp_path), acd=AcdSettings(agents=[moved])))
    assert "1006" in service.formatter.agent_queues  # a removed agent's last events still name their queues
    await store.close()


async def test_the_replay_after_a_crash_reads_the_hour_before_the_cursor_not_the_whole_stream(
        tmp_path: Path, store_target: StoreTarget) -> None:
    """The CTI stream has no index on time: the replay's first event (an hour before the cursor's) is found by
    sequence number, and the calls in progress at the cursor still get their state from it."""
    config = Config(data_dir=str(tmp_path), acd=AcdSettings(agents=[
        AcdAgentConfig(id="1001", name="A", number="1001", endpoint="8001", queues={"general": 0})]),
        compat=CompatSettings(queue_log=QueueLogSettings(enabled=True)))
    store = Store(store_target.target, **store_target.kwargs())  # type: ignore[arg-type]
    await store.open()
    now = time.time()
    await store.executemany(  # 20,000 events 10 s apart before the call's: 360 of them in the hour before
        "INSERT INTO cti_events (seq, at, type, data) VALUES (?, ?, 'agent.heartbeat', '{}')",
        [(seq, now - 10 * (20_000 - seq) - 1) for seq in range(1, 20_001)])
    bus = EventBus(store, time.time)
    await bus.open()

    async def published(*events: tuple[str, dict[str, Any]]) -> None:
        for type_, data in events:
            bus.publish(type_, **data)
        while bus.unpersisted:
            await asyncio.sleep(0.01)

    async with asyncio.TaskGroup() as tasks:
        writer = tasks.create_task(store.run_writer())
        committer = tasks.create_task(bus.run())
        await published(("call.offered", {"call_id": "c1", "caller": "13800138000", "did": "4008001234",
                                          "direction": "inbound"}),
                        ("call.queued", {"call_id": "c1", "queue": "general", "priority": 0, "skills": {},
                                         "position": 1}))
        await store.execute("CREATE TABLE compat_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL)")
        await store.execute("INSERT INTO compat_cursor (name, seq) VALUES ('compat', ?)", (bus.last_seq,))
        # The controller dies before writing this one's line.
        await published(("call.answered", {"call_id": "c1", "agent_id": "1001", "queue": "general", "wait": 3.0}))
        service = CompatService(config, store, bus)
        await service.open()
        service._lines.clear()  # (its QUEUESTART)
        if store.engine_name == "sqlite":
            from tests.conftest import SqliteSteps

            with SqliteSteps(store) as steps:
                await service._catch_up()
            assert steps.count < 40_000, steps.count  # (the stream read from its start: ~300,000)
        else:
            await service._catch_up()
        committer.cancel()
        writer.cancel()
    fields = [line.line().split("|") for line in service._lines]
    assert [(f[2], f[4]) for f in fields] == [("general", "CONNECT")]  # (the call's state: the replayed hour's)
    await store.close()
