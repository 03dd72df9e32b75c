"""The live-call picture: what a new controller process needs to take every live call over.

Each capability owns its part(s) of a call and saves them on every transition ("call": calls plugin, "ivr": IVR,
"queue"/"ring": ACD queueing, "talk": ACD call control, "recording": recordings). The store keeps one row per call
in `live_call_pictures`, every part in it, written through the store's batched writer, which commits within about
20 ms (`BATCH_WINDOW_SECONDS`): a SIGKILL loses at most the last batch. Asterisk is the truth for media, this
picture the truth for intent (see /work/coord/RESUME.md and the calls plugin's `readopt`).

This process holds each live call's parts, encoded; a call whose parts changed is written once when the store's
next batch is cut (`Store.write_at_commit`), as it stands then: its row, or its row's delete when no part is
left (it ended). A part saved as it is already, or dropped when it is not there, writes nothing. A row per part
cost ~12.5 statements per full-path call at 10 calls/s (its parts saved and dropped one by one over ~5 batches), a
row per call ~5.7 (README "Benchmarks", third round, fourth session); what a SIGKILL can lose is unchanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from controller import jsontext
from controller.store.db import Params, Store, StoreUnavailable
from controller.store.engines import upsert

log = logging.getLogger("controller.calls.live")

#: The parts, in the order the resume hands a call to their owners.
PARTS = ("call", "recording", "talk", "ring", "queue", "ivr")

LiveCalls = dict[str, dict[str, dict[str, Any]]]
_QUOTED = {part: f'"{part}"' for part in PARTS}


_SAVE = upsert("live_call_pictures", ("call_id", "parts", "updated_at"), ("call_id",))
_DROP = "DELETE FROM live_call_pictures WHERE call_id = ?"
#: A controller before schema 20 kept a row per call and part there: read once more, then moved.
_FORMER_ROWS = "SELECT call_id, part, data FROM live_calls ORDER BY call_id"
_DROP_FORMER_ROWS = "DELETE FROM live_calls"


class LiveCallState:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        self._parts: dict[str, dict[str, str]] = {}  # call id -> part -> its data as JSON, as this process has it
        self._changed: dict[str, None] = {}  # calls whose row the store's next batch writes (or deletes), in order
        self._former_rows = False  # `live_calls` rows were read: the next batch moves them (they are in `_changed`)
        self._batch_key = f"live_calls {id(self)}"  # (its own `write_at_commit` key: two pictures never mix)

    def save(self, call_id: str, part: str, data: dict[str, Any]) -> None:
        """Replace the call's `part` with `data` (JSON-serialisable; encoded now, as it is now)."""
        if part not in PARTS:
            raise ValueError(f"unknown live-call part {part!r}")
        text = jsontext.dumps(data)
        parts = self._parts.setdefault(call_id, {})
        if parts.get(part) == text:
            return  # what the store has, or will have with the next batch
        parts[part] = text
        self._change(call_id)

    def drop(self, call_id: str, part: str | None = None) -> None:
        """Forget one part of the call, or the whole call (it ended)."""
        if part is None:  # what its parts were to become is moot: all of them go
            self._parts.pop(call_id, None)
        else:
            parts = self._parts.get(call_id)
            if parts is None or parts.pop(part, None) is None:
                return  # not there: nothing to write
            if not parts:
                del self._parts[call_id]
        self._change(call_id)

    def _change(self, call_id: str) -> None:
        self._changed[call_id] = None
        self._store.write_at_commit(self._batch_key, self._take_unwritten)

    def _take_unwritten(self) -> list[tuple[str, Params]]:
        """Each changed call's row as it stands now, or its delete (no part left)."""
        changed, self._changed = self._changed, {}
        now = self._now()
        statements: list[tuple[str, Params]] = []
        for call_id in changed:
            parts = self._parts.get(call_id)
            if parts:  # (the parts are JSON already: joined, not encoded again)
                row = "{" + ",".join(f"{_QUOTED.get(part) or jsontext.dumps(part)}:{text}"
                                     for part, text in parts.items()) + "}"
                statements.append((_SAVE, (call_id, row, now)))
            else:
                statements.append((_DROP, (call_id,)))
        if self._former_rows:  # their calls are written above, in the same transaction
            statements.append((_DROP_FORMER_ROWS, ()))
            self._former_rows = False
        return statements

    async def load_all(self) -> LiveCalls:
        """call_id -> part -> data, for the resume at start and on every reconnect; the calls this process does not
        hold yet (those of a previous process) are held from now on, as stored.

        A call whose row cannot be read, or a part that is not an object, is left out (logged): its call resumes
        without it, or goes to the fallback route if nothing can rebuild it."""
        with contextlib.suppress(StoreUnavailable):  # failing: what is committed is what there is to resume
            await self._store.flush()  # what this process wrote last (a call that just ended) is read as it is
        calls: LiveCalls = {}
        for row in await self._store.fetchall("SELECT call_id, parts FROM live_call_pictures ORDER BY call_id"):
            try:
                parts = jsontext.loads(row["parts"])
            except ValueError:
                log.error("call %s: its stored live-call picture is unreadable: ignored", row["call_id"])
                continue
            if isinstance(parts, dict):
                calls[row["call_id"]] = _objects(row["call_id"], parts)
        former: LiveCalls = {}
        for row in await self._store.fetchall(_FORMER_ROWS, flush=False):
            try:
                data = jsontext.loads(row["data"])
            except ValueError:
                data = None
            former.setdefault(row["call_id"], {})[row["part"]] = data
        for call_id, parts in former.items():
            if call_id not in calls:
                calls[call_id] = _objects(call_id, parts)
        for call_id, parts in calls.items():
            # (one changed meanwhile is held as this process has it; one that ended is not held again)
            if call_id not in self._parts and call_id not in self._changed:
                self._parts[call_id] = {part: jsontext.dumps(data) for part, data in parts.items()}
                if call_id in former:
                    self._change(call_id)
        if former:
            self._former_rows = True
            self._store.write_at_commit(self._batch_key, self._take_unwritten)
        return calls


def _objects(call_id: str, parts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The parts that are JSON objects (the others are logged and left out)."""
    kept: dict[str, dict[str, Any]] = {}
    for part, data in parts.items():
        if isinstance(data, dict):
            kept[part] = data
        else:
            log.error("call %s: stored %s part is unreadable: ignored", call_id, part)
    return kept
