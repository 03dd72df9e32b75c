"""One schema and one set of SQL on both engines (a real SQLite file, a real PostgreSQL server): every
migration runs and is counted, the plugins' statements that had SQLite-only spellings (INSERT OR
REPLACE, group_concat, json_extract, json_each) give the same answers, and on PostgreSQL a cut
connection keeps the batch, reconnects and commits it once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from controller.acd.engine import AcdEngine
from controller.acd.model import AgentSettings, QueueSettings
from controller.clock import FakeClock
from controller.plugins.access.state_persistor import AccessRecords, AuditLog, UserRecord
from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.admin.state_persistor import AdminRecords
from controller.plugins.calls.live_state import LiveCallState
from controller.plugins.calls.state_persistor import CallRecords
from controller.plugins.recordings.state_persistor import RecordingIndex
from controller.store import db, engines
from controller.store.db import StatementFailed, Store, StoreUnavailable
from controller.store.engines import PostgresEngine, split_statements, to_postgresql
from controller.store.schema import MIGRATIONS
from tests.conftest import StoreTarget
from tests.pg_server import PostgresServer

NOW = 1_795_695_429.3772743  # sub-second: a REAL column must keep it exactly (PostgreSQL's REAL would not)


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "RETRY_SECONDS", (0.05, 0.2))


@pytest.fixture
def store(engine_store: Store) -> Store:
    """On each store engine (tests/conftest.py)."""
    return engine_store


async def schema_version(store: Store) -> int:
    if store.engine_name == "sqlite":
        row = await store.fetchone("PRAGMA user_version")
    else:
        row = await store.fetchone("SELECT version FROM schema_version")
    assert row is not None
    return int(row[0])


async def test_every_migration_runs_once_and_is_counted(store: Store, store_target: StoreTarget) -> None:
    assert await schema_version(store) == len(MIGRATIONS)
    await store.execute("INSERT INTO calls (call_id, channel_id, direction, started_at) VALUES (?, ?, ?, ?)",
                        ("c1", "ch1", "inbound", NOW))
    await store.close()
    again = Store(store_target.target, **store_target.kwargs())  # type: ignore[arg-type]
    await again.open()  # the migrations are not run again (they would fail: the tables exist)
    assert await schema_version(again) == len(MIGRATIONS)
    row = await again.fetchone("SELECT started_at FROM calls WHERE call_id = ?", ("c1",))
    assert row is not None and row["started_at"] == NOW
    await again.execute("INSERT INTO call_events (call_id, at, kind) VALUES (?, ?, ?)", ("c1", NOW, "a"))
    await again.execute("INSERT INTO call_events (call_id, at, kind) VALUES (?, ?, ?)", ("c1", NOW, "b"))
    ids = [row["id"] for row in await again.fetchall("SELECT id FROM call_events ORDER BY id")]
    assert len(ids) == 2 and ids[0] < ids[1]  # INTEGER PRIMARY KEY is generated on both engines
    await again.close()


async def test_a_numbers_history_is_its_newest_calls_of_both_directions_however_many_it_has(store: Store) -> None:
    clock = iter(NOW + n for n in range(1000))
    calls = CallRecords(store, lambda: next(clock))
    for n in range(300):  # a switchboard: many calls in from it, a few out to it, interleaved
        if n % 50 == 7:
            calls.started(f"out{n}", f"cho{n}", direction="outbound", caller="1003", did="02088881234")
        else:
            calls.started(f"in{n}", f"chi{n}", direction="inbound", caller="02088881234", did="4000")
        calls.started(f"other{n}", f"chx{n}", direction="inbound", caller="13912345678", did="4000")
    await store.flush()
    assert [h["call_id"] for h in await calls.history("02088881234", limit=4)] == ["in299", "in298", "in297", "in296"]
    before = NOW + 2 * 258  # the clock ticks twice per n: out257 started at NOW + 514
    assert [h["call_id"] for h in await calls.history("02088881234", limit=3, before=before)] == [
        "out257", "in256", "in255"]  # both directions, newest first, before the given time
    assert [h["call_id"] for h in await calls.history("13700137000")] == []  # a number never seen


async def test_the_plugins_sql_answers_the_same_on_both_engines(store: Store) -> None:
    clock = iter(NOW + n for n in range(100))
    calls = CallRecords(store, lambda: next(clock))
    calls.started("c1", "ch1", direction="inbound", caller="13912345678", did="4000")
    calls.started("c1", "ch1", direction="inbound", caller="13912345678", did="4000")  # again: ignored
    acd = AcdRecords(store, lambda: NOW)
    for queue, agent in (("sales", "1001"), ("support", "1002")):
        acd.enqueued("c1", queue, 0)
        acd.left("c1", "answered", 3.0, agent, None)
    calls.started("c2", "ch2", direction="outbound", caller="1003", did="13912345678")
    calls.event("c2", "customer_dialled", agent_id="1003", status="ANSWER")
    calls.ended("c1", reason="caller_hangup")
    await store.flush()
    history = await calls.history("13912345678")
    assert [(h["call_id"], sorted(h["agents"]), sorted(h["queues"])) for h in history] == [
        ("c2", [], []), ("c1", ["1001", "1002"], ["sales", "support"])]
    assert await calls.has_served("13912345678", "1003") and await calls.has_served("13912345678", "1002")
    assert not await calls.has_served("13912345678", "1009")  # the negative twin
    assert await calls.agents_of("c2") == {"1003"} and await calls.agents_of("c1") == {"1001", "1002"}

    assert await calls.agent_calls("1009", since=0) == []

    recordings = RecordingIndex(store, lambda: NOW)
    recordings.started(name="r1", call_id="c1", caller="139", queue="sales", agents=["1001", "1002"], file="f",
                       reason="on_demand")
    assert [r["name"] for r in await recordings.search(agent_id="1002")] == ["r1"]
    assert await recordings.search(agent_id="100") == []  # an element, not a substring

    access = AccessRecords(store)
    user = UserRecord("ann", "agent", "1001", "hash1", 0, None, NOW, NOW)
    await access.save_user(user)
    await access.save_user(UserRecord("ann", "supervisor", None, "hash2", 2, NOW + 60, NOW, NOW))  # replaced
    assert [(u.role, u.password_hash, u.failures) for u in await access.users()] == [("supervisor", "hash2", 2)]

    center = AcdEngine([QueueSettings("sales")], [AgentSettings("1001", "", "", "8001", queues={"sales": 0})],
                       FakeClock(NOW))
    for change in (lambda: center.login("1001"), lambda: center.not_ready("1001", "meal")):  # a row, then again
        change()
        acd.save_changes_at_commit(center.take_unsaved)
        await store.flush()
    assert await acd.load_snapshot() == center.snapshot()

    live = LiveCallState(store, lambda: NOW)
    live.save("c1", "queue", {"queue": "sales"})
    live.save("c1", "queue", {"queue": "support"})
    assert (await live.load_all())["c1"]["queue"] == {"queue": "support"}

    admin = AdminRecords(store)
    assert await admin.is_empty()
    audit = AuditLog(store, lambda: NOW)
    await store.execute_atomic([admin.put("queue", "sales", {"name": "sales"}, 0, NOW, "user:ann"),
                                admin.put("queue", "sales", {"name": "sales", "weight": 2}, 1, NOW, "user:ann"),
                                admin.mark_seeded(NOW), admin.mark_seeded(NOW + 1),
                                audit.statement("user:ann", "admin", "config.put", target="queue/sales")])
    assert [(r.key, r.data, r.position) for r in await admin.rows()] == [("sales", {"name": "sales", "weight": 2}, 1)]
    assert not await admin.is_empty()
    audit.record("user:ann", "admin", "token.create")
    assert [e["action"] for e in await audit.query(action="config.")] == ["config.put"]  # a prefix, not LIKE
    with pytest.raises(StatementFailed):  # a group with a statement that can never succeed: none of it
        await store.execute_atomic([admin.delete("queue", "sales"), (
            "INSERT INTO admin_items (kind, key, data, updated_at, updated_by) VALUES ('q', 'k', NULL, 0, 'a')", ())])
    assert [r.key for r in await admin.rows()] == ["sales"]


def test_statements_are_rewritten_for_postgresql_outside_literals_only() -> None:
    assert to_postgresql("SELECT a FROM t WHERE b = ? AND c = '?' AND d = ? -- ?") == \
        "SELECT a FROM t WHERE b = $1 AND c = '?' AND d = $2 -- ?"
    assert to_postgresql("CREATE TABLE x (id INTEGER PRIMARY KEY, at REAL NOT NULL, -- REAL time\n"
                         " n integer DEFAULT 'INTEGER', b BLOB)") == \
        ("CREATE TABLE x (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, at DOUBLE PRECISION NOT NULL, \n"
         " n BIGINT DEFAULT 'INTEGER', b BYTEA)")
    assert to_postgresql("INSERT INTO x (at) VALUES (?)") == "INSERT INTO x (at) VALUES ($1)"  # not DDL: as is
    assert split_statements("CREATE TABLE a (t TEXT DEFAULT ';'); -- one; two\nCREATE INDEX i ON a(t);\n") == \
        ["CREATE TABLE a (t TEXT DEFAULT ';')", " -- one; two\nCREATE INDEX i ON a(t)"]


@pytest.fixture
def pg(postgres: PostgresServer) -> PostgresServer:
    return postgres


async def pg_store(server: PostgresServer, url: str, tmp: Any) -> Store:
    store = Store(url, password=server.password, spill_dir=tmp, statement_timeout=2.0)
    await store.open()
    return store


async def test_a_cut_connection_keeps_the_batch_reconnects_and_commits_it_once(pg: PostgresServer,
                                                                              tmp_path: Any) -> None:
    store = await pg_store(pg, pg.new_database(), tmp_path)
    writer = asyncio.create_task(store.run_writer())
    await store.execute("INSERT INTO call_events (call_id, at, kind) VALUES (?, ?, ?)", ("c", NOW, "1"))
    assert isinstance(store.engine, PostgresEngine) and store.engine.conn is not None
    backend = store.engine.conn.info.backend_pid
    with pg.admin(store.engine.conn.info.dbname) as admin:  # type: ignore[attr-defined]
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    for n in (2, 3):
        store.write("INSERT INTO call_events (call_id, at, kind) VALUES (?, ?, ?)", ("c", NOW, str(n)))
    async with asyncio.timeout(10):
        while store._pending or store._committing or store.commits < 2:
            await asyncio.sleep(0.02)
    assert store.commit_failures >= 1  # the batch met the cut connection ...
    kinds = [row["kind"] for row in await store.fetchall("SELECT kind FROM call_events ORDER BY id")]
    assert kinds == ["1", "2", "3"]  # ... was kept, and committed once after reconnecting
    assert store.engine.conn.info.backend_pid != backend and store.health()["status"] == "ok"
    writer.cancel()
    await store.close()


async def test_two_controllers_opening_one_database_at_once_migrate_it_once(pg: PostgresServer,
                                                                           tmp_path: Any) -> None:
    url = pg.new_database()
    stores = [Store(url, password=pg.password, spill_dir=tmp_path / str(n)) for n in range(3)]
    await asyncio.gather(*(store.open() for store in stores))
    assert {await schema_version(store) for store in stores} == {len(MIGRATIONS)}
    for store in stores:
        await store.close()


async def test_postgresql_errors_are_told_apart_by_the_server_s_own_codes(pg: PostgresServer, tmp_path: Any) -> None:
    store = await pg_store(pg, pg.new_database(), tmp_path)
    engine = store.engine
    import psycopg

    for wrong in ("SELEC 1", "SELECT * FROM nowhere", "SELECT 1/0"):
        with pytest.raises(psycopg.Error) as statement_error:
            await store.fetchall(wrong)
        assert not engine.is_environment_error(statement_error.value)
    unreachable = PostgresEngine(f"postgresql://ccc@127.0.0.1:{pg.port + 1}/x", connect_timeout=1)
    with pytest.raises(psycopg.OperationalError) as refused:
        await asyncio.to_thread(unreachable._connect)
    assert engine.is_environment_error(refused.value)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):  # a statement over the server's time limit: retried, not dropped
        await store.fetchall("SELECT pg_sleep(5)")
    assert time.monotonic() - started < 4
    await store.close()


class _CommitAnswerLost:
    """The store's connection, except that right after the server committed, the connection is cut (by the
    server: pg_terminate_backend), so the client never hears that the COMMIT succeeded."""

    def __init__(self, conn: Any, server: PostgresServer) -> None:
        self._conn = conn
        self._server = server
        self.cut = False

    def execute(self, sql: str, *args: Any) -> Any:
        result = self._conn.execute(sql, *args)
        if sql == "COMMIT" and not self.cut:
            self.cut = True
            with self._server.admin(self._conn.info.dbname) as admin:  # type: ignore[attr-defined]
                admin.execute("SELECT pg_terminate_backend(%s)", (self._conn.info.backend_pid,))
            self._conn.execute("SELECT 1")  # raises: the connection is gone
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


@pytest.mark.parametrize("landed", [True, False])
async def test_a_commit_whose_answer_was_lost_is_neither_lost_nor_written_twice(
        pg: PostgresServer, tmp_path: Any, landed: bool) -> None:
    store = await pg_store(pg, pg.new_database(), tmp_path)
    assert isinstance(store.engine, PostgresEngine) and store.engine.conn is not None
    proxy = _CommitAnswerLost(store.engine.conn, pg)
    if landed:
        store.engine.conn = proxy
    else:  # the negative twin: the connection is cut before COMMIT (nothing landed)
        with pg.admin(store.engine.conn.info.dbname) as admin:  # type: ignore[attr-defined]
            admin.execute("SELECT pg_terminate_backend(%s)", (store.engine.conn.info.backend_pid,))
    store.write("INSERT INTO call_events (call_id, at, kind) VALUES (?, ?, ?)", ("c", NOW, "1"))
    store.write("INSERT INTO call_events (call_id, at, kind) VALUES (?, ?, ?)", ("c", NOW, None))  # rejected
    store.write("INSERT INTO call_events (call_id, at, kind) VALUES (?, ?, ?)", ("c", NOW, "2"))
    with pytest.raises(StoreUnavailable):
        await store.flush()
    assert proxy.cut is landed
    store.write("INSERT INTO call_events (call_id, at, kind) VALUES (?, ?, ?)", ("c", NOW, "3"))
    writer = asyncio.create_task(store.run_writer())  # the next try asks the server about the broken COMMIT
    async with asyncio.timeout(10):
        while store._pending or store._committing:
            await asyncio.sleep(0.02)
    writer.cancel()
    kinds = [row["kind"] for row in await store.fetchall("SELECT kind FROM call_events ORDER BY id")]
    assert kinds == ["1", "2", "3"]
    assert store.rejected == 1 and store.writes == 3
    await store.close()


async def test_the_url_s_own_options_are_kept_beside_the_store_s_timeouts(pg: PostgresServer, tmp_path: Any) -> None:
    """A site keeping the tables in a schema of its own (`options=-c search_path=...` in the URL)."""
    url = pg.new_database()
    with pg.admin(url.rsplit("/", 1)[1]) as admin:  # type: ignore[attr-defined]
        admin.execute("CREATE SCHEMA ccc")
    store = await pg_store(pg, f"{url}?options=-c%20search_path%3Dccc", tmp_path)
    row = await store.fetchone("SELECT current_setting('search_path') AS path,"
                               " current_setting('statement_timeout') AS timeout")
    assert row is not None and (row["path"], row["timeout"]) == ("ccc", "2s")
    tables = await store.fetchall("SELECT table_schema FROM information_schema.tables WHERE table_name = 'calls'")
    assert [t["table_schema"] for t in tables] == ["ccc"]
    await store.close()


async def test_a_server_that_cannot_be_used_at_start_is_refused_with_where_and_why(pg: PostgresServer,
                                                                                    tmp_path: Any) -> None:
    from controller.store.db import StoreNotWritable

    url = pg.new_database()
    wrong = Store(url, password="not-the-password", spill_dir=tmp_path)
    with pytest.raises(StoreNotWritable) as refused:
        await wrong.open()
    assert "password authentication failed" in str(refused.value) and "not-the-password" not in str(refused.value)
    assert f"127.0.0.1:{pg.port}" in str(refused.value)
    gone = Store(f"postgresql://ccc@127.0.0.1:{pg.port + 1}/x", password=pg.password, spill_dir=tmp_path,
                 connect_timeout=1)
    with pytest.raises(StoreNotWritable, match="cannot open the store"):
        await gone.open()
    right = Store(url, password=pg.password, spill_dir=tmp_path)  # the positive twin
    await right.open()
    await right.close()


async def test_migrations_are_not_cut_by_the_statement_timeout(pg: PostgresServer, tmp_path: Any,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration on a big table may take longer than a call's statement may: it is given the time."""
    slow = [*MIGRATIONS, "CREATE TABLE slow AS SELECT 1 AS n FROM pg_sleep(1.5)"]
    monkeypatch.setattr(db, "MIGRATIONS", slow)
    store = Store(pg.new_database(), password=pg.password, spill_dir=tmp_path, statement_timeout=0.5)
    await store.open()
    assert await schema_version(store) == len(slow)
    with pytest.raises(StoreUnavailable):  # the store's own statements still have their limit
        await store.fetchall("SELECT pg_sleep(1.5)")
    await store.close()


