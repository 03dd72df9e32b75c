"""The controller on PostgreSQL when the server goes away: the calls are served, the status says the store
is degraded and why, and once the server is back everything written meanwhile is committed (the
PostgreSQL twin of test_store_failing.py's full disk)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from controller.store.engines import PG_MIGRATION_LOCK
from tests.e2e.conftest import ControllerProcess, wait_until
from tests.e2e.test_cli import ccctl
from tests.e2e.test_ivr_acd import login
from tests.e2e.test_store_failing import a_call_reaches_agent_1001, answered_by_1001, queue_config, store_status
from tests.pg_server import PostgresServer
from tests.sipp import Phone

pytestmark = pytest.mark.e2e


async def test_a_caller_reaches_an_agent_while_postgresql_is_down(fresh_asterisk: Path, tmp_path: Path,
                                                                  postgres: PostgresServer) -> None:
    env = {"CCC_STORE_URL": postgres.new_database("e2e"), "CCC_STORE_PASSWORD": postgres.password}
    process = ControllerProcess(tmp_path / "data", config=queue_config(tmp_path), env=env)
    phone = Phone(15001, answer_after_ms=300, hold_ms=5000, calls=1)
    try:
        await process.start()
        await phone.start()
        assert (await store_status(process))["status"] == "ok"  # the positive twin of the check below

        postgres.halt()
        try:
            await login(process, "1001")  # its state change cannot be committed: the store has a backlog
            await asyncio.sleep(1)
            await a_call_reaches_agent_1001(process, phone)
            store = await store_status(process)
            assert store["status"] == "degraded" and store["engine"] == "postgresql", store
            assert store["pending"] > 0 and store["commit_failures"] > 0, store
            text = (await asyncio.to_thread(ccctl, "status", url=process.url)).stdout
            assert "store       DEGRADED since" in text and "(postgresql)" in text, text
        finally:
            postgres.resume()

        deadline = time.monotonic() + 20
        while (store := await store_status(process))["status"] != "ok" and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
        assert store["status"] == "ok" and store["pending"] == 0, store
        await answered_by_1001(process)  # nothing written while the server was down was lost
        visits = process.rows("SELECT agent_id, outcome FROM queue_calls")
        assert visits == [{"agent_id": "1001", "outcome": "answered"}], visits
        log_text = process.log.read_text()
        assert "store: commit failed" in log_text and "reconnecting to postgresql" in log_text
        assert postgres.password not in log_text
    finally:
        phone.kill()
        process.terminate()
        print(process.log.read_text()[-4000:])


async def test_a_stop_while_waiting_for_another_controllers_migration_ends_the_start_up(
        fresh_asterisk: Path, tmp_path: Path, postgres: PostgresServer) -> None:
    """Another controller migrating the schema holds the migration lock, so this one waits in its start-up, saying
    so. SIGTERM then (a `systemctl stop`) ends it at once and cleanly, with the schema untouched, and the next
    start, once the lock is free, runs. (Two stops in a row: tests/unit/test_controller_stop.py.)"""
    url = postgres.new_database("lock")
    env = {"CCC_STORE_URL": url, "CCC_STORE_PASSWORD": postgres.password}
    process = ControllerProcess(tmp_path / "data", env=env)
    holder: Any = postgres.admin(url.rsplit("/", 1)[1])
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", (PG_MIGRATION_LOCK,))
        await process.start(wait=False)
        assert process.process is not None

        async def waiting() -> bool:
            assert process.process is not None and process.process.poll() is None, "the controller exited"
            return "waiting for another controller to finish migrating" in process.log.read_text()

        await wait_until(waiting, timeout=30, interval=0.2)

        process.process.send_signal(signal.SIGTERM)  # (one: a second could land after its handlers are gone)
        exit_code = await asyncio.to_thread(process.process.wait, 10)  # (TimeoutExpired: it ignored the stop)
        log_text = process.log.read_text()
        assert exit_code == 0, log_text[-3000:]
        assert "stopped during start-up" in log_text and "controller stopped" in log_text, log_text[-3000:]
        tables = holder.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables.fetchone()[0] == 0  # nothing of the schema was left half-made

        holder.execute("SELECT pg_advisory_unlock(%s)", (PG_MIGRATION_LOCK,))
        await process.start()  # the next start carries on
        assert process.rows("SELECT count(*) AS n FROM schema_version") == [{"n": 1}]
    finally:
        holder.close()
        process.terminate()
        print(process.log.read_text()[-4000:])
