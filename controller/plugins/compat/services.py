"""Outputs existing Asterisk call-center tools read: app_queue's queue_log and one CDR per call.

The service listens to the CTI event bus: each event goes through the pure `QueueLogFormatter`
(cheap, on the loop) and the lines it makes wait in memory for the writer task, which appends
them to the file in a worker thread and to the store's realtime `queue_log` table (batched by the
store). When a call ends, its CDR is built from the call record (after the store has committed
it) and appended to the CSV file and the `cdr` table. Nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from controller.config import Config
from controller.plugins.compat.cdr import Cdr, build_cdr
from controller.plugins.compat.queue_log import QueueLogEntry, QueueLogFormatter
from controller.plugins.cti.services import CtiEvent, EventBus
from controller.store.db import Store
from controller.store.engines import upsert

log = logging.getLogger("controller.compat")
RETRY_SECONDS = 5.0

#: Asterisk's realtime schemas (contrib/ast-db-manage), in our store. Created here rather than in
#: the store's migrations: they exist only where the feature is enabled.
QUEUE_LOG_TABLE = """
CREATE TABLE IF NOT EXISTS queue_log (
    id INTEGER PRIMARY KEY,
    time TEXT, callid TEXT, queuename TEXT, agent TEXT, event TEXT,
    data1 TEXT, data2 TEXT, data3 TEXT, data4 TEXT, data5 TEXT
);
CREATE INDEX IF NOT EXISTS queue_log_time ON queue_log(time);
"""
CDR_TABLE = """
CREATE TABLE IF NOT EXISTS cdr (
    id INTEGER PRIMARY KEY,
    accountcode TEXT, src TEXT, dst TEXT, dcontext TEXT, clid TEXT, channel TEXT, dstchannel TEXT,
    lastapp TEXT, lastdata TEXT, start TEXT, answer TEXT, "end" TEXT, duration INTEGER, billsec INTEGER,
    disposition TEXT, amaflags TEXT, uniqueid TEXT UNIQUE, userfield TEXT, agent TEXT, queue TEXT,
    recording TEXT
);
CREATE INDEX IF NOT EXISTS cdr_start ON cdr(start);
"""
#: The CTI sequence number up to which every line and CDR is written: after a crash, the events
#: after it are read back from the store and written then (see `_catch_up`).
CURSOR_TABLE = """
CREATE TABLE IF NOT EXISTS compat_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL);
"""
#: How far back before the cursor events are replayed (unwritten) to rebuild calls' state.
REPLAY_CONTEXT_SECONDS = 3600.0


class CompatError(OSError):
    """An output cannot be written (bad path, no permission): said at start-up."""


def _resolve(data_dir: Path, path: str) -> Path | None:
    if not path:
        return None
    target = Path(path)
    return target if target.is_absolute() else data_dir / target


def _check_writable(path: Path) -> None:
    """Create the file (0640: it holds callers' numbers) and its directory, or say why not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        os.close(fd)
    except OSError as exc:
        raise CompatError(f"cannot write {path}: {exc.strerror}") from exc


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write(text)


def cdr_csv_line(cdr: Cdr) -> str:
    """cdr_csv's quoting: text quoted, numbers bare."""
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n").writerow(cdr.values())
    return buffer.getvalue()


class CompatService:
    def __init__(self, config: Config, store: Store, bus: EventBus) -> None:
        settings = config.compat
        self.settings = settings
        self._store = store
        data_dir = config.data_path
        self.queue_log_file = _resolve(data_dir, settings.queue_log.file) if settings.queue_log.enabled else None
        self.cdr_file = _resolve(data_dir, settings.cdr.csv) if settings.cdr.enabled else None
        self.formatter = QueueLogFormatter({a.id: list(a.queues) for a in config.acd.agents},
                                           agent_format=settings.queue_log.agent_format,
                                           log_caller_id=settings.queue_log.log_caller_id)
        self.agent_endpoints = {agent.id: agent.endpoint for agent in config.acd.agents}
        # kept up to date by `configuration_changed` (a removed agent keeps their entries: their last events)
        self._lines: list[QueueLogEntry] = []
        self._ended: list[str] = []
        self._bus = bus
        self._seen_seq = 0  # the last event turned into lines / CDRs to write
        self._start_seq = 0  # the last event published before this run
        self._wake = asyncio.Event()
        self.listeners: list[Callable[[CtiEvent, list[QueueLogEntry]], None]] = []
        self.lines_written = 0
        self.cdrs_written = 0
        # The AMI endpoint's events are made from the queue_log entries too.
        self._formatting = settings.queue_log.enabled or settings.ami_port > 0
        if self._formatting or settings.cdr.enabled:
            bus.listeners.append(self._on_events)

    def configuration_changed(self, _old: Config, new: Config) -> None:
        """Agents added or changed live: their queues (queue_log member lines) and phones (CDR channels)."""
        for agent in new.acd.agents:
            self.formatter.agent_queues[agent.id] = list(agent.queues)
            self.agent_endpoints[agent.id] = agent.endpoint

    @property
    def enabled(self) -> bool:
        return self.settings.queue_log.enabled or self.settings.cdr.enabled

    async def open(self) -> None:
        """Create the files; CompatError when one cannot be written. Called once the event bus is open
        and before any call: the events after `_start_seq` are this run's."""
        self._start_seq = self._bus.last_seq
        for path in (self.queue_log_file, self.cdr_file):
            if path is not None:
                await asyncio.to_thread(_check_writable, path)
        if self.settings.queue_log.enabled:  # as Asterisk's logger does when it starts: tools see restarts
            self._lines.append(QueueLogEntry(time.time(), "NONE", "NONE", "NONE", "QUEUESTART", ("",)))
            self._wake.set()

    def _on_events(self, events: list[CtiEvent]) -> None:
        for event in events:
            self._on_event(event)

    def _on_event(self, event: CtiEvent) -> None:
        self._seen_seq = event.seq
        entries = self.formatter.feed(event) if self._formatting else []
        if entries and self.settings.queue_log.enabled:
            self._lines.extend(entries)
            self._wake.set()
        if event.type == "call.ended" and event.call_id and self.settings.cdr.enabled:
            self._ended.append(event.call_id)
            self._wake.set()
        for listener in self.listeners:
            listener(event, entries)

    async def run(self) -> None:
        """Write what the events made, until cancelled (then what is pending is written first)."""
        if not self.enabled:
            return
        # The tables are created here, the store's writer running (a write queued before it starts
        # would hold up every read of the start-up).
        tables = (QUEUE_LOG_TABLE if self.settings.queue_log.enabled and self.settings.queue_log.table else "") \
            + (CDR_TABLE if self.settings.cdr.enabled and self.settings.cdr.table else "") + CURSOR_TABLE
        for statement in filter(str.strip, tables.split(";")):
            await self._store.execute(statement)
        await self._catch_up()
        try:
            while True:
                # What could not be written (a full disk) is tried again every few seconds.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(RETRY_SECONDS if self._lines or self._ended else None):
                        await self._wake.wait()
                self._wake.clear()
                await self.write_pending()
        finally:
            await asyncio.shield(self.write_pending())

    async def _catch_up(self) -> None:
        """After a crash: write the lines and CDRs of the events published after the cursor (read back
        from the store). The events of the hour before are fed first, unwritten, so calls in progress
        at the cursor have their state."""
        row = await self._store.fetchone("SELECT seq FROM compat_cursor WHERE name = 'compat'")
        upto = self._start_seq  # the events after it are written live
        if row is None:  # first start with the feature on: from now
            self._store.write(upsert("compat_cursor", ("name", "seq"), ("name",)), ("compat", upto))
            return
        cursor = int(row["seq"])
        if cursor >= upto:
            return
        first = await self._store.fetchone("SELECT at FROM cti_events WHERE seq = ?", (cursor + 1,))
        since = (float(first["at"]) if first is not None else 0.0) - REPLAY_CONTEXT_SECONDS
        rows = await self._store.fetchall(
            "SELECT seq, at, type, call_id, agent_id, queue, data FROM cti_events WHERE seq >= ? AND seq <= ?"
            " AND at >= ? ORDER BY seq", (await self._first_seq_since(since, cursor + 1), upto, since), flush=False)
        replay = QueueLogFormatter(self.formatter.agent_queues, agent_format=self.formatter.agent_format,
                                   log_caller_id=self.formatter.log_caller_id)
        lines: list[QueueLogEntry] = []
        ended: list[str] = []
        for event in _events(rows):
            entries = replay.feed(event) if self.settings.queue_log.enabled else []
            if event.seq > cursor:
                lines += entries
                if event.type == "call.ended" and event.call_id and self.settings.cdr.enabled:
                    ended.append(event.call_id)
        log.warning("compat: %d queue_log lines and %d CDRs of events before the restart written now",
                    len(lines), len(ended))
        self._lines[:0] = lines
        self._ended[:0] = ended
        self._seen_seq = max(self._seen_seq, upto)
        self._wake.set()

    async def _first_seq_since(self, since: float, below: int) -> int:
        """Where the events at or after `since` begin, up to event `below` (whose time is at or after it): the
        stream has no index on time (every event's commit rewrote its last page), so it is found by sequence
        number, which grows with the time, in a binary search of lookups by the primary key (~30 for a billion
        events)."""
        low, high = 0, below  # the events before `low` are older; the first from `high` on is not
        while low < high:
            middle = (low + high) // 2
            row = await self._store.fetchone(
                "SELECT seq, at FROM cti_events WHERE seq >= ? ORDER BY seq LIMIT 1", (middle,), flush=False)
            if row is None or int(row["seq"]) >= high or float(row["at"]) >= since:
                high = middle
            else:
                low = int(row["seq"]) + 1
        return low

    async def write_pending(self) -> None:
        seen = self._seen_seq  # what these lines and CDRs were made from
        lines, self._lines = self._lines, []
        ended, self._ended = self._ended, []
        written = await self._write_queue_log(lines) if lines else True
        if ended:
            await self._store.flush()  # the call records of these calls are committed
            cdrs = [cdr for call_id in ended if (cdr := await self._cdr(call_id)) is not None]
            written = await self._write_cdrs(cdrs) and written
        if written and seen:
            self._store.write("UPDATE compat_cursor SET seq = ? WHERE name = 'compat' AND seq < ?", (seen, seen))

    async def _write_queue_log(self, entries: list[QueueLogEntry]) -> bool:
        if self.queue_log_file is not None:
            text = "".join(entry.line() + "\n" for entry in entries)
            try:
                await asyncio.to_thread(_append, self.queue_log_file, text)
            except OSError as exc:
                log.error("queue_log: cannot append to %s: %s (%d lines kept for the next try)",
                          self.queue_log_file, exc.strerror, len(entries))
                self._lines[:0] = entries
                return False
        if self.settings.queue_log.table:
            for entry in entries:
                self._store.write("INSERT INTO queue_log (time, callid, queuename, agent, event, data1, data2,"
                                  " data3, data4, data5) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", entry.columns())
        self.lines_written += len(entries)
        return True

    async def _cdr(self, call_id: str) -> Cdr | None:
        call = await self._store.fetchone("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        if call is None:
            return None
        visits = await self._store.fetchall("SELECT * FROM queue_calls WHERE call_id = ? ORDER BY id", (call_id,))
        recordings = await self._store.fetchall(
            "SELECT file FROM recordings WHERE call_id = ? ORDER BY started_at", (call_id,))
        return build_cdr(dict(call), [dict(v) for v in visits], [dict(r) for r in recordings],
                         self.agent_endpoints)

    async def _write_cdrs(self, cdrs: list[Cdr]) -> bool:
        if self.settings.cdr.table:
            columns = Cdr.columns()
            sql = upsert("cdr", columns, ("uniqueid",))
            for cdr in cdrs:
                self._store.write(sql, cdr.values())
        if self.cdr_file is not None and cdrs:
            try:
                await asyncio.to_thread(_append, self.cdr_file, "".join(cdr_csv_line(cdr) for cdr in cdrs))
            except OSError as exc:
                log.error("cdr: cannot append to %s: %s", self.cdr_file, exc.strerror)
                self._ended[:0] = [cdr.uniqueid for cdr in cdrs]
                return False
        self.cdrs_written += len(cdrs)
        return True

    def metrics(self) -> Iterable[Any]:
        """Prometheus metrics (a source for /metrics): what was written, what waits to be."""
        yield CounterMetricFamily("ccc_queue_log_lines", "queue_log lines written", value=self.lines_written)
        yield CounterMetricFamily("ccc_cdrs", "CDRs written", value=self.cdrs_written)
        yield GaugeMetricFamily("ccc_compat_pending", "queue_log lines and CDRs not written yet (a failing disk)",
                                value=len(self._lines) + len(self._ended))

    def status(self) -> dict[str, Any]:
        return {"queue_log": str(self.queue_log_file) if self.queue_log_file else None,
                "cdr": str(self.cdr_file) if self.cdr_file else None,
                "queue_log_lines": self.lines_written, "cdrs": self.cdrs_written}


def _events(rows: Iterable[Any]) -> Iterable[CtiEvent]:
    for row in rows:
        yield CtiEvent(row["seq"], row["type"], row["at"], row["call_id"], row["agent_id"], row["queue"],
                       json.loads(row["data"]))