async def test_an_agents_own_calls_on_both_engines(store: Store) -> None:
    now = [NOW]
    calls, acd = CallRecords(store, lambda: now[0]), AcdRecords(store, lambda: now[0])
    calls.started("in", "ch1", direction="inbound", caller="13912345678", did="4000")
    acd.enqueued("in", "sales", 0)
    now[0] += 10
    acd.left("in", "answered", 10.0, "1001", None)  # 1001 answers after 10 s in the queue
    now[0] += 65
    acd.talk_ended("in")
    calls.ended("in", reason="caller_hangup")
    calls.disposition("in", agent_id="1001", disposition="resolved", notes="")
    calls.started("out", "ch2", direction="outbound", caller="1001", did="13800138000")
    now[0] += 4
    calls.event("out", "customer_dialled", agent_id="1001", status="ANSWER")
    now[0] += 30
    calls.ended("out", reason="customer_hangup")
    calls.started("busy", "ch3", direction="outbound", caller="1001", did="02088881234")
    calls.event("busy", "customer_dialled", agent_id="1001", status="BUSY")
    calls.ended("busy", reason="customer_busy")
    calls.started("theirs", "ch4", direction="inbound", caller="13700137000", did="4000")  # a colleague's
    acd.enqueued("theirs", "sales", 0)
    acd.left("theirs", "answered", 1.0, "1002", None)
    calls.started("missed", "ch5", direction="inbound", caller="13600136000", did="4000")  # offered, not taken
    acd.enqueued("missed", "sales", 0)
    acd.offer("missed", "1001", 8.0, "no_answer")
    acd.left("missed", "abandoned", 9.0, None)
    await store.flush()
    mine = await calls.agent_calls("1001", since=NOW - 1)
    assert [(c["call_id"], c["direction"], c["number"], c["answered"], c["talk_seconds"], c["end_reason"],
             c["disposition"]) for c in mine] == [
        ("busy", "outbound", "02088881234", False, None, "customer_busy", None),
        ("out", "outbound", "13800138000", True, 30.0, "customer_hangup", None),
        ("in", "inbound", "13912345678", True, 65.0, "caller_hangup", "resolved")]
    assert [c["call_id"] for c in await calls.agent_calls("1002", since=NOW - 1)] == ["theirs"]
    assert [c["call_id"] for c in await calls.agent_calls("1001", since=NOW - 1, limit=1)] == ["busy"]
    assert await calls.agent_calls("1001", since=now[0] + 1) == []  # older than the window


