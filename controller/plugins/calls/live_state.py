"""The live-call picture: what a new controller process needs to take every live call over.

One row per call and part in `live_calls`; each capability owns its part(s) and writes them on every
transition ("call": calls plugin, "ivr": IVR, "queue"/"ring": ACD queueing, "talk": ACD call control,
"recording": recordings). Writes go through the store's batched writer, which commits within
milliseconds: a SIGKILL loses at most the last batch. Asterisk is the truth for media, this picture
the truth for intent (see /work/coord/RESUME.md and the calls plugin's `readopt`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from controller.store.db import Store, StoreUnavailable
from controller.store.engines import upsert

log = logging.getLogger("controller.calls.live")

#: The parts, in the order the resume hands a call to their owners.
PARTS = ("call", "recording", "talk", "ring", "queue", "ivr")

LiveCalls = dict[str, dict[str, dict[str, Any]]]


_SAVE = upsert("live_calls", ("call_id", "part", "data", "updated_at"), ("call_id", "part"))

class LiveCallState:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now

    def save(self, call_id: str, part: str, data: dict[str, Any]) -> None:
        """Replace the call's `part` with `data` (JSON-serialisable)."""
        self._store.write(
            _SAVE,
            (call_id, part, json.dumps(data, ensure_ascii=False, default=str), self._now()))

    def drop(self, call_id: str, part: str | None = None) -> None:
        """Forget one part of the call, or the whole call (it ended)."""
        if part is None:
            self._store.write("DELETE FROM live_calls WHERE call_id = ?", (call_id,))
        else:
            self._store.write("DELETE FROM live_calls WHERE call_id = ? AND part = ?", (call_id, part))

    async def load_all(self) -> LiveCalls:
        """call_id -> part -> data, for the resume at start and on every reconnect.

        A part whose JSON cannot be read is left out (logged): its call resumes without it, or goes to
        the fallback route if nothing can rebuild it."""
        with contextlib.suppress(StoreUnavailable):  # failing: what is committed is what there is to resume
            await self._store.flush()  # what this process wrote last (a call that just ended) is read as it is
        rows = await self._store.fetchall("SELECT call_id, part, data FROM live_calls ORDER BY call_id")
        calls: LiveCalls = {}
        for row in rows:
            try:
                data = json.loads(row["data"])
            except ValueError:
                log.error("call %s: stored %s part is unreadable: ignored", row["call_id"], row["part"])
                continue
            if isinstance(data, dict):
                calls.setdefault(row["call_id"], {})[row["part"]] = data
        return calls
