"""The live-call picture: what a new controller process needs to take every live call over.

One row per call and part in `live_calls`; each capability owns its part(s) and writes them on every
transition ("call": calls plugin, "ivr": IVR, "queue"/"ring": ACD queueing, "talk": ACD call control,
"recording": recordings). Writes go through the store's batched writer, which commits within
about 20 ms (`BATCH_WINDOW_SECONDS`): a SIGKILL loses at most the last batch. Asterisk is the truth
for media, this picture the truth for intent (see /work/coord/RESUME.md and the calls plugin's `readopt`).

A part saved or dropped several times before the store's next batch is cut is written once, as it stands then
(`Store.write_at_commit`): the batch that would have carried every change carries the last one, so what a
SIGKILL can lose is unchanged, and a call's answer (ring and queue parts dropped twice, talk saved) or end
costs fewer statements (README "Benchmarks", third round, second session).
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


_SAVE = upsert("live_calls", ("call_id", "part", "data", "updated_at"), ("call_id", "part"))
_DROP_PART = "DELETE FROM live_calls WHERE call_id = ? AND part = ?"
_DROP_CALL = "DELETE FROM live_calls WHERE call_id = ?"


class LiveCallState:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        # Per call, its statements for the store's next batch: the last word on each part, after the whole call's
        # delete (key None) when it ended meanwhile.
        self._unwritten: dict[str, dict[str | None, tuple[str, Params]]] = {}
        self._batch_key = f"live_calls {id(self)}"  # (its own `write_at_commit` key: two pictures never mix)

    def save(self, call_id: str, part: str, data: dict[str, Any]) -> None:
        """Replace the call's `part` with `data` (JSON-serialisable; encoded now, as it is now)."""
        self._unwritten.setdefault(call_id, {})[part] = (
            _SAVE, (call_id, part, jsontext.dumps(data), self._now()))
        self._store.write_at_commit(self._batch_key, self._take_unwritten)

    def drop(self, call_id: str, part: str | None = None) -> None:
        """Forget one part of the call, or the whole call (it ended)."""
        if part is None:  # what its parts were to become is moot: all of them go
            self._unwritten[call_id] = {None: (_DROP_CALL, (call_id,))}
        else:
            self._unwritten.setdefault(call_id, {})[part] = (_DROP_PART, (call_id, part))
        self._store.write_at_commit(self._batch_key, self._take_unwritten)

    def _take_unwritten(self) -> list[tuple[str, Params]]:
        unwritten, self._unwritten = self._unwritten, {}
        return [statement for parts in unwritten.values() for statement in parts.values()]

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
                data = jsontext.loads(row["data"])
            except ValueError:
                log.error("call %s: stored %s part is unreadable: ignored", row["call_id"], row["part"])
                continue
            if isinstance(data, dict):
                calls.setdefault(row["call_id"], {})[row["part"]] = data
        return calls
