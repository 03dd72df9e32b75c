"""The store: SQLite in the data directory (the default) or PostgreSQL (`store: url:`), used from one
dedicated thread. `controller.store.engines` holds what differs between the two engines.

Database calls block, so none of them run on the event loop: every statement goes to a single
worker thread (which also keeps the connection single-threaded). Writes are batched: `write()`
queues a statement and returns at once; the writer commits whatever has queued in one
transaction a few ms after the first of them (BATCH_WINDOW_SECONDS), so a call's events, or a burst
of calls, cost one commit rather than one each. `execute()` and `flush()` commit at once and wait
until the data is committed, for the places that must not continue before (e.g. an API call that
reports success). WAL mode lets readers run while the writer commits.

Failures are of two kinds and handled apart:
- a statement that can never succeed (a value out of range, a constraint, an SQL error) fails
  alone: it is logged, reported to whoever `execute()`s it, and the rest of its batch commits;
- the database cannot be written now (disk full, I/O error, read-only files, the PostgreSQL server
  unreachable or restarting: the connection is opened again at the next try): the whole batch
  stays queued, in order, and is retried with backoff; `health()` says the store is degraded,
  `flush()` raises `StoreUnavailable` at once, and reads still answer from what is committed.
  On `close()` what still cannot be committed is saved to a spill file next to the database
  (PostgreSQL: in the data directory) (JSON lines, 0600) and replayed on the next start.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import errno
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from controller.hooks import nothing
from controller.store.bounds import OutOfRange, check_params
from controller.store.engines import (
    SQLITE_ENVIRONMENT_ERRORS,
    Dialect,
    Engine,
    OpenFailed,
    PostgresEngine,
    Row,
    SqliteEngine,
    engine_for,
)
from controller.store.schema import MIGRATIONS

log = logging.getLogger("controller.store")

Params = Sequence[Any] | dict[str, Any]
#: A failed commit is retried after the first delay, doubling up to the second.
RETRY_SECONDS = (0.5, 10.0)
#: The writer cuts a batch this long after its first write (the oldest statement not yet committed), so the events
#: of the next few ms go in the same transaction: a call's ~59 statements come with ~15 ARI events spread over its
#: life, and an idle store that committed each write at once made one commit per event at 10 calls/s (~7 per call,
#: each ~23 pwrite64 for ~11 WAL frames, ~6 file locks, a hand-off to the store's thread and back, and a CTI flush
#: to each /ws client); a busy store that started a commit at most every 10 ms made ~2 at 80 calls/s. bench_fullpath at
#: 10 calls/s (README "Benchmarks", third round, third session), window 10 / 20 / 30 / 50 ms: 4.4 / 3.0 / 2.4 / 1.8
#: commits per call (7.0 before); 20 ms takes most of it for the smallest delay and loss bound. Nothing
#: waits for it but the CTI stream (`committed()`: its events are published up to this much later): `flush()`,
#: `execute()` and reads that flush commit at once; the call path (key -> queue -> ringing) waits for no commit.
#: The price: a SIGKILL may lose up to this much (plus the commit under way) of the last writes.
BATCH_WINDOW_SECONDS = 0.02
#: How long `committed()` waits for the writer's commit before committing itself (no writer running); longer than
#: BATCH_WINDOW_SECONDS, or it would commit each batch itself.
COMMITTED_FALLBACK_SECONDS = 0.2
#: On close, a failing commit is retried this long before the statements go to the spill file.
CLOSE_RETRY_SECONDS = 10.0
#: Disk space kept in `<db>.reserve` so that the spill file can still be written when the disk is full.
SPILL_RESERVE_BYTES = 4 * 1024 * 1024
ENVIRONMENT_ERRORS = SQLITE_ENVIRONMENT_ERRORS
#: Distinct statements counted by `Store.writes_by_kind`; beyond, "(other)" (statements built with values in their
#: text would otherwise grow the count without bound).
WRITTEN_KINDS = 500


#: The SQL of a queued statement that is a group of statements (`execute_atomic`): its params are [sql, params]
#: pairs. A comment: SQLite itself would run it as nothing.
ATOMIC = "-- atomic group"
#: The SQL of a queued placeholder for a statement built when its batch is cut (`write_at_commit`): its params
#: are the key of the builder.
AT_COMMIT = "-- built at commit"

#: Builds statements from the state of the moment: [(sql, params), ...].
StatementBuilder = Callable[[], Sequence[tuple[str, "Params"]]]


class StoreError(Exception):
    """Something the store could not do."""


class StoreUnavailable(StoreError):
    """The database cannot be written (or read) now: disk full, I/O error, read-only files. What
    was written stays queued and is retried; nothing is dropped."""


class StatementFailed(StoreError):
    """This statement can never succeed (bad value, constraint, SQL error): it was not stored; the
    rest of its batch was."""


class ValueOutOfRange(StatementFailed, OutOfRange):
    """A parameter was an integer SQLite cannot store (outside 64 bits)."""


class Deposed(StoreError):
    """Another controller holds the lease now (README "Active/standby controllers"): this one's batch was
    refused in its own transaction (the fence), and this controller must stop acting."""


class StoreNotWritable(StoreError, OSError):
    """At open: the database, its -wal/-shm files or their directory cannot be written."""


#: A queued statement: (its ticket: the order it was written in, its SQL, its parameters). A plain tuple: one is
#: made per write, and a NamedTuple's constructor is a Python function (~5x the cost of the tuple).
_Statement = tuple[int, str, Params]


def _ticket_of(statement: _Statement) -> int:
    return statement[0]


#: What a writer that folds changes (`Store.amend`) keeps of a statement it wrote: its ticket first.
TrackedT = TypeVar("TrackedT", bound=tuple[Any, ...])


def is_environment_error(exc: BaseException) -> bool:
    """Whether a SQLite error says the database cannot be used now (retry later) rather than that the
    statement is wrong (never retry). (Each engine answers for its own errors: `Engine.is_environment_error`.)"""
    return SqliteEngine.is_environment_error(exc)


def statement_kind(sql: str) -> str:
    """What a statement does, for logs (never its parameters: they hold callers' numbers)."""
    return " ".join(sql.split()).split("(")[0][:80].strip()


class Store:
    def __init__(self, target: Path | str, *, password: str = "", spill_dir: Path | str | None = None,
                 connect_timeout: float = 5.0, statement_timeout: float = 30.0,
                 application_name: str = "ccc-controller") -> None:
        """`target`: a SQLite file, or a `postgresql://` URL (then the spill file goes to `spill_dir`)."""
        self.engine: Engine = engine_for(target, password=password, connect_timeout=connect_timeout,
                                         statement_timeout=statement_timeout, application_name=application_name)
        # Active/standby (controller/leadership.py): a query run first in each batch's transaction that returns
        # a row only while this controller holds the lease; no row: the batch is refused and `on_deposed` called.
        self.fence: tuple[str, Params] | None = None
        self.on_deposed: Callable[[str], None] | None = None
        if isinstance(self.engine, SqliteEngine):
            self.path = self.engine.path
        else:
            self.path = Path(spill_dir if spill_dir is not None else ".") / "postgresql-store"
        self._thread = StoreThread()
        self._opened = False
        # A batch whose COMMIT broke with the connection: its last ticket and the statements rejected in it
        # (PostgreSQL; the next try asks the server whether it landed before writing it again).
        self._uncertain: tuple[int, dict[int, tuple[_Statement, StatementFailed]]] | None = None
        self._pending: list[_Statement] = []
        self._builders: dict[str, StatementBuilder] = {}  # `write_at_commit` keys with a placeholder queued
        self._committing = 0  # statements in the commit under way (out of `_pending` meanwhile)
        self._last_ticket = 0  # the newest statement written
        self._cut_ticket = 0  # the newest statement a commit has taken (tried, whatever came of it: `amend`)
        self._done_ticket = 0  # every statement up to this one is committed (or rejected for good)
        self._watched: dict[int, StatementFailed | None] = {}  # tickets `execute()` waits on -> their error
        self._in_flight: asyncio.Future[bool] | None = None  # the commit under way: True once done, False failed
        self._cut_due = False  # a window ended during a commit: cut the next batch as soon as that one ends
        self._window: asyncio.TimerHandle | None = None  # the writer's window timer, while one is armed (one at most)
        self._retry_delay = RETRY_SECONDS[0]  # the writer's next retry of a failed batch after this long
        #: Called on the event loop at the end of each commit, done or failed, and when the writer stops: for those
        #: that act on what a commit stored at once, with no task to wake (the CTI stream). Must not block; an
        #: exception is logged.
        self.commit_listeners: list[Callable[[], None]] = []
        self._commit_ended = asyncio.Event()  # set (and replaced) after each commit, done or failed
        self._writer_loop: asyncio.AbstractEventLoop | None = None  # while `run_writer` runs
        self._last_commit_ok = True  # whether the newest commit worked
        self._closed = False
        self._frozen = False  # a graceful stop: writes are dropped (see freeze)
        self._spill_until = 0  # statements replayed from the spill file end at this ticket
        self._failing_since: float | None = None  # time of the first failed commit of the current outage
        self._last_error: str | None = None
        self._read_error: str | None = None
        self.writes = 0
        self.written: Counter[str] = Counter()  # statements committed by SQL text (`writes_by_kind`)
        self.commits = 0
        self.commit_failures = 0
        self.rejected = 0  # statements that could never succeed and were not stored
        self.read_failures = 0
        self.spilled = 0

    @property
    def round_trips(self) -> int:
        """Jobs handed to the store's thread so far (commits, reads, ...): each costs a wake-up of the thread and
        one of the event loop."""
        return self._thread.jobs

    @property
    def is_open(self) -> bool:
        """`open()` has succeeded and `close()` has not been called: there is something for `close()` to commit."""
        return self._opened and not self._closed

    @property
    def frozen(self) -> bool:
        """A graceful stop froze the store (`freeze()`): what was queued before is still committed, new writes
        are dropped."""
        return self._frozen

    @property
    def dialect(self) -> Dialect:
        """SQL fragments that differ between the engines (reading JSON text columns)."""
        return self.engine.dialect

    @property
    def engine_name(self) -> str:
        return self.engine.dialect.name

    @property
    def reserve_path(self) -> Path:
        """Space set aside at open and given up to write the spill file when the disk is full."""
        return self.path.with_name(self.path.name + ".reserve")

    @property
    def spill_path(self) -> Path:
        """Statements not committed when the controller stopped (replayed at the next start)."""
        return self.path.with_name(self.path.name + ".unsaved.jsonl")

    # -- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> None:
        spilled = await self._run(self._open_sync)
        self._opened = True
        for sql, params in spilled:
            self._queue(sql, params)
        if spilled:
            self._spill_until = self._last_ticket
            log.warning("store: %d statements saved to %s at the last stop are queued to be committed",
                        len(spilled), self.spill_path)

    def _open_sync(self) -> list[tuple[str, Params]]:
        sqlite = isinstance(self.engine, SqliteEngine)
        memory = sqlite and self.path == Path(":memory:")
        if sqlite and not memory:
            self._check_writable()
        elif not sqlite:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreNotWritable(f"cannot create {self.path.parent} for the store's spill file:"
                                       f" {exc.strerror}") from exc
        try:
            self.engine.open(MIGRATIONS)
        except OpenFailed as exc:
            raise StoreNotWritable(str(exc)) from exc.__cause__
        if memory:
            return []
        if sqlite:
            for file in self._files():  # -wal and -shm hold callers' numbers too
                with contextlib.suppress(FileNotFoundError):
                    file.chmod(0o600)
        statements = self._read_spill()
        self._reserve_space()
        return statements

    def _reserve_space(self) -> None:
        path = self.reserve_path
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size >= SPILL_RESERVE_BYTES:
                return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, SPILL_RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError as exc:
            path.unlink(missing_ok=True)
            log.warning("store: cannot reserve %d MB for saving unsaved statements at a stop (%s)",
                        SPILL_RESERVE_BYTES // 2**20, exc.strerror)

    def _files(self) -> list[Path]:
        return [self.path, self.path.with_name(self.path.name + "-wal"), self.path.with_name(self.path.name + "-shm")]

    def _check_writable(self) -> None:
        """Fail with a clear message when the store cannot be written (rather than later, deep inside
        SQLite: a read-only -shm file has killed the process with SIGBUS)."""
        directory = self.path.parent
        fix = "the controller must be able to write its data directory and the database's files"
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreNotWritable(f"cannot create the store's directory {directory}: {exc.strerror}") from exc
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StoreNotWritable(f"the store's directory {directory} is not writable ({fix})")
        # SQLite copies the database file's mode to the -wal and -shm files it creates: create it 0600.
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for file in self._files():
            try:
                os.close(os.open(file, os.O_RDWR))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StoreNotWritable(f"the store file {file} cannot be written ({exc.strerror}): {fix}") from exc

    async def run_writer(self) -> None:
        """The writer; run it in the application's TaskGroup until cancelled. While it runs, each batch is cut
        and handed to the store's thread by the loop timer of its window (`_cut`), with no task of its own: per
        batch the event loop runs the timer and the commit's completion, nothing else (a task woken by the timer,
        a task per commit and a shield cost five loop iterations more per batch: README "Benchmarks", sixth
        session). A batch whose commit fails (disk full, I/O error) is kept and tried again with backoff: no
        record is dropped. `close()` commits (or saves) what is left after it is cancelled."""
        self._writer_loop = loop = asyncio.get_running_loop()
        self._retry_delay = RETRY_SECONDS[0]
        if self._pending:  # written before the writer started: a window from now
            self._window = loop.call_later(BATCH_WINDOW_SECONDS, self._window_ended)
        try:
            await loop.create_future()  # until cancelled
        finally:
            self._writer_loop = None
            self._cut_due = False
            if self._window is not None:
                self._window.cancel()
                self._window = None
            self._end_commit()  # its waiters and listeners look again: nothing commits by itself any more

    def _window_ended(self) -> None:
        """The window's timer: cut what has queued since its first write (less, or nothing, when a commit of its own
        took some of it meanwhile: `flush()`). With that commit still under way, right after it: if it fails, its
        batch, queued again, is the writer's to retry (a commit of its own arms no retry)."""
        self._window = None
        if self._pending or self._in_flight is not None:
            self._cut()

    def _cut(self) -> None:
        """A batch's window is over (`_window_ended`), or a failed batch's retry is due: commit what has queued, unless
        a commit is under way (then right after it) or the writer has stopped (`close()` commits what is left)."""
        loop = self._writer_loop
        if loop is None:
            return
        if self._in_flight is not None:
            self._cut_due = True
            return
        self._start_commit(loop, by_writer=True)

    async def close(self, retry_seconds: float | None = None) -> None:
        """Commit what is queued, retrying for up to `retry_seconds` (default CLOSE_RETRY_SECONDS); what
        still fails is saved to the spill file and replayed on the next start."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (CLOSE_RETRY_SECONDS if retry_seconds is None else retry_seconds)
        delay = RETRY_SECONDS[0] / 2
        while self._opened and not await self._commit_pending() and loop.time() < deadline:
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, RETRY_SECONDS[1])
        if self._pending:
            unsaved, self._pending = self._built(self._pending), []
            await self._run(self._spill_sync, unsaved)
        self._closed = True
        await self._run(self.engine.close)
        await self._thread.stop()

    # -- writing ----------------------------------------------------------------------------------

    def write_watched(self, sql: str, params: Params = ()) -> int | None:
        """`write()`, returning the statement's ticket for `outcome()`: a caller that must know whether its
        statement was stored learns it without reading it back. None: it was not queued (the store is frozen
        for a stop, or closed: it went to the spill file), so it is not committed."""
        if self._frozen or self._closed:
            self.write(sql, params)
            return None
        self._watched[self._last_ticket + 1] = None  # (`write` gives it the next ticket)
        return self.write(sql, params)

    def outcome(self, ticket: int) -> bool | None:
        """What became of a `write_watched()` statement: None while not committed yet, then True (committed) or
        False (rejected: it can never be stored), after which the ticket is forgotten. Once `committed()` has
        returned, every statement written before the call has its answer."""
        if ticket > self._done_ticket:
            return None
        return self._watched.pop(ticket, None) is None

    def done(self, ticket: int) -> bool:
        """Whether a `write_watched()` statement has its outcome (committed or rejected), without forgetting it."""
        return ticket <= self._done_ticket

    def stored(self, tickets: Iterable[int | None]) -> int:
        """How many of these `write_watched()` statements were committed (a None was never queued), asked once
        `committed()` has returned: `outcome()` for a batch in one call. Every ticket is forgotten."""
        done, watched = self._done_ticket, self._watched
        count = 0
        for ticket in tickets:
            if ticket is not None and watched.pop(ticket, None) is None and ticket <= done:
                count += 1
        return count

    def forget(self, ticket: int) -> None:
        """Stop watching a `write_watched()` statement whose outcome will not be asked (it is written again)."""
        self._watched.pop(ticket, None)

    def write_at_commit(self, key: str, build: StatementBuilder) -> None:
        """Queue statements built when their batch is cut (on the event loop, just before the batch goes to the
        writer thread): asked for many times before a commit, they are built and written once, and they state
        what was true when every other statement of their transaction was written. For rows that sum up state
        changed in many places (the ACD's saved agents): they are committed in the same transaction as the
        changes they must agree with, and cost one encoding per batch, not per change. A failed commit keeps
        what was built with its batch and tries it again, like any statement."""
        if self._frozen:
            return
        if self._closed:
            for sql, params in build():
                self.write(sql, params)
            return
        if key not in self._builders:
            self._queue(AT_COMMIT, key)
        self._builders[key] = build

    def _built(self, statements: list[_Statement]) -> list[_Statement]:
        """`statements` with their `write_at_commit` placeholders built now and moved to the end (with new
        tickets: they state what is true after every other statement). A builder that fails is logged and
        left out (all it built), as a statement that can never succeed."""
        if not self._builders:
            return statements
        out: list[_Statement] = []
        built: list[tuple[str, Params]] = []
        for statement in statements:
            ticket, sql, key = statement
            if sql != AT_COMMIT:
                out.append(statement)
                continue
            build = self._builders.pop(str(key))
            try:
                made = list(build())
                for _sql, params in made:
                    check_params(params)
            except Exception as exc:
                self._reject(ticket, f"built {key}", StatementFailed(f"{exc!r}"))
                continue
            built += made
        for sql, params in built:
            self._last_ticket += 1
            out.append((self._last_ticket, sql, params))
        return out

    def freeze(self) -> None:
        """From now on writes are dropped: on a graceful stop, once what the live calls wrote is flushed, the
        ending call tasks must not write their end (the next process resumes those calls). A statement
        built at commit is built now, from the state before the stop."""
        self._pending = self._built(self._pending)
        self._frozen = True

    def write(self, sql: str, params: Params = ()) -> int:
        """Queue a statement; it is committed with the next batch (BATCH_WINDOW_SECONDS after the
        oldest write not yet committed, plus the commit). Returns its ticket (`write_watched`, `executemany`)."""
        if self._frozen:
            return self._last_ticket
        if self._closed:
            # Too late for the database: keep it for the next start rather than dropping it.
            self._spill_sync([(0, sql, params)], append=True)
            return 0
        try:
            check_params(params)
        except OutOfRange as exc:  # can never be stored: fail this statement alone, at once
            ticket = self._queue_done()
            self._reject(ticket, sql, ValueOutOfRange(str(exc)))
            return ticket
        return self._queue(sql, params)

    def amend(self, ticket: int, sql: str, params: Params) -> bool:
        """Put `sql`/`params` in place of the statement `ticket` while it is still queued (no commit has taken it):
        for a writer that folds a later change of a row into the statement that writes the row, one statement
        instead of two in the same transaction. The caller's new statement must leave the row as the old one and
        the change would have: it runs where the old one was. False (nothing changed) when the statement is no
        longer queued (in a commit, committed, rejected, or never queued: the store is frozen or closed), was in
        a commit that failed (queued again: on PostgreSQL a COMMIT cut short may have landed, and the retry skips
        what did), or a parameter is out of range: then write the change as a statement of its own."""
        pending = self._pending
        if not self.queued(ticket):
            return False
        index = bisect.bisect_left(pending, ticket, key=_ticket_of)  # (tickets ascend in `_pending`)
        if index == len(pending) or pending[index][0] != ticket or pending[index][1] in (ATOMIC, AT_COMMIT):
            return False
        try:
            check_params(params)
        except OutOfRange:
            return False  # (written on its own, it is refused with a clear error)
        pending[index] = (ticket, sql, params)
        return True

    def queued(self, ticket: int) -> bool:
        """Whether the statement `ticket` may still be queued (no commit has taken it yet): `amend()` may succeed."""
        return ticket > self._cut_ticket and bool(self._pending) and ticket >= self._pending[0][0] and not self._frozen

    def forget_taken(self, tracked: dict[str, TrackedT]) -> None:
        """Drop from `tracked` (key -> (ticket, ...), oldest ticket first) the statements a commit has taken, oldest
        first: `amend()` can no longer change them."""
        while tracked and not self.queued(next(iter(tracked.values()))[0]):
            del tracked[next(iter(tracked))]

    def _queue(self, sql: str, params: Params) -> int:
        if not self._pending and self._window is None and (loop := self._writer_loop) is not None:
            # The batch is cut BATCH_WINDOW_SECONDS after its first write (the writes of the next few ms go in the
            # same transaction), by a loop timer that hands it to the store's thread itself (`_cut`). One timer at
            # most: after a commit of its own (`flush()`) took the batch, the armed one cuts the writes that follow;
            # a second one would run out of phase with it for as long as writes kept coming, halving the batches
            # (each such commit added one more: a busy controller's pollers flush every few seconds).
            self._window = loop.call_later(BATCH_WINDOW_SECONDS, self._window_ended)
        self._last_ticket += 1
        self._pending.append((self._last_ticket, sql, params))
        return self._last_ticket

    def _queue_done(self) -> int:
        """A ticket for a statement rejected before queueing: done once everything before it is."""
        self._last_ticket += 1
        if not self._pending and self._done_ticket == self._last_ticket - 1:
            self._done_ticket = self._last_ticket
        return self._last_ticket

    def _reject(self, ticket: int, sql: str, error: StatementFailed) -> None:
        self.rejected += 1
        log.error("store: statement not stored, it can never succeed (%s): %s", statement_kind(sql), error)
        if ticket in self._watched:
            self._watched[ticket] = error

    async def flush(self) -> None:
        """Wait until everything written so far is committed. Raises StoreUnavailable when it cannot be
        now (the statements stay queued and are retried); a statement that can never succeed is logged
        and skipped (`execute()` reports it to its caller)."""
        target = self._last_ticket
        if target <= self._done_ticket:
            return
        if self._failing_since is not None:  # don't make the caller wait for the next retry
            raise self._unavailable()
        await self._commit_pending()
        if target > self._done_ticket:
            raise self._unavailable()

    async def committed(self) -> None:
        """Wait until everything written so far is committed, by the writer's next commit (grouped with the
        other writes of the moment: see BATCH_WINDOW_SECONDS) rather than by a commit of its own as `flush()` does.
        Raises StoreUnavailable as `flush()`. For a caller that must not go on before its writes are stored
        but need not hurry them (the CTI stream publishes its events once committed)."""
        target = self._last_ticket
        if target <= self._done_ticket:
            return
        # While the writer runs it commits them (its window's timer is armed): no fallback timer, which cost a timeout
        # context (a timer armed and cancelled, the current task looked up) per wait, each batch of the CTI bus.
        while self._writer_loop is not None and target > self._done_ticket:
            if self.failing:  # (or refused: deposed)
                raise self._unavailable()
            await self._commit_ended.wait()
        if target <= self._done_ticket:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMMITTED_FALLBACK_SECONDS
        while target > self._done_ticket:
            if self._failing_since is not None:
                raise self._unavailable()
            ended = self._commit_ended
            try:
                async with asyncio.timeout_at(deadline):
                    await ended.wait()
            except TimeoutError:
                await self.flush()  # no writer is running (or a commit is slow): commit them here
                return

    async def execute(self, sql: str, params: Params = ()) -> None:
        """Write one statement and wait until it is committed; raises StatementFailed when it can never
        be (e.g. ValueOutOfRange), StoreUnavailable when not now (it stays queued: don't write it again)."""
        await self.executemany(sql, [params])

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """`execute()` for several rows: the others are stored when one fails; the first error is raised."""
        tickets = []
        for params in rows:
            self._watched[self._last_ticket + 1] = None
            tickets.append(self.write(sql, params))
        try:
            if any(ticket > self._done_ticket and self._watched.get(ticket) is None for ticket in tickets):
                await self.flush()  # (a statement refused at once is not waited for)
            errors = [error for ticket in tickets if (error := self._watched.get(ticket)) is not None]
        finally:
            for ticket in tickets:
                self._watched.pop(ticket, None)
        if errors:
            raise errors[0]

    async def execute_atomic(self, statements: Sequence[tuple[str, Params]]) -> None:
        """Write statements that belong together (a change and its audit row) and wait until they are
        committed: all of them or, when one can never succeed, none (StatementFailed). Queued in order with
        the other writes; StoreUnavailable as for `execute()` (they stay queued, together)."""
        groups = [[sql, list(params) if not isinstance(params, dict) else params] for sql, params in statements]
        try:
            for _sql, params in groups:
                check_params(params)
        except OutOfRange as exc:
            raise ValueOutOfRange(str(exc)) from None
        await self.execute(ATOMIC, groups)

    async def _commit_pending(self) -> bool:
        """Commit what has queued; False when the commit failed (the batch is queued again, in front,
        in order). After the commit under way, if any. A cancelled caller neither loses the batch nor lets a
        second commit overtake it: the commit runs to its end, it is only no longer awaited."""
        loop = asyncio.get_running_loop()
        while (in_flight := self._in_flight) is not None:
            await asyncio.shield(in_flight)
        return await asyncio.shield(self._start_commit(loop, by_writer=False))

    def _start_commit(self, loop: asyncio.AbstractEventLoop, *, by_writer: bool) -> asyncio.Future[bool]:
        """Cut the batch and hand it to the store's thread (with no commit under way); its outcome comes back to
        `_commit_ended_with` on the loop. The future: True once committed, False when the commit failed."""
        done: asyncio.Future[bool] = loop.create_future()
        self._in_flight = done
        queued, self._pending = self._pending, []
        try:
            batch = self._built(queued)
        except BaseException:
            self._pending[:0] = queued
            self._finish_commit(done, False, by_writer)
            raise
        if not batch:
            if queued:  # only builders, and they failed
                self._done_ticket = max(self._done_ticket, self._pending_done_floor())
            self._finish_commit(done, True, by_writer)
            return done
        self._committing = len(batch)
        self._cut_ticket = max(self._cut_ticket, batch[-1][0])  # (taken by a commit: `amend` leaves it alone)
        unlink_spill = bool(self._spill_until) and batch[-1][0] >= self._spill_until
        try:
            self._thread.submit(self._commit_job, (batch, unlink_spill),
                                lambda ok, outcome: self._commit_ended_with(batch, done, by_writer, ok, outcome), loop)
        except RuntimeError as exc:  # the store's thread is stopped (closed): kept, as a failed commit
            self._commit_ended_with(batch, done, by_writer, False, exc)
        return done

    def _commit_job(self, batch: list[_Statement], unlink_spill: bool) -> list[tuple[_Statement, StatementFailed]]:
        """The store's thread: the batch's transaction, then (its last statements committed) the spill file's
        removal."""
        rejected = self._commit_sync(batch)
        if unlink_spill:
            try:
                self.spill_path.unlink(missing_ok=True)
            except OSError as exc:  # (committed all the same: the next start replays it, ON CONFLICT)
                log.error("store: cannot remove %s: %s", self.spill_path, exc.strerror)
        return rejected

    def _commit_ended_with(self, batch: list[_Statement], done: asyncio.Future[bool], by_writer: bool,
                           ok: bool, outcome: Any) -> None:
        """A commit's outcome, back on the loop: the batch's tickets are done, or it is queued again in front."""
        self._committing = 0
        committed = False
        try:
            if not ok:
                self._pending[:0] = batch
                if isinstance(outcome, Deposed):  # never committed by this process: the new leader has the truth
                    self._frozen = True
                    log.critical("store: %s; %d statements refused", outcome, len(self._pending))
                    if self.on_deposed is not None:
                        self.on_deposed(str(outcome))
                else:
                    error = outcome if isinstance(outcome, Exception) else RuntimeError(repr(outcome))
                    self._note_commit_failure(error)
                return
            committed = True
            self._done_ticket = max(self._done_ticket, batch[-1][0], self._pending_done_floor())
            for (ticket, sql, _params), error in outcome:
                self._reject(ticket, sql, error)
            if self._failing_since is not None:
                log.warning("store: commits work again after %.0f s; %d statements committed",
                            time.time() - self._failing_since, len(batch) - len(outcome))
                self._failing_since = None
                self._last_error = None
            if self._spill_until and self._done_ticket >= self._spill_until:
                self._spill_until = 0
                log.info("store: the statements saved at the last stop are committed; %s removed", self.spill_path)
        finally:  # (whatever `on_deposed` does)
            self._finish_commit(done, committed, by_writer)

    def _finish_commit(self, done: asyncio.Future[bool], committed: bool, by_writer: bool) -> None:
        """The commit is over: its waiters are woken (`committed()`, `next_commit()`, `_commit_pending`), and the
        writer goes on: the next batch at once if its window has ended meanwhile, a failed one retried later."""
        self._in_flight = None
        self._last_commit_ok = committed
        done.set_result(committed)
        self._end_commit()
        loop = self._writer_loop
        if loop is None:
            self._cut_due = False
        elif by_writer and not committed:
            loop.call_later(self._retry_delay, self._cut)
            self._retry_delay = min(self._retry_delay * 2, RETRY_SECONDS[1])
        else:
            if by_writer:
                self._retry_delay = RETRY_SECONDS[0]
            if self._cut_due:
                self._cut_due = False
                self._cut()

    @property
    def failing(self) -> bool:
        """Whether the newest commit failed (or was refused), or the store is failing since."""
        return self._failing_since is not None or not self._last_commit_ok

    def _end_commit(self) -> None:
        """Wake those waiting for the end of a commit (`committed`, `next_commit`), then tell `commit_listeners`."""
        ended, self._commit_ended = self._commit_ended, asyncio.Event()
        ended.set()
        for listener in self.commit_listeners:
            try:
                listener()
            except Exception:
                log.exception("store: a commit listener failed")

    @property
    def writing(self) -> bool:
        """Whether the writer runs: what is written is committed within a window, without anyone asking."""
        return self._writer_loop is not None

    async def next_commit(self) -> None:
        """Return once the next commit has ended, done or failed (or the writer has stopped)."""
        await self._commit_ended.wait()

    def _pending_done_floor(self) -> int:
        """Rejected-before-queueing tickets between the batch and the next pending statement are done."""
        return (self._pending[0][0] - 1) if self._pending else self._last_ticket

    def _note_commit_failure(self, exc: Exception) -> None:
        self.commit_failures += 1
        message = f"{type(exc).__name__}: {exc}"
        first = self._failing_since is None
        if first:
            self._failing_since = time.time()
        if first or message != self._last_error or self.commit_failures % 20 == 0:
            log.error("store: commit failed (%s); %d statements are kept in memory and retried",
                      message, len(self._pending))
        self._last_error = message

    def _unavailable(self) -> StoreUnavailable:
        return StoreUnavailable(f"the store cannot be written ({self._last_error or 'commit failed'});"
                                f" {len(self._pending) + self._committing} statements are queued and retried")

    def _commit_sync(self, batch: list[_Statement]) -> list[tuple[_Statement, StatementFailed]]:
        """One transaction for the batch. A statement that fails on its own is left out (returned);
        an error of the database itself (disk full, I/O, read-only, connection lost) aborts the batch
        (raised)."""
        engine = self.engine
        rejected: dict[int, tuple[_Statement, StatementFailed]] = {}
        carried = 0  # of `rejected`: statements of a landed earlier try
        if self._uncertain is not None:
            last_ticket, rejected_then = self._uncertain
            if engine.commit_landed():  # (raises while the server cannot tell: the batch stays queued)
                rejected.update(rejected_then)
                carried = len(rejected_then)
                landed = sum(1 for ticket, _sql, _params in batch if ticket <= last_ticket)
                self.writes += landed - len(rejected_then)
                self.commits += 1
                batch = batch[landed:]
            self._uncertain = None
            if not batch:
                return list(rejected.values())
        if engine.in_transaction():  # left over from a failure whose rollback failed too
            _rollback(engine, RuntimeError("a transaction left open"))
        pipelined = engine.pipelines  # all at once (one round trip) until a statement fails
        while True:
            engine.begin()
            try:
                if self.fence is not None and not engine.query(*self.fence):
                    raise Deposed("another controller holds the lease: this one's writes are refused")
                restart = False
                if pipelined:
                    try:
                        engine.execute_all(_pipelined(batch))
                    except Exception as exc:
                        if engine.is_environment_error(exc):
                            raise
                        _rollback(engine, exc)  # one of them is wrong: find it, one by one
                        pipelined = False
                        continue
                run = engine.executor()
                for statement in batch if not pipelined else ():
                    ticket, sql, params = statement
                    if ticket in rejected:
                        continue
                    try:
                        if sql == ATOMIC:
                            _execute_atomic(engine, params)
                        else:
                            run(sql, params)
                    except Exception as exc:
                        if engine.is_environment_error(exc):
                            raise
                        rejected[ticket] = (statement, StatementFailed(f"{type(exc).__name__}: {exc}"))
                        if engine.transaction_failed():  # the error ended the transaction: do the rest again
                            _rollback(engine, exc)
                            restart = True
                            break
                if restart:
                    continue
                engine.commit()
            except BaseException as exc:
                if engine.commit_uncertain():
                    self._uncertain = (batch[-1][0], rejected)
                _rollback(engine, exc)
                raise
            self.writes += len(batch) - (len(rejected) - carried)
            self.commits += 1
            self._count_written(batch, rejected)
            return list(rejected.values())

    def _count_written(self, batch: list[_Statement], rejected: dict[int, Any]) -> None:
        written = self.written
        for ticket, sql, _params in batch:
            if ticket not in rejected:
                written[sql if sql in written or len(written) < WRITTEN_KINDS else "(other)"] += 1

    def writes_by_kind(self) -> dict[str, int]:
        """Statements committed so far by kind (`statement_kind`: what they do and to which table, no values):
        what a call costs the store, for /metrics and the benchmarks."""
        kinds: Counter[str] = Counter()
        for sql, count in list(self.written.items()):
            kinds[statement_kind(sql)] += count
        return dict(kinds)

    # -- the spill file ---------------------------------------------------------------------------

    def _spill_sync(self, statements: list[_Statement], append: bool = False) -> None:
        """Save statements that could not be committed (JSON lines, 0600), said loudly in the log. On a
        full disk the reserved space is given up for it."""
        path = self.spill_path
        lines = "".join(json.dumps({"sql": sql, "params": params}, default=_encode_bytes) + "\n"
                        for _ticket, sql, params in statements)
        try:
            try:
                self._write_spill(lines, append)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not self.reserve_path.exists():
                    raise
                self.reserve_path.unlink()
                log.warning("store: the disk is full; the reserved space is used to save unsaved statements")
                self._write_spill(lines, append)
        except OSError as exc:
            log.critical("store: %d statements are LOST: they could not be committed (%s) nor saved to %s (%s)",
                         len(statements), self._last_error or "the store was closed", path, exc.strerror)
            return
        self.spilled += len(statements)
        log.error("store: %d statements could not be committed (%s); saved to %s, committed on the next start",
                  len(statements), self._last_error or "written after the store was closed", path)

    def _write_spill(self, lines: str, append: bool) -> None:
        path = self.spill_path
        target = path
        try:
            if append:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                target = path
            else:  # everything not yet committed, including a spill file's own statements: replace it
                target = path.with_name(path.name + ".tmp")
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(lines)
                file.flush()
                os.fsync(file.fileno())
            if target != path:
                os.replace(target, path)
        except OSError:
            if target != path:
                target.unlink(missing_ok=True)
            raise

    def _read_spill(self) -> list[tuple[str, Params]]:
        path = self.spill_path
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        statements: list[tuple[str, Params]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                item = json.loads(line, object_hook=_decode_bytes)
                statements.append((str(item["sql"]), item["params"]))
            except (ValueError, KeyError, TypeError):
                log.error("store: %s:%d is not a saved statement; skipped", path, number)
        return statements

    # -- reading ----------------------------------------------------------------------------------

    async def fetchall(self, sql: str, params: Params = (), *, flush: bool = True) -> list[Row]:
        """Rows of a query, after committing what was written before (read your own writes). When the
        store cannot commit now, the query still answers from what is committed. `flush=False`: what is
        committed now, without committing the writes still queued (a caller that knows its own are)."""
        if flush:
            with contextlib.suppress(StoreUnavailable):
                await self.flush()
        try:
            check_params(params)
        except OutOfRange as exc:
            raise ValueOutOfRange(str(exc)) from None
        try:
            rows: list[Row] = await self._run(self.engine.query, sql, params)
        except Exception as exc:
            if not self.engine.is_environment_error(exc):
                raise
            self.read_failures += 1
            if self._read_error is None:
                log.error("store: reading failed (%s: %s)", type(exc).__name__, exc)
            self._read_error = f"{type(exc).__name__}: {exc}"
            raise StoreUnavailable(f"the store cannot be read ({exc})") from exc
        self._read_error = None
        return rows

    async def fetchone(self, sql: str, params: Params = (), *, flush: bool = True) -> Row | None:
        rows = await self.fetchall(sql, params, flush=flush)
        return rows[0] if rows else None

    # -- health -----------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """ok, or degraded with why: for /api/status and `ccctl status` (not the public /healthz)."""
        degraded = self._failing_since is not None or self._read_error is not None
        return {
            "status": "degraded" if degraded else "ok",
            "engine": self.engine_name,
            "pending": len(self._pending) + self._committing,
            "failing_since": self._failing_since,
            "last_error": self._last_error or self._read_error,
            "commit_failures": self.commit_failures,
            "read_failures": self.read_failures,
            "rejected_statements": self.rejected,
            "spilled_statements": self.spilled,
        }

    # -- helpers ----------------------------------------------------------------------------------

    def _require(self) -> Any:
        """The engine's connection (for tests and tools that reach under the store)."""
        if isinstance(self.engine, SqliteEngine | PostgresEngine) and self.engine.conn is not None:
            return self.engine.conn
        raise RuntimeError("store is not open")

    async def _run(self, func: Any, *args: Any) -> Any:
        return await self._thread.run(func, *args)


#: A job for the store's thread: the function, its arguments, the future its outcome completes (or the callback it is
#: given to: `StoreThread.submit`) and the loop that future or callback belongs to.
_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any] | Callable[[bool, Any], None]",
             asyncio.AbstractEventLoop]


class StoreThread:
    """The store's one thread: runs the functions handed to it one at a time, in the order handed, and completes
    each one's asyncio future on its loop (result or exception). `loop.run_in_executor` did this with a
    concurrent.futures Future per call (a Condition and its RLock, a work item, the executor's locks, a second
    future chained to the asyncio one): ~2x the Python work of a queue and one `call_soon_threadsafe` per job,
    tens of round trips per call (README "Benchmarks", third round, second session). Started at the first job; a
    job still running when its awaiting task is cancelled runs to its end (its outcome is dropped), as in an
    executor."""

    def __init__(self, name: str = "store") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.jobs = 0  # handed over so far

    def run(self, func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Hand `func(*args)` to the thread: the future of its outcome. RuntimeError once stopped."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._hand(func, args, future, loop)
        return future

    def _hand(self, func: Callable[..., Any], args: tuple[Any, ...],
              target: asyncio.Future[Any] | Callable[[bool, Any], None], loop: asyncio.AbstractEventLoop) -> None:
        if self._stopped:
            raise RuntimeError("the store's thread is stopped: the store is closed")
        self.jobs += 1
        if self._thread is None:
            # A daemon: a store never closed does not hold the interpreter at exit (its uncommitted statements are
            # lost then anyway; SQLite rolls back a transaction cut short).
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put((func, args, target, loop))

    def submit(self, func: Callable[..., Any], args: tuple[Any, ...], on_done: Callable[[bool, Any], None],
               loop: asyncio.AbstractEventLoop) -> None:
        """Hand `func(*args)` to the thread; `on_done(True, result)` or `on_done(False, exception)` is called on
        `loop` once it is done: no future, so no task is woken to learn it (the store's commits). RuntimeError once
        stopped."""
        self._hand(func, args, on_done, loop)

    async def stop(self) -> None:
        """Stop taking jobs; returns when those handed over before are done and the thread has ended."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is None:
            return
        loop = asyncio.get_running_loop()
        ended = loop.create_future()
        self._jobs.put((nothing, (), ended, loop))
        self._jobs.put(None)
        await ended
        self._thread.join()  # (it has only `None` left to read: no wait on the loop)

    def _serve(self) -> None:
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            func, args, target, loop = job
            try:
                ok, outcome = True, func(*args)
            except BaseException as exc:  # (as an executor does: the awaiting task gets it, whatever it is)
                ok, outcome = False, exc
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits any more
                if isinstance(target, asyncio.Future):
                    loop.call_soon_threadsafe(_succeed if ok else _fail, target, outcome)
                else:
                    loop.call_soon_threadsafe(target, ok, outcome)
            del job, func, args, target, loop, outcome  # hold no result nor error while asleep


def _succeed(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # (cancelled: its task stopped waiting)
        future.set_result(result)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():  # (a future refuses StopIteration)
        future.set_exception(RuntimeError(repr(exc)) if isinstance(exc, StopIteration) else exc)


def _execute_atomic(engine: Engine, statements: Any) -> None:
    """An `execute_atomic()` group inside the batch's transaction: all of it, or (it raises) none of it."""
    engine.execute("SAVEPOINT atomic", ())
    try:
        for sql, params in statements:
            engine.execute(sql, params)
    except BaseException:
        if engine.in_transaction():  # (on PostgreSQL, also when the failure aborted the transaction)
            engine.execute("ROLLBACK TO atomic", ())
            engine.execute("RELEASE atomic", ())
        raise
    engine.execute("RELEASE atomic", ())


def _pipelined(batch: list[_Statement]) -> list[tuple[str, Params]]:
    """The batch as plain statements for `Engine.execute_all` (a group between its savepoint's lines)."""
    statements: list[tuple[str, Params]] = []
    for _ticket, sql, params in batch:
        if sql == ATOMIC:
            pairs: Any = params  # [sql, params] pairs (`execute_atomic`)
            statements += [("SAVEPOINT atomic", ()), *((str(each), values) for each, values in pairs),
                           ("RELEASE atomic", ())]
        else:
            statements.append((sql, params))
    return statements


def _rollback(engine: Engine, cause: BaseException) -> None:
    """Roll back what is left of a failed transaction without hiding why it failed (SQLite may have
    rolled it back itself, e.g. on disk full; a lost connection has none left: nothing to roll back)."""
    if not engine.in_transaction():
        return
    try:
        engine.rollback()
    except Exception as exc:
        log.error("store: rollback after %s failed too: %s", type(cause).__name__, exc)


def _encode_bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode()}
    raise TypeError(f"cannot save a {type(value).__name__} parameter")


def _decode_bytes(item: dict[str, Any]) -> Any:
    return base64.b64decode(item["__bytes__"]) if set(item) == {"__bytes__"} else item


def open_readonly(path: Path | str) -> sqlite3.Connection:
    """A read-only connection for tools (ccctl) that read the store without the controller."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn
