"""What the ACD writes to the store: queued calls, agent state changes, and the agent snapshot.

The snapshot (`AcdEngine.snapshot()`) is rewritten after agent state changes, so a restarted controller
comes back with the same agents logged in and in the same states. It is built when the store's next batch
is cut (`Store.write_at_commit`): once per transaction however many agents changed, and always in the same
transaction as the live-call parts written with those changes (a SIGKILL cannot fall between them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from controller.store.db import Store
from controller.store.engines import upsert


class AcdRecords:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        self._offers: dict[str, list[dict[str, Any]]] = {}  # call_id -> offers of the queue visit in progress

    def enqueued(self, call_id: str, queue: str, priority: int) -> None:
        self._offers[call_id] = []
        self._store.write("INSERT INTO queue_calls (call_id, queue, enqueued_at, priority) VALUES (?, ?, ?, ?)",
                          (call_id, queue, self._now(), priority))

    def offers_of(self, call_id: str) -> list[dict[str, Any]]:
        """The offers of the call's queue visit in progress so far (kept in the live-call picture)."""
        return list(self._offers.get(call_id, []))

    def resume_visit(self, call_id: str, offers: list[dict[str, Any]]) -> None:
        """A queue visit taken over after a restart: its record is open already; its offers so far go on."""
        self._offers[call_id] = list(offers)

    def offer(self, call_id: str, agent_id: str, ring_seconds: float, result: str) -> None:
        """An agent's phone rang for the call: how long, and how it ended (answered, no_answer, busy, ...)."""
        offers = self._offers.setdefault(call_id, [])
        offers.append({"agent_id": agent_id, "at": round(self._now() - ring_seconds, 3),
                       "ring_seconds": round(ring_seconds, 3), "result": result})
        self._store.write(f"UPDATE queue_calls SET offers = ? WHERE {_OPEN_VISIT}",
                          (json.dumps(offers), call_id, call_id))

    def left(self, call_id: str, outcome: str, wait_seconds: float, agent_id: str | None,
             overflow_target: str | None = None) -> None:
        now = self._now()
        self._store.write(
            f"UPDATE queue_calls SET left_at = ?, outcome = ?, wait_seconds = ?, agent_id = ?, answered_at = ?,"
            f" overflow_target = ? WHERE {_OPEN_VISIT}",
            (now, outcome, round(wait_seconds, 3), agent_id, now if outcome == "answered" else None,
             overflow_target, call_id, call_id))

    def talk_ended(self, call_id: str) -> None:
        self._offers.pop(call_id, None)
        self._store.write(
            "UPDATE queue_calls SET talk_ended_at = ? WHERE id = (SELECT MAX(id) FROM queue_calls WHERE call_id = ?)",
            (self._now(), call_id))

    def forget(self, call_id: str) -> None:
        self._offers.pop(call_id, None)

    def agent_state(self, agent_id: str, state: str, reason: str | None, previous: str | None, at: float) -> None:
        self._store.write("INSERT INTO agent_states (agent_id, at, state, reason, previous) VALUES (?, ?, ?, ?, ?)",
                          (agent_id, at, state, reason, previous))

    def save_snapshot(self, snapshot: Mapping[str, Any]) -> None:
        self._store.write(_SAVE_SNAPSHOT, (1, self._now(), json.dumps(snapshot, ensure_ascii=False)))

    def save_snapshot_at_commit(self, snapshot_json: Callable[[], str]) -> None:
        """The snapshot, as `snapshot_json()` encodes it when the store's next batch is cut, written in that
        batch."""
        self._store.write_at_commit("acd_snapshot", lambda: (_SAVE_SNAPSHOT, (1, self._now(), snapshot_json())))

    async def load_snapshot(self) -> dict[str, Any] | None:
        row = await self._store.fetchone("SELECT snapshot FROM acd_snapshot WHERE id = 1")
        return dict(json.loads(row["snapshot"])) if row else None

    async def left_since(self, since: float) -> dict[str, list[tuple[str, float]]]:
        """Queue visits that ended, enqueued since `since`: queue -> [(outcome, wait seconds)]."""
        rows = await self._store.fetchall(
            "SELECT queue, outcome, wait_seconds FROM queue_calls WHERE enqueued_at >= ? AND outcome IS NOT NULL",
            (since,))
        left: dict[str, list[tuple[str, float]]] = {}
        for row in rows:
            left.setdefault(row["queue"], []).append((row["outcome"], float(row["wait_seconds"] or 0.0)))
        return left

    async def queue_calls(self, since: float, until: float) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT * FROM queue_calls WHERE enqueued_at >= ? AND enqueued_at < ? ORDER BY id", (since, until))
        return [dict(row) for row in rows]

    async def agent_state_rows(self, since: float, until: float) -> list[dict[str, Any]]:
        """State changes in [since, until), plus each agent's last change before `since` (its state then)."""
        rows = await self._store.fetchall(
            "SELECT * FROM agent_states WHERE at < ? AND (at >= ? OR id IN"
            " (SELECT MAX(id) FROM agent_states WHERE at < ? GROUP BY agent_id)) ORDER BY at, id",
            (until, since, since))
        return [dict(row) for row in rows]


_SAVE_SNAPSHOT = upsert("acd_snapshot", ("id", "saved_at", "snapshot"), ("id",))
# The queue visit in progress of a call (a call may visit several queues: overflow, transfer).
_OPEN_VISIT = "id = (SELECT MAX(id) FROM queue_calls WHERE call_id = ?) AND call_id = ?"
