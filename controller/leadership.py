"""Active/standby controllers on one PostgreSQL store: which process leads (README "Active/standby controllers").

A lease row with a fencing token, in the database every controller already uses:
- `controller_lease` (one row): the holder, a token raised at each takeover (the fence), the holder's advertised
  URL, and `expires_at` on the database's clock (the hosts' clocks are never compared).
- The leader renews it every `renew_interval` (`UPDATE ... WHERE token = ours`). When no renewal has succeeded
  for `lease_seconds - renew_interval`, counted from when the last successful one was *sent* (so before the
  database's expiry), it stops acting at once: a timer on the event loop ends the process (systemd starts it
  again, as a standby). The timer does not wait on the network, so a hung connection cannot keep it acting.
- A standby looks every `renew_interval`. It takes over when the holder's sessions are all gone from
  `pg_stat_activity` (the process died: the server sees its connections close at once, so a SIGKILL costs one
  poll, not a lease), or when the lease has expired (its host is cut off: its connections linger until TCP
  keepalives give up, so the standby ends them with `pg_terminate_backend`, which also drops any row lock they
  hold). It raises the token in the same UPDATE, conditioned on the token it read (two standbys: one wins).
- Fencing: every store batch first reads the lease row `FOR SHARE` with our token in its own transaction
  (`Store.fence`); another token refuses the batch and ends the process. The takeover's UPDATE waits for
  batches in flight, so a deposed leader's batch commits before the takeover (the new leader reads it) or never.

Why not a session advisory lock alone: it cannot fence writes (there is no token to check in a batch), and a
lock on a dead TCP connection is held until the server notices, which the old holder cannot see from its side.
Both controllers must use the same database role (or the standby's must have pg_signal_backend and
pg_read_all_stats) to see and end the old holder's sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from controller.config import Config, LeadershipSettings
from controller.store.engines import PG_MIGRATION_LOCK, PostgresEngine, is_url

log = logging.getLogger("controller.leadership")

#: Exit status of a leader that lost its lease: systemd starts it again (as a standby).
EXIT_DEPOSED = 4
#: The prefix of every PostgreSQL session of a controller; the rest is its holder id.
APPLICATION_PREFIX = "ccc-controller:"

_CREATE = """CREATE TABLE IF NOT EXISTS controller_lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    url TEXT NOT NULL,
    acquired_at TIMESTAMPTZ,
    expires_at TIMESTAMPTZ NOT NULL)"""
_SEED = "INSERT INTO controller_lease VALUES (1, '', 0, '', NULL, '-infinity') ON CONFLICT (id) DO NOTHING"
_READ = "SELECT holder, token, url, expires_at < now() AS expired FROM controller_lease WHERE id = 1"
#: The sessions of a holder (its store's and its lease's connections); to end them: `_TERMINATE`.
_SESSIONS = "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE application_name LIKE ? AND pid <> pg_backend_pid()"
_TERMINATE = ("SELECT COUNT(pg_terminate_backend(pid)) AS n FROM pg_stat_activity"
              " WHERE application_name LIKE ? AND pid <> pg_backend_pid()")
_TAKE = ("UPDATE controller_lease SET holder = ?, token = token + 1, url = ?, acquired_at = now(),"
         " expires_at = now() + make_interval(secs => ?) WHERE id = 1 AND token = ? RETURNING token")
_RENEW = ("UPDATE controller_lease SET expires_at = now() + make_interval(secs => ?)"
          " WHERE id = 1 AND token = ? AND holder = ? RETURNING token")
#: `Store.fence`: a row only while we hold the lease; FOR SHARE makes a takeover wait for the batch.
FENCE = "SELECT token FROM controller_lease WHERE id = 1 AND token = ? AND holder = ? FOR SHARE"


def uses_leadership(config: Config) -> bool:
    """Active/standby is on (`leadership.enabled`, which needs a PostgreSQL store: `leadership_problem`)."""
    return config.leadership.enabled and is_url(config.store.url)


def leadership_problem(config: Config) -> str | None:
    """Why the configuration cannot run active/standby, if it asks for it."""
    if config.leadership.enabled and not is_url(config.store.url):
        return ("leadership.enabled: active/standby controllers share a PostgreSQL store; set store.url"
                " (README \"Active/standby controllers\"), or turn leadership off")
    return None


def holder_id(settings: LeadershipSettings) -> str:
    """This process in the lease and in PostgreSQL's application_name (at most 63 bytes): node, pid, a nonce."""
    node = settings.node_name or socket.gethostname().split(".")[0][:24]
    return f"{node}:{os.getpid()}:{secrets.token_hex(3)}"