async def test_a_callers_history_aggregates_in_sqlite_itself(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The history read at each enqueue (the agent's screen pop) uses the engine's own aggregate: on SQLite
    before 3.44 group_concat, not the Python `string_agg` registered for other SQL (Python per row)."""
    monkeypatch.setattr(engines._StringAgg, "step", _python_aggregate_used)
    calls, acd = CallRecords(store, lambda: NOW), AcdRecords(store, lambda: NOW)
    calls.started("c1", "ch1", direction="inbound", caller="13912345678", did="4000")
    acd.enqueued("c1", "sales", 0)
    acd.left("c1", "answered", 3.0, "1001", None)
    await store.flush()
    history = await calls.history("13912345678")
    assert [(h["call_id"], h["agents"], h["queues"]) for h in history] == [("c1", ["1001"], ["sales"])]


def _python_aggregate_used(*_args: Any) -> None:
    raise AssertionError("the Python string_agg ran")


async def test_a_finished_call_gets_its_data_and_its_end_unless_it_has_one(store: Store) -> None:
    calls = CallRecords(store, lambda: NOW)
    for call_id in ("open", "lost"):
        calls.started(call_id, f"ch-{call_id}", direction="inbound", caller="13912345678", did="4000")
    calls.ended("lost", reason="lost", at=NOW - 5)  # its end written first (a restart found it gone)
    calls.finished("open", {"tier": "gold"}, reason="caller_hangup", cause=16, cause_txt="Normal Clearing")
    calls.finished("lost", {"tier": "silver"}, reason="caller_hangup", cause=None, cause_txt=None)
    await store.flush()
    ended = {c: (r["data"], r["ended_at"], r["end_reason"], r["hangup_cause"], r["hangup_cause_txt"])
             for c in ("open", "lost") if (r := await calls.get(c)) is not None}
    assert ended == {"open": ({"tier": "gold"}, NOW, "caller_hangup", 16, "Normal Clearing"),
                     "lost": ({"tier": "silver"}, NOW - 5, "lost", None, None)}


async def test_a_cti_event_enters_no_index_but_an_alert_enters_the_alerts_own(engine_store: Store) -> None:
    """~15 events a call, each commit rewrote the last page of an index on every event's time (~4.3 of a full-path
    call's ~49 WAL pages at 10 calls/s, README "Benchmarks", third round, fifth session): only alerts, read by
    time, have one; the others are read by their sequence number."""
    store = engine_store
    await store.executemany("INSERT INTO cti_events (seq, at, type, data) VALUES (?, ?, ?, '{}')",
                            [(1, 10.0, "call.queued"), (2, 11.0, "alert.raised"), (3, 12.0, "call.answered")])
    if store.engine_name == "sqlite":
        indexes = await store.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cti_events'")
        entries = await store.fetchall("SELECT COUNT(*) AS n FROM cti_events INDEXED BY cti_events_alerts"
                                       " WHERE type = 'alert.raised' AND at >= 0")
        assert [row["name"] for row in indexes] == ["cti_events_alerts"] and entries[0]["n"] == 1
    else:
        indexes = await store.fetchall("SELECT indexname AS name FROM pg_indexes WHERE tablename = 'cti_events'"
                                       " ORDER BY indexname")
        assert [row["name"] for row in indexes] == ["cti_events_alerts", "cti_events_pkey"]
