"""The lease on a real PostgreSQL server (tests/pg_server.py): one leader, a standby that takes over when the
leader's process is gone or its lease expired, and the fence that refuses a deposed leader's writes."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from controller.config import Config, LeadershipSettings, StoreSettings
from controller.leadership import Leadership, leadership_problem, uses_leadership
from controller.store.db import Store, StoreError
from tests.pg_server import PostgresServer

# 10 renewals a lease: a loaded CI machine may stall for a second
LEASE = LeadershipSettings(enabled=True, lease_seconds=2.5, renew_interval=0.25)


def config_for(postgres: PostgresServer, url: str, node: str) -> Config:
    return replace(Config(), store=StoreSettings(url=url, password=postgres.password),
                   leadership=replace(LEASE, node_name=node, advertise_url=f"http://{node}.example:8080"))


class Lost:
    """Records why a leadership was lost (instead of ending the test's process)."""

    def __init__(self) -> None:
        self.why: list[str] = []

    def __call__(self, why: str) -> None:
        self.why.append(why)


async def lead(config: Config, lost: Lost) -> Leadership:
    leadership = Leadership(config, on_lost=lost)
    assert await asyncio.wait_for(leadership.wait_until_leader(asyncio.Event()), 10)
    return leadership


async def fenced_store(url: str, postgres: PostgresServer, leadership: Leadership, tmp: Any) -> Store:
    store = Store(url, password=postgres.password, spill_dir=tmp, application_name=leadership.application_name)
    store.fence, store.on_deposed = leadership.fence, leadership.lost
    await store.open()
    await store.execute("CREATE TABLE IF NOT EXISTS marks (name TEXT)")
    return store


async def marks(store: Store) -> list[str]:
    return [row["name"] for row in await store.fetchall("SELECT name FROM marks ORDER BY name")]


async def test_a_standby_waits_while_the_leader_renews(postgres: PostgresServer) -> None:
    url = postgres.new_database("lease")
    leader_lost, standby_lost = Lost(), Lost()
    leader = await lead(config_for(postgres, url, "a"), leader_lost)
    standby = Leadership(config_for(postgres, url, "b"), on_lost=standby_lost)
    stop = asyncio.Event()
    waiting = asyncio.create_task(standby.wait_until_leader(stop))
    try:
        await asyncio.sleep(LEASE.lease_seconds * 3)  # three leases: renewed all along
        assert not waiting.done() and leader.is_leader and not leader_lost.why
        assert standby.health()["leader"] == "http://a.example:8080" and not standby.health()["leader_lease_expired"]
        await leader.close()  # a graceful stop gives the lease up: the standby takes over at once
        started = time.monotonic()
        assert await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started < LEASE.renew_interval * 3
        assert standby.is_leader and standby.token is not None and not leader_lost.why
    finally:
        stop.set()
        await standby.close()


async def test_a_slow_look_at_the_lease_does_not_eat_the_new_leaders_lease(postgres: PostgresServer) -> None:
    """A loaded standby's look (the lease read, the old holder's sessions counted or ended) may take longer than
    a lease: the database counts the new lease from the taking transaction, so must the new leader. Counted
    from the look's first query, its deadline had passed when it took over: it stopped at once, with nobody
    leading (seen in test_standby on a loaded machine: "leader now" and "leadership lost" in one ms)."""
    url = postgres.new_database("lease")
    lost = Lost()
    leadership = Leadership(config_for(postgres, url, "slow"), on_lost=lost)
    read = leadership._engine.query

    def slow_read(sql: str, params: Any) -> Any:
        if sql.startswith("SELECT holder"):
            time.sleep(LEASE.lease_seconds)  # longer than lease_seconds - renew_interval
        return read(sql, params)
    leadership._engine.query = slow_read  # type: ignore[method-assign]
    try:
        assert await asyncio.wait_for(leadership.wait_until_leader(asyncio.Event()), 15)
        await asyncio.sleep(LEASE.renew_interval * 4)  # a few renewals
        assert leadership.is_leader and not lost.why, lost.why
    finally:
        await leadership.close()


async def test_a_deposed_leaders_writes_are_refused(postgres: PostgresServer, tmp_path: Any) -> None:
    """The leader stops renewing (its host cut off, as far as the database can tell); the standby waits for the
    lease to expire, ends the old leader's sessions and takes over; the old leader's next batch is refused."""
    url = postgres.new_database("lease")
    old_lost, new_lost = Lost(), Lost()
    old = await lead(config_for(postgres, url, "old"), old_lost)
    store = await fenced_store(url, postgres, old, tmp_path / "old")
    writer = asyncio.create_task(store.run_writer())  # retries a failed batch, as in the controller
    new: Leadership | None = None
    try:
        store.write("INSERT INTO marks VALUES ('before')")
        await store.flush()
        assert await marks(store) == ["before"]  # the positive twin: the leader's writes commit

        # Cut off: no renewal, and the watchdog that would end the process is silenced (a frozen host).
        assert old._renewer is not None and old._watchdog is not None
        old._renewer.cancel()
        old._watchdog.stop()
        assert old._timer is not None
        old._timer.cancel()
        started = time.monotonic()
        new = await lead(config_for(postgres, url, "new"), new_lost)
        waited = time.monotonic() - started
        assert LEASE.lease_seconds - 0.3 <= waited < LEASE.lease_seconds + 2, waited  # it waited for the expiry

        store.write("INSERT INTO marks VALUES ('after')")
        with pytest.raises(StoreError):  # its session was ended: the batch stays queued and is retried ...
            await store.flush()
        deadline = time.monotonic() + 5
        while not old_lost.why and time.monotonic() < deadline:  # ... on a new connection, where the fence refuses it
            await asyncio.sleep(0.05)
        assert old_lost.why and "another controller holds the lease" in old_lost.why[0]
        new_store = await fenced_store(url, postgres, new, tmp_path / "new")
        try:
            assert await marks(new_store) == ["before"]
            new_store.write("INSERT INTO marks VALUES ('by the new leader')")
            assert await marks(new_store) == ["before", "by the new leader"]
        finally:
            await new_store.close()
    finally:
        writer.cancel()
        store._pending.clear()
        await store.close(retry_seconds=0)
        await old.close()
        if new is not None:
            await new.close()


async def test_a_leader_that_cannot_renew_stops_acting_before_its_lease_expires(postgres: PostgresServer) -> None:
    url = postgres.new_database("lease")
    lost = Lost()
    leader = await lead(config_for(postgres, url, "a"), lost)
    try:
        assert leader.acquired_at is not None
        postgres.halt()  # the store unreachable: no renewal succeeds
        try:
            deadline = time.monotonic() + LEASE.lease_seconds + 2
            while not lost.why and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            stopped_after = time.monotonic() - leader.acquired_at
        finally:
            postgres.resume()
        assert lost.why and "could not be renewed" in lost.why[0], lost.why
        assert stopped_after < LEASE.lease_seconds, stopped_after  # before a standby may take over
        assert not leader.is_leader
    finally:
        await leader.close()


def test_active_standby_needs_a_postgresql_store() -> None:
    on_sqlite = replace(Config(), leadership=replace(LEASE, enabled=True))
    problem = leadership_problem(on_sqlite)
    assert problem and "PostgreSQL" in problem and not uses_leadership(on_sqlite)
    on_postgresql = replace(on_sqlite, store=StoreSettings(url="postgresql://ccc@db:5432/ccc"))
    assert leadership_problem(on_postgresql) is None and uses_leadership(on_postgresql)
    off = replace(on_postgresql, leadership=replace(LEASE, enabled=False))
    assert leadership_problem(off) is None and not uses_leadership(off)  # one controller, as before


@pytest.mark.parametrize("settings", [{"lease_seconds": 1.0, "renew_interval": 0.5}, {"renew_interval": 0.01},
                                      {"advertise_url": "cc1:8080"}, {"node_name": "a b"}])
def test_bad_lease_settings_are_refused(settings: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LeadershipSettings(**settings)