def advertised_url(config: Config) -> str:
    if config.leadership.advertise_url:
        return config.leadership.advertise_url
    host = config.http.listen if config.http.listen not in ("0.0.0.0", "::", "") else socket.getfqdn()
    return f"{'https' if config.http.tls else 'http'}://{host}:{config.http.port}"


@dataclass
class LeaseView:
    """The lease as a standby last read it (for /healthz and the 503 answers)."""

    holder: str = ""
    url: str = ""
    expired: bool = True
    read_at: float = 0.0  # monotonic; 0: never read


class Leadership:
    """The lease of one controller process: wait for it (standby), then keep it (leader) or stop acting."""

    def __init__(self, config: Config, *, on_lost: Callable[[str], None] | None = None) -> None:
        self.settings = config.leadership
        self.holder = holder_id(self.settings)
        self.application_name = APPLICATION_PREFIX + self.holder
        self.url = advertised_url(config)
        store = config.store
        # The lease's own connection: timeouts of a lease, not of a batch (libpq keepalives and tcp_user_timeout).
        self._engine = PostgresEngine(store.url, password=store.password,
                                      connect_timeout=min(store.connect_timeout, self.settings.lease_seconds),
                                      statement_timeout=self.settings.lease_seconds,
                                      application_name=self.application_name + ":lease")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")
        self.token: int | None = None
        self.seen = LeaseView()
        self.store_reachable = False
        self.on_lost = on_lost or _exit_deposed
        self._watchdog: Watchdog | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.acquired_at: float | None = None  # monotonic

    @property
    def is_leader(self) -> bool:
        return self.token is not None

    @property
    def fence(self) -> tuple[str, tuple[Any, ...]]:
        assert self.token is not None, "not the leader"
        return FENCE, (self.token, self.holder)

    # -- standby ----------------------------------------------------------------------------------

    async def wait_until_leader(self, stop: asyncio.Event) -> bool:
        """Poll the lease until this process holds it (True) or `stop` is set (False)."""
        interval = self.settings.renew_interval
        while not stop.is_set():
            started = time.monotonic()
            try:
                taken: tuple[int, float] | None = await self._run(self._try_take_sync)
                self.store_reachable = True
            except Exception as exc:  # the server unreachable: try again (still a standby)
                if self.store_reachable or self.seen.read_at == 0:
                    log.warning("standby: cannot read the lease (%s: %s); trying again", type(exc).__name__, exc)
                self.store_reachable = False
                taken = None
            if taken is not None:
                self._became_leader(*taken)
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, interval - (time.monotonic() - started)))
        return False

    def _try_take_sync(self) -> tuple[int, float] | None:
        """One look at the lease; when this process took it, the new token and when the taking transaction was
        sent (monotonic): the database counts the lease from that transaction's start, not from the look's
        first query (a slow look must not eat the new leader's lease: it would stop at once)."""
        engine = self._engine
        if engine.conn is None:
            self._prepare_sync()
        row = engine.query(_READ, ())[0]
        holder, token, expired = str(row["holder"]), int(row["token"]), bool(row["expired"])
        self.seen = LeaseView(holder, str(row["url"]), expired, time.monotonic())
        sessions_of_holder = (APPLICATION_PREFIX + _like_literal(holder) + "%",)
        sessions = int(engine.query(_SESSIONS, sessions_of_holder)[0]["n"]) if holder else 0
        if sessions and not expired:
            return None  # a live leader
        if sessions:
            ended = engine.query(_TERMINATE, sessions_of_holder)[0]["n"]
            log.warning("the lease of %s expired with %d of its sessions left (its host cut off?): ended them",
                        holder, ended)
        sent_at = time.monotonic()
        with _transaction(engine):
            engine.execute("SET LOCAL lock_timeout = '2s'", ())  # behind a batch in flight, not forever
            taken = engine.query(_TAKE, (self.holder, self.url, self.settings.lease_seconds, token))
        if not taken:
            return None  # another standby was faster
        if holder:
            log.warning("took the lease over from %s (%s)", holder,
                        "its lease expired" if expired else "its process is gone")
        return int(taken[0]["token"]), sent_at

    def _prepare_sync(self) -> None:
        """Connect, and create the lease table when the database has none yet (under the migrations' lock)."""
        engine = self._engine
        with _transaction(engine):
            engine.query("SELECT pg_advisory_xact_lock(?)", (PG_MIGRATION_LOCK,))
            engine.execute(_CREATE, ())
            engine.execute(_SEED, ())

    # -- leader -----------------------------------------------------------------------------------

    def _became_leader(self, token: int, sent_at: float) -> None:
        self.token = token
        self.acquired_at = time.monotonic()
        log.warning("leader now (lease token %d, %s); connecting to Asterisk", token, self.holder)
        self._watchdog = Watchdog(self._expired)
        self._arm(sent_at)
        self._watchdog.start()
        self._renewer = asyncio.get_running_loop().create_task(self._keep())

    def _arm(self, sent_at: float) -> None:
        """Stop acting at `sent_at + lease - renew_interval` unless a later renewal succeeds first. Twice: a
        thread (a lagging event loop cannot delay it) and a timer on the loop (after a freeze, SIGSTOP or a
        suspended VM, the loop runs an overdue timer before any task sees what arrived meanwhile)."""
        deadline = sent_at + self.settings.lease_seconds - self.settings.renew_interval
        if self._watchdog is not None:
            self._watchdog.extend(deadline)
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(loop.time() + (deadline - time.monotonic()), self._expired)

    def _expired(self) -> None:
        self.lost(f"the lease could not be renewed for {self.settings.lease_seconds - self.settings.renew_interval}"
                  " s (the store unreachable?)")

    def lost(self, why: str) -> None:
        """Stop acting at once: no call, no write, no event more from this process."""
        if self.token is None:
            return
        self.token = None
        log.critical("leadership lost: %s; this controller stops acting now", why)
        self.on_lost(why)

    async def _keep(self) -> None:
        interval = self.settings.renew_interval
        while self.token is not None:
            sent_at = time.monotonic()
            try:
                renewed = await self._run(self._renew_sync, self.token)
            except Exception as exc:
                log.warning("lease renewal failed (%s: %s); trying again", type(exc).__name__, exc)
                renewed = None
            if renewed is False:
                self.lost("another controller holds the lease")
                return
            if renewed and self.token is not None:
                self._arm(sent_at)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - sent_at)))

    def _renew_sync(self, token: int) -> bool:
        return bool(self._engine.query(_RENEW, (self.settings.lease_seconds, token, self.holder)))

    async def close(self) -> None:
        """A graceful stop: give the lease up, so a standby takes over without waiting for it to expire."""
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._timer is not None:
            self._timer.cancel()
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        token, self.token = self.token, None
        if token is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._run(self._engine.query, "UPDATE controller_lease SET expires_at ="
                                                 " '-infinity' WHERE id = 1 AND token = ? RETURNING token", (token,)),
                                       self.settings.lease_seconds)
        await asyncio.get_running_loop().run_in_executor(self._executor, self._engine.close)
        self._executor.shutdown(wait=False)

    async def _run(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)

    # -- HTTP while standing by -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """What a standby's /healthz says: the guard counts a standby that reaches the store as a controller."""
        return {"status": "standby", "role": "standby", "ari_connected": False,
                "leader": self.seen.url or None, "leader_lease_expired": self.seen.expired,
                "store_reachable": self.store_reachable}

    def standby_app(self) -> web.Application:
        """Every request: 503 and where the leader is (its advertised URL from the lease row)."""
        async def healthz(_request: web.Request) -> web.Response:
            return web.json_response(self.health(), status=503)

        async def elsewhere(_request: web.Request) -> web.Response:
            leader = self.seen.url or None
            headers = {"Retry-After": str(max(1, round(self.settings.lease_seconds)))}
            if leader:
                headers["X-CCC-Leader"] = leader
            where = f"the leader is at {leader}" if leader else "no leader is known yet"
            return web.json_response({"error": f"standby: this controller does not lead; {where}",
                                      "leader": leader}, status=503, headers=headers)

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_route("*", "/{tail:.*}", elsewhere)
        return app


class Watchdog(threading.Thread):
    """Calls `on_expired` once the deadline passes without being extended. A thread, not a timer on the event
    loop: a busy or lagging loop must not delay the leader's own stop past the moment a standby may take over."""

    def __init__(self, on_expired: Callable[[], None]) -> None:
        super().__init__(name="lease-watchdog", daemon=True)
        self._on_expired = on_expired
        self._deadline = float("inf")  # monotonic
        self._stopped = False
        self._changed = threading.Condition()

    def extend(self, deadline: float) -> None:
        with self._changed:
            self._deadline = deadline
            self._changed.notify()

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def run(self) -> None:
        with self._changed:
            while not self._stopped and (remaining := self._deadline - time.monotonic()) > 0:
                self._changed.wait(remaining)
            if self._stopped:
                return
        self._on_expired()


@contextlib.contextmanager
def _transaction(engine: PostgresEngine) -> Iterator[None]:
    """BEGIN ... COMMIT on the lease's connection; rolled back when the block raises."""
    engine.begin()
    try:
        yield
        engine.commit()
    except BaseException:
        if engine.in_transaction():
            engine.rollback()
        raise


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _exit_deposed(_why: str) -> None:
    logging.shutdown()
    os._exit(EXIT_DEPOSED)
