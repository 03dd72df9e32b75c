"""The embedded store: SQLite in the data directory, used from one dedicated thread.

SQLite calls block, so none of them run on the event loop: every statement goes to a single
worker thread (which also keeps the connection single-threaded). Writes are batched: `write()`
queues a statement and returns at once; the writer commits whatever has queued in one
transaction, so a burst of calls costs one fsync rather than hundreds. `execute()` and `flush()`
wait until the data is committed, for the places that must not continue before (e.g. an API
call that reports success). WAL mode lets readers run while the writer commits.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from controller.store.schema import MIGRATIONS

log = logging.getLogger("controller.store")

Params = Sequence[Any] | dict[str, Any]
#: A failed commit is retried after the first delay, doubling up to the second.
RETRY_SECONDS = (0.5, 10.0)


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[str, Params]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self.writes = 0
        self.commits = 0

    # -- lifecycle --------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        if self.path != Path(":memory:"):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
            log.info("store schema migrated to version %d", number)
        self._conn = conn
        if self.path != Path(":memory:"):
            self.path.chmod(0o600)  # call records are personal data

    async def run_writer(self) -> None:
        """The writer loop; run it in the application's TaskGroup until cancelled. A batch whose commit
        fails (disk full, I/O error) is kept and tried again with backoff: no record is dropped."""
        delay = RETRY_SECONDS[0]
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if await self._commit_pending():
                    delay = RETRY_SECONDS[0]
                    continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_SECONDS[1])
                self._wake.set()
        finally:
            await self._commit_pending()

    async def close(self) -> None:
        await self._commit_pending()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._run(conn.close)
        self._executor.shutdown(wait=True)
        self._closed = True

    # -- writing ----------------------------------------------------------------------------------

    def write(self, sql: str, params: Params = ()) -> None:
        """Queue a statement; it is committed with the next batch (within milliseconds)."""
        if self._closed:
            log.error("store is closed: a write was lost (%s)", sql.split("(")[0][:80])
            return
        self._pending.append((sql, params))
        self._wake.set()

    async def flush(self) -> None:
        """Wait until everything written so far is committed."""
        if not self._pending:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake.set()
        await waiter

    async def execute(self, sql: str, params: Params = ()) -> None:
        self.write(sql, params)
        await self.flush()

    async def _commit_pending(self) -> bool:
        """Commit what has queued; False when the commit failed (the batch is queued again, in order,
        and whoever waits on `flush()` gets the error)."""
        batch, self._pending = self._pending, []
        waiters, self._waiters = self._waiters, []
        error: Exception | None = None
        if batch:
            try:
                await self._run(self._commit_sync, batch)
            except Exception as exc:
                log.error("store commit of %d statements failed, kept for a retry: %s", len(batch), exc)
                self._pending[:0] = batch
                error = exc
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
        return error is None

    def _commit_sync(self, batch: list[tuple[str, Params]]) -> None:
        conn = self._require()
        conn.execute("BEGIN")
        try:
            for sql, params in batch:
                try:
                    conn.execute(sql, params)
                except sqlite3.Error:
                    # One bad statement must not lose the rest of the batch.
                    log.exception("store statement failed: %s", sql.split("(")[0][:80])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.writes += len(batch)
        self.commits += 1

    # -- reading ----------------------------------------------------------------------------------

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        await self.flush()  # read your own writes
        rows: list[sqlite3.Row] = await self._run(lambda: self._require().execute(sql, params).fetchall())
        return rows

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        for params in rows:
            self.write(sql, params)
        await self.flush()

    # -- helpers ----------------------------------------------------------------------------------

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is not open")
        return self._conn

    async def _run(self, func: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, func, *args)


def open_readonly(path: Path | str) -> sqlite3.Connection:
    """A read-only connection for tools (ccctl) that read the store without the controller."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn
