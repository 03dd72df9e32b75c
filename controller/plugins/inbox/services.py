"""Voicemail as work (inbox items for a queue or a person) and follow-up tasks (工单) with due times.

Messages come from two places, both imported by one poller so that nothing is lost across restarts:
- flows: the IVR's voicemail node stores a row in `ivr_records` and the WAV in Asterisk's recording
  directory; rows past a cursor (kept in the store, moved in the same transaction as the item) become items;
- the fallback route (the controller is down): app_voicemail stores msgNNNN.txt/.wav in its mailbox; each
  message is copied into the controller's data directory, indexed, then removed from the mailbox (so it is
  imported once and the mailbox never fills up: app_voicemail refuses messages past its maxmsg).
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.config import InboxSettings
from controller.logs import mask_number
from controller.plugins.inbox.notifier import InboxNotifier
from controller.plugins.inbox.state_persistor import InboxRecords
from controller.workdays import working_days_later

log = logging.getLogger("controller.inbox")

#: A fallback message younger than this is left alone: app_voicemail may still be moving it into INBOX.
SETTLE_SECONDS = 2.0
RETENTION_EVERY_SECONDS = 600.0
FLOW_CURSOR = "flow_voicemail"
ClickToDial = Callable[[str, str], Awaitable[dict[str, Any]]]


class InboxError(Exception):
    """A request the inbox cannot do now (409), with the reason."""


@dataclass(frozen=True)
class Viewer:
    """Who is asking: an agent (sees their own items and their queues') or anyone else (sees all)."""

    agent_id: str | None
    queues: Sequence[str] | None

    def sees(self, row: dict[str, Any]) -> bool:
        if self.agent_id is None:
            return True
        if row["agent_id"] is not None:
            return bool(row["agent_id"] == self.agent_id)
        return row["queue"] in (self.queues or ())


def parse_mailbox_message(text: str) -> dict[str, str]:
    """app_voicemail's msgNNNN.txt ([message] section: callerid, origtime, duration, msg_id, ...)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(text)
    return dict(parser["message"]) if parser.has_section("message") else {}


def caller_number(callerid: str) -> str:
    """'"Name" <13800138000>' or '13800138000' -> 13800138000; '<unknown>' -> ''."""
    number = callerid.rsplit("<", 1)[-1].rstrip(">").strip() if "<" in callerid else callerid.strip()
    return "" if number.lower() in ("unknown", "") else number


class InboxService:
    def __init__(self, *, settings: Callable[[], InboxSettings], records: InboxRecords, now: Callable[[], float],
                 publish: Callable[..., Any], recordings_dir: Callable[[], str], data_dir: Path) -> None:
        self._settings = settings
        self.records = records
        self._now = now
        self.notify = InboxNotifier(publish)
        self._recordings_dir = recordings_dir
        self.files_dir = data_dir / "inbox"
        self.click_to_dial: ClickToDial | None = None  # the ACD's click-to-dial (set by the controller)
        self._retention_done_at = 0.0

    @property
    def settings(self) -> InboxSettings:
        return self._settings()

    def now(self) -> float:
        return self._now()

    async def run(self) -> None:
        """The poller: imports messages, raises task reminders and overdue alerts, applies retention."""
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failing store or file system: try again next round, never end the controller
                log.exception("inbox: poll failed; retrying")
            await asyncio.sleep(self.settings.poll_seconds)

    async def poll_once(self) -> None:
        await self.import_flow_voicemails()
        await self.import_fallback_mailbox()
        await self.check_tasks()
        if time.monotonic() - self._retention_done_at >= RETENTION_EVERY_SECONDS:
            await self.apply_retention()
            self._retention_done_at = time.monotonic()

    # -- import -----------------------------------------------------------------------------------

    async def import_flow_voicemails(self) -> int:
        cursor = await self.records.cursor(FLOW_CURSOR)
        added = 0
        for row in await self.records.new_flow_voicemails(cursor):
            payload = json.loads(row["payload"] or "{}")
            call_data = json.loads(row["call_data"] or "{}")
            queue = payload.get("queue") or row["last_queue"] or self.settings.default_queue or None
            item = {"id": uuid.uuid4().hex, "kind": "voicemail", "source": f"flow:{row['id']}",
                    "call_id": row["call_id"], "caller": row["caller"], "did": row["did"], "queue": queue,
                    "agent_id": payload.get("agent") or None, "created_at": row["created_at"],
                    "duration": payload.get("duration"),
                    "file": str(Path(self._recordings_dir()) / f"{payload.get('recording', '')}.wav"),
                    "data": {"flow": payload.get("flow"), "ivr": call_data}}
            if await self.records.add_item(item, cursor=(FLOW_CURSOR, int(row["id"]))):
                added += 1
                self._announce(item)
        return added

    async def import_fallback_mailbox(self) -> int:
        inbox = Path(self.settings.fallback_mailbox_dir) / "INBOX"
        messages = await asyncio.to_thread(self._settled_messages, inbox)
        added = 0
        for text_file in messages:
            try:
                added += await self._import_fallback_message(text_file)
            except OSError as exc:
                log.error("inbox: cannot import %s from the fallback mailbox (%s); retrying", text_file.name, exc)
        return added

    @staticmethod
    def _settled_messages(inbox: Path) -> list[Path]:
        if not inbox.is_dir():
            return []
        cutoff = time.time() - SETTLE_SECONDS
        return sorted(path for path in inbox.glob("msg*.txt")
                      if path.with_suffix(".wav").is_file() and path.stat().st_mtime < cutoff
                      and path.with_suffix(".wav").stat().st_mtime < cutoff)

    async def _import_fallback_message(self, text_file: Path) -> int:
        fields = parse_mailbox_message(await asyncio.to_thread(text_file.read_text, errors="replace"))
        message_id = fields.get("msg_id") or f"{fields.get('origtime', '')}-{text_file.stem}"
        target = self.files_dir / f"fallback-{message_id}.wav"
        await asyncio.to_thread(self._copy, text_file.with_suffix(".wav"), target)
        caller = caller_number(fields.get("callerid", ""))
        item = {"id": uuid.uuid4().hex, "kind": "voicemail", "source": f"fallback:{message_id}", "call_id": None,
                "caller": caller, "did": fields.get("exten", ""), "queue": self.settings.fallback_queue or None,
                "agent_id": None, "created_at": float(fields.get("origtime") or self._now()),
                "duration": float(fields.get("duration") or 0), "file": str(target),
                "data": {"route": "fallback", "mailbox": fields.get("origmailbox", "")}}
        added = await self.records.add_item(item)
        if added:
            self._announce(item)
        # Indexed (or imported before a crash): the mailbox's copy can go.
        await asyncio.to_thread(self._remove_message, text_file)
        return int(added)

    def _copy(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        shutil.copyfile(source, partial)
        partial.replace(target)

    @staticmethod
    def _remove_message(text_file: Path) -> None:
        for path in text_file.parent.glob(f"{text_file.stem}.*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _announce(self, item: dict[str, Any]) -> None:
        log.info("inbox: new %s %s from %s for %s", item["kind"], item["id"], mask_number(item["caller"]),
                 item["agent_id"] or item["queue"] or "supervisors")
        self.notify.new_item(item)

    # -- items ------------------------------------------------------------------------------------

    async def visible_item(self, item_id: str, viewer: Viewer) -> dict[str, Any] | None:
        """The item, or None when it does not exist or the viewer may not see it (no hint which)."""
        item = await self.records.item(item_id)
        return item if item is not None and viewer.sees(item) else None

    async def assign(self, item: dict[str, Any], agent_id: str, by: str) -> dict[str, Any]:
        if item["status"] == "done":
            raise InboxError("the item is done")
        await self.records.assign(item["id"], agent_id)
        self.notify.assigned(item, agent_id, by)
        return await self._reloaded(item["id"])

    async def call_back(self, item: dict[str, Any], agent_id: str) -> dict[str, Any]:
        """Click-to-dial the caller from the agent's phone; the item is linked to that call."""
        if not item["caller"]:
            raise InboxError("the caller's number is unknown")
        if item["status"] == "done":
            raise InboxError("the item is done")
        if self.click_to_dial is None:
            raise InboxError("outbound calls are not available")
        call = await self.click_to_dial(agent_id, item["caller"])
        await self.records.called_back(item["id"], call["call_id"], agent_id)
        self.notify.answered(item, status="called_back", agent_id=agent_id,
                             response_seconds=self._now() - item["created_at"], callback_call_id=call["call_id"])
        return {**await self._reloaded(item["id"]), "call": call}

    async def done(self, item: dict[str, Any], by: str, note: str, agent_id: str | None) -> dict[str, Any]:
        if item["status"] == "done":
            raise InboxError("the item is already done")
        await self.records.done(item["id"], by, note)
        self.notify.answered(item, status="done", agent_id=agent_id or item["agent_id"],
                             response_seconds=self._now() - item["created_at"],
                             callback_call_id=item["callback_call_id"])
        return await self._reloaded(item["id"])

    async def _reloaded(self, item_id: str) -> dict[str, Any]:
        item = await self.records.item(item_id)
        assert item is not None
        return item

    async def apply_retention(self) -> int:
        days = self.settings.retention_days
        if days <= 0:
            return 0
        removed = 0
        for item in await self.records.expired_items(self._now() - days * 86400):
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(Path(item["file"]).unlink)
            self.records.deleted(item["id"])
            removed += 1
        if removed:
            log.info("inbox: retention removed %d messages older than %g days", removed, days)
        return removed

    async def report(self, start: float, end: float) -> dict[str, Any]:
        """Response time KPIs: from a message's arrival to its first answer (called back or done)."""
        by_queue: dict[str, list[float | None]] = {}
        for row in await self.records.response_times(start, end):
            answered = min((t for t in (row["called_back_at"], row["done_at"]) if t is not None), default=None)
            by_queue.setdefault(row["queue"] or "", []).append(
                None if answered is None else answered - row["created_at"])
        rows = []
        for queue, times in sorted(by_queue.items()):
            answered_times = sorted(t for t in times if t is not None)
            rows.append({"queue": queue or None, "messages": len(times), "answered": len(answered_times),
                         "open": len(times) - len(answered_times),
                         "avg_response_seconds": round(sum(answered_times) / len(answered_times), 1)
                         if answered_times else None,
                         "max_response_seconds": round(answered_times[-1], 1) if answered_times else None})
        return {"from": start, "to": end, "voicemail": rows}

    # -- follow-up tasks --------------------------------------------------------------------------

    def default_due(self, created_at: float) -> float:
        settings = self.settings
        return working_days_later(created_at, settings.task_due_working_days, settings.timezone)

    async def create_task(self, *, title: str, created_by: str, call_id: str | None, agent_id: str | None,
                          queue: str | None, due_at: float | None) -> dict[str, Any]:
        now = self._now()
        task: dict[str, Any] = {"id": uuid.uuid4().hex, "call_id": call_id, "title": title, "created_by": created_by,
                "created_at": now, "agent_id": agent_id, "queue": queue,
                "due_at": due_at if due_at is not None else self.default_due(now)}
        await self.records.add_task(task)
        self.notify.task_created(task)
        stored = await self.records.task(task["id"])
        assert stored is not None
        return stored

    async def close_task(self, task: dict[str, Any], by: str, note: str) -> dict[str, Any]:
        if task["status"] != "open":
            raise InboxError("the task is already closed")
        await self.records.close_task(task["id"], by, note)
        self.notify.task_closed(task, by, overdue=self._now() > task["due_at"])
        stored = await self.records.task(task["id"])
        assert stored is not None
        return stored

    async def check_tasks(self) -> None:
        """task.reminder before the due time, alert.raised (task_overdue) once it has passed: each once."""
        now = self._now()
        reminder = self.settings.task_reminder_minutes * 60
        for task in await self.records.open_tasks_due_before(now + reminder):
            if task["due_at"] <= now:
                if task["overdue_at"] is None:
                    log.warning("follow-up task %s is overdue", task["id"])
                    self.records.overdue(task["id"])
                    self.notify.task_overdue(task, now)
                if task["reminded_at"] is None:
                    self.records.reminded(task["id"])  # past its reminder: the alert says more
            elif reminder > 0 and task["reminded_at"] is None:
                self.records.reminded(task["id"])
                self.notify.task_reminder(task)

    async def task_counts(self) -> dict[str, int]:
        return await self.records.task_counts(self._now())
