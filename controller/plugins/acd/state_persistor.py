"""What the ACD writes to the store: queued calls, agent state changes, and the engine's saved state.

The saved state (`AcdEngine.snapshot()`: what a restarted controller restores, so that it comes back with the
same agents logged in and in the same states) is kept one row per agent and per queue. The rows of the agents
and queues that changed are built when the store's next batch is cut (`Store.write_at_commit`): once per
transaction however often they changed, only those (not every agent), and always in the same transaction as
the live-call parts written with those changes (a SIGKILL cannot fall between them).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from controller import jsontext
from controller.acd.engine import UnsavedChanges
from controller.store.db import Params, Store
from controller.store.engines import upsert


class AcdRecords:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        self._offers: dict[str, list[dict[str, Any]]] = {}  # call_id -> offers of the queue visit in progress
        self._upgraded = False  # restored from the former single snapshot row: it goes with the first rows
        self._moved: list[tuple[str, Params]] = []  # durations read from a former format, for the next batch
        # Calls whose queue visit's newest statement may still be queued: its ticket, whether it is the visit's
        # INSERT, and the columns it writes; oldest first. A change of the visit (an offer, its end) made within the
        # store's batch window of that statement goes in it (`Store.amend`): one statement instead of two.
        self._visits: dict[str, tuple[int, bool, dict[str, Any]]] = {}

    def enqueued(self, call_id: str, queue: str, priority: int) -> None:
        self._offers[call_id] = []
        self._store.forget_taken(self._visits)
        self._write_visit(call_id, True, {"call_id": call_id, "queue": queue, "enqueued_at": self._now(),
                                          "priority": priority})

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
        self._change_visit(call_id, {"offers": jsontext.dumps(offers)})

    def left(self, call_id: str, outcome: str, wait_seconds: float, agent_id: str | None,
             overflow_target: str | None = None) -> None:
        now = self._now()
        self._change_visit(call_id, {"left_at": now, "outcome": outcome, "wait_seconds": round(wait_seconds, 3),
                                     "agent_id": agent_id, "answered_at": now if outcome == "answered" else None,
                                     "overflow_target": overflow_target})

    def talk_ended(self, call_id: str) -> None:
        self._offers.pop(call_id, None)
        self._change_visit(call_id, {"talk_ended_at": self._now()})
        self._visits.pop(call_id, None)  # (nothing more is written of the visit)

    def _change_visit(self, call_id: str, columns: dict[str, Any]) -> None:
        """Write columns of the call's newest queue visit: in the visit's statement still queued (its INSERT, or the
        UPDATE of an earlier change: the row ends as the two statements would leave it), else an UPDATE."""
        visit = self._visits.get(call_id)
        if visit is not None:
            ticket, insert, written = visit
            merged = {**written, **columns}
            if self._store.amend(ticket, *_visit_statement(call_id, insert, merged)):
                self._visits[call_id] = (ticket, insert, merged)
                return
        self._write_visit(call_id, False, columns)

    def _write_visit(self, call_id: str, insert: bool, columns: dict[str, Any]) -> None:
        self._visits.pop(call_id, None)  # (re-inserted last: the oldest ticket stays first)
        ticket = self._store.write(*_visit_statement(call_id, insert, columns))
        if self._store.queued(ticket):
            self._visits[call_id] = (ticket, insert, columns)

    def forget(self, call_id: str) -> None:
        self._offers.pop(call_id, None)
        self._visits.pop(call_id, None)

    def agent_state(self, agent_id: str, state: str, reason: str | None, previous: str | None, at: float) -> None:
        self._store.write("INSERT INTO agent_states (agent_id, at, state, reason, previous) VALUES (?, ?, ?, ?, ?)",
                          (agent_id, at, state, reason, previous))

    def save_changes_at_commit(self, take_unsaved: Callable[[], UnsavedChanges]) -> None:
        """The agents and queues changed since the last batch, as `take_unsaved()` encodes them when the store's
        next batch is cut, written in that batch: an agent's row, or its row deleted when there is nothing to keep
        (an agent removed); a queue's durations added and forgotten. Asked for many times before a commit, it is
        built once."""
        self._store.write_at_commit("acd_saved", lambda: self._saved_rows(take_unsaved()))

    def _saved_rows(self, changes: UnsavedChanges) -> list[tuple[str, Params]]:
        now = self._now()
        statements: list[tuple[str, Params]] = [
            (_SAVE_AGENT, (agent_id, now, saved)) if saved is not None else (_DELETE_AGENT, (agent_id,))
            for agent_id, saved in changes.agents.items()]
        statements += self._moved  # (before what changed since: a queue removed meanwhile loses them)
        self._moved = []
        for queue, durations in changes.queues.items():
            if durations is None:
                statements.append((_DELETE_DURATIONS, (queue,)))
                continue
            for kind, change in zip(_KINDS, durations, strict=True):
                statements += [(_ADD_DURATION, (queue, kind, at, seconds)) for at, seconds in change.added]
                if change.forget_before is not None:
                    statements.append((_FORGET_DURATIONS, (queue, kind, change.forget_before)))
        if self._upgraded:  # the rows written now replace it (`restore` counted every agent in it as changed)
            statements.append(("DELETE FROM acd_snapshot", ()))
            self._upgraded = False
        return statements

    async def load_snapshot(self) -> dict[str, Any] | None:
        """What `AcdEngine.restore` takes, from the rows of the agents and of the queues' durations; from the
        former rows of those (a controller upgraded while calls were live: the next batch moves them), or the
        former single snapshot row when there are none yet. None: nothing saved."""
        agents = await self._store.fetchall("SELECT agent_id, snapshot FROM acd_saved_agents")
        rows = await self._store.fetchall(
            "SELECT queue, kind, ended_at, seconds FROM acd_queue_durations ORDER BY ended_at", flush=False)
        queues: dict[str, dict[str, list[list[float]]]] = {}
        for duration in rows:
            queues.setdefault(duration["queue"], {"talks": [], "rings": []})[f"{duration['kind']}s"].append(
                [duration["ended_at"], duration["seconds"]])
        former = await self._store.fetchall("SELECT queue, talks, rings FROM acd_saved_queues", flush=False)
        if former:
            moved = {saved["queue"]: {"talks": jsontext.loads(saved["talks"]), "rings": jsontext.loads(saved["rings"])}
                     for saved in former if saved["queue"] not in queues}
            self._move(moved, "DELETE FROM acd_saved_queues")
            queues.update(moved)
        if agents or queues:
            return {"version": 1, "agents": {row["agent_id"]: jsontext.loads(row["snapshot"]) for row in agents},
                    "queues": queues}
        row = await self._store.fetchone("SELECT snapshot FROM acd_snapshot WHERE id = 1")
        if row is None:
            return None
        self._upgraded = True
        snapshot = dict(jsontext.loads(row["snapshot"]))
        self._move(dict(snapshot.get("queues") or {}), None)
        return snapshot

    def _move(self, queues: dict[str, Any], delete: str | None) -> None:
        """Durations read from a former format, written as rows by the next batch (with `delete`, their source)."""
        self._moved = [(_ADD_DURATION, (queue, kind, round(float(at), 3), round(float(seconds), 3)))
                       for queue, saved in queues.items() for kind in _KINDS
                       for at, seconds in saved.get(f"{kind}s") or ()]
        if delete is not None:
            self._moved.append((delete, ()))

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


_SAVE_AGENT = upsert("acd_saved_agents", ("agent_id", "saved_at", "snapshot"), ("agent_id",))
_DELETE_AGENT = "DELETE FROM acd_saved_agents WHERE agent_id = ?"
_KINDS = ("talk", "ring")  # (a queue's durations: its "talks" and "rings" in the snapshot)
_ADD_DURATION = "INSERT INTO acd_queue_durations (queue, kind, ended_at, seconds) VALUES (?, ?, ?, ?)"
_FORGET_DURATIONS = "DELETE FROM acd_queue_durations WHERE queue = ? AND kind = ? AND ended_at < ?"
_DELETE_DURATIONS = "DELETE FROM acd_queue_durations WHERE queue = ?"
# The queue visit in progress of a call (a call may visit several queues: overflow, transfer).
_OPEN_VISIT = "id = (SELECT MAX(id) FROM queue_calls WHERE call_id = ?) AND call_id = ?"


@functools.cache
def _visit_sql(insert: bool, columns: tuple[str, ...]) -> str:
    """The statement writing these columns of a queue visit (column names of this module, never a caller's)."""
    if insert:
        return f"INSERT INTO queue_calls ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    return f"UPDATE queue_calls SET {', '.join(f'{column} = ?' for column in columns)} WHERE {_OPEN_VISIT}"


def _visit_statement(call_id: str, insert: bool, columns: dict[str, Any]) -> tuple[str, Params]:
    sql = _visit_sql(insert, tuple(columns))
    return sql, (*columns.values(),) if insert else (*columns.values(), call_id, call_id)
