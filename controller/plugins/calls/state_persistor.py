"""Call records in the store: one row per call, plus a row per thing that happened during it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller import jsontext
from controller.store.db import Store

_INSERT_EVENT = "INSERT INTO call_events (call_id, at, kind, detail) VALUES (?, ?, ?, ?)"


_START = ("INSERT INTO calls (call_id, channel_id, direction, caller, did, started_at) VALUES (?, ?, ?, ?, ?, ?)"
          " ON CONFLICT (call_id) DO NOTHING")
#: `_START` with the call's answer and flow folded in (`Store.amend`): on a conflict (the row is there already) the
#: two UPDATEs it replaces would still have set them: answered_at where it is NULL, flow always.
_START_FOLDED = ("INSERT INTO calls (call_id, channel_id, direction, caller, did, started_at, answered_at, flow)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO UPDATE SET"
                 " answered_at = COALESCE(calls.answered_at, excluded.answered_at),"
                 " flow = COALESCE(excluded.flow, calls.flow)")
_ANSWERED = "UPDATE calls SET answered_at = ? WHERE call_id = ? AND answered_at IS NULL"
_SET_FLOW = "UPDATE calls SET flow = ? WHERE call_id = ?"


class CallRecords:
    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now
        # Calls whose INSERT may still be queued: its ticket and parameters (`_START_FOLDED`'s), oldest first. A call's
        # answer and flow, nearly always set within the store's batch window of its start, go in its INSERT then.
        self._starting: dict[str, tuple[int, tuple[Any, ...]]] = {}

    def started(self, call_id: str, channel_id: str, *, direction: str, caller: str, did: str) -> None:
        self._store.forget_taken(self._starting)
        params = (call_id, channel_id, direction, caller, did, self._now())
        ticket = self._store.write(_START, params)
        if self._store.queued(ticket):
            self._starting[call_id] = (ticket, (*params, None, None))

    def answered(self, call_id: str) -> None:
        at = self._now()
        if not self._fold(call_id, 6, at):
            self._store.write(_ANSWERED, (at, call_id))

    def set_flow(self, call_id: str, flow: str) -> None:
        if not self._fold(call_id, 7, flow):
            self._store.write(_SET_FLOW, (flow, call_id))

    def _fold(self, call_id: str, column: int, value: Any) -> bool:
        """Whether `value` went into the call's INSERT still queued (`_START_FOLDED`'s parameter `column`): an answer
        already there stays (as `_ANSWERED` leaves it)."""
        starting = self._starting.get(call_id)
        if starting is None:
            return False
        ticket, params = starting
        if column == 6 and params[6] is not None:
            return True  # answered already: the UPDATE would change nothing
        params = (*params[:column], value, *params[column + 1:])
        if not self._store.amend(ticket, _START_FOLDED, params):
            del self._starting[call_id]
            return False
        self._starting[call_id] = (ticket, params)
        return True

    def event(self, call_id: str, kind: str, /, **detail: Any) -> None:
        self._store.write(_INSERT_EVENT, (call_id, self._now(), kind, jsontext.dumps(detail)))  # (~15 a call)

    def event_text(self, call_id: str, kind: str, detail: str) -> None:
        """`event` with its detail already JSON text (an object's): the text stored elsewhere too, encoded once."""
        self._store.write(_INSERT_EVENT, (call_id, self._now(), kind, detail))

    def ended(self, call_id: str, *, reason: str, cause: int | None = None, cause_txt: str | None = None,
              at: float | None = None) -> None:
        self._store.write(
            "UPDATE calls SET ended_at = ?, end_reason = ?, hangup_cause = ?, hangup_cause_txt = ?"
            " WHERE call_id = ? AND ended_at IS NULL",
            (at if at is not None else self._now(), reason, cause, cause_txt, call_id),
        )

    def finished(self, call_id: str, data: dict[str, Any], *, reason: str, cause: int | None = None,
                 cause_txt: str | None = None) -> None:
        """The call's task is over: its data as it ends, and its end (as `ended`: unless already written, e.g.
        "lost"), in one statement (they were two for every call)."""
        self._store.write(
            "UPDATE calls SET data = ?, end_reason = CASE WHEN ended_at IS NULL THEN ? ELSE end_reason END,"
            " hangup_cause = CASE WHEN ended_at IS NULL THEN ? ELSE hangup_cause END,"
            " hangup_cause_txt = CASE WHEN ended_at IS NULL THEN ? ELSE hangup_cause_txt END,"
            " ended_at = COALESCE(ended_at, ?) WHERE call_id = ?",
            (jsontext.dumps(data), reason, cause, cause_txt, self._now(), call_id))

    async def flush(self) -> None:
        """Wait until the writes queued so far are in the store (reads right after a change)."""
        await self._store.flush()

    async def get(self, call_id: str) -> dict[str, Any] | None:
        row = await self._store.fetchone("SELECT * FROM calls WHERE call_id = ?", (call_id,))
        if row is None:
            return None
        record = dict(row)
        record["data"] = jsontext.loads(record["data"] or "{}")
        events = await self._store.fetchall(
            "SELECT at, kind, detail FROM call_events WHERE call_id = ? ORDER BY id", (call_id,))
        record["events"] = [{"at": e["at"], "kind": e["kind"], **jsontext.loads(e["detail"])} for e in events]
        return record

    async def by_channel(self, channel_id: str) -> dict[str, Any] | None:
        row = await self._store.fetchone(
            "SELECT call_id FROM calls WHERE channel_id = ? ORDER BY started_at DESC LIMIT 1", (channel_id,))
        return await self.get(row["call_id"]) if row else None

    async def open_calls(self) -> list[dict[str, Any]]:
        rows = await self._store.fetchall("SELECT call_id, channel_id FROM calls WHERE ended_at IS NULL")
        return [dict(row) for row in rows]

    async def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._store.fetchall(
            "SELECT call_id, channel_id, direction, caller, did, flow, started_at, answered_at, ended_at,"
            " end_reason, hangup_cause FROM calls ORDER BY started_at DESC LIMIT ?", (limit,))
        return [dict(row) for row in rows]

    async def history(self, number: str, *, limit: int = 10, before: float | None = None,
                      flush: bool = True) -> list[dict[str, Any]]:
        """A number's recent calls, newest first (inbound from it, outbound to it), with who answered
        and the disposition left by the agent. `flush=False`: as committed now (the writes of the last few
        ms may be missing), without forcing a commit of its own (`Store.fetchall`)."""
        # The newest `limit` of each direction straight from its index (calls_caller, calls_did), then the
        # newest `limit` of those: a number with thousands of calls (a switchboard, withheld numbers) costs no
        # more than any other (an OR over both indexes sorted every matching call: 4 ms at 600 calls).
        before = before if before is not None else float("inf")
        string_agg = self._store.dialect.string_agg
        rows = await self._store.fetchall(
            "SELECT c.call_id, c.direction, c.started_at, c.answered_at, c.ended_at, c.end_reason, c.flow,"
            f" (SELECT {string_agg}(q.agent_id, ',') FROM queue_calls q WHERE q.call_id = c.call_id"
            "  AND q.outcome = 'answered') AS agents,"
            f" (SELECT {string_agg}(q.queue, ',') FROM queue_calls q WHERE q.call_id = c.call_id) AS queues,"
            " d.disposition, d.notes"
            " FROM (SELECT * FROM (SELECT call_id, started_at FROM calls WHERE direction = 'inbound' AND caller = ?"
            "   AND started_at < ? ORDER BY started_at DESC LIMIT ?) AS inbound"
            "  UNION ALL SELECT * FROM (SELECT call_id, started_at FROM calls WHERE direction = 'outbound'"
            "   AND did = ? AND started_at < ? ORDER BY started_at DESC LIMIT ?) AS outbound"
            "  ORDER BY started_at DESC LIMIT ?) AS recent"
            " JOIN calls c ON c.call_id = recent.call_id LEFT JOIN dispositions d ON d.call_id = c.call_id"
            " ORDER BY c.started_at DESC",
            (number, before, limit, number, before, limit, limit), flush=flush)
        return [{**dict(row), "agents": (row["agents"] or "").split(",") if row["agents"] else [],
                 "queues": (row["queues"] or "").split(",") if row["queues"] else []} for row in rows]

    async def has_served(self, number: str, agent_id: str) -> bool:
        """Whether the agent talked with this number: answered its call from a queue, or placed a call to it
        that the customer answered. What lets an agent see its history: a call that only rang the agent,
        or a number dialled that never picked up, unlocks nothing."""
        json = self._store.dialect.json_text
        row = await self._store.fetchone(
            f"SELECT 1 FROM calls c WHERE {_WITH_NUMBER} AND (EXISTS (SELECT 1 FROM queue_calls q"
            " WHERE q.call_id = c.call_id AND q.agent_id = ? AND q.outcome = 'answered')"
            " OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.call_id AND e.kind = 'customer_dialled'"
            f" AND {json('e.detail', 'agent_id')} = ? AND {json('e.detail', 'status')} = 'ANSWER'))"
            " LIMIT 1", (number, number, agent_id, agent_id))
        return row is not None

    async def agent_calls(self, agent_id: str, *, since: float, limit: int = 20) -> list[dict[str, Any]]:
        """The agent's own calls since `since`, newest first: queue calls they answered (a pickup included) and
        calls they placed that reached the customer's dialling (click-to-dial, dialled on their phone), with
        the number, when, talk seconds (from the agent's answer, or the customer's, to the end of their talk),
        how it ended and the agent's disposition. The calls' index on started_at bounds the walk; each call's
        queue visits and events are read by its id."""
        json = self._store.dialect.json_text
        mine = "q.call_id = c.call_id AND q.agent_id = ? AND q.outcome = 'answered'"
        dialled = f"e.call_id = c.call_id AND e.kind = 'customer_dialled' AND {json('e.detail', 'agent_id')} = ?"
        rows = await self._store.fetchall(
            "SELECT c.call_id, c.direction, c.caller, c.did, c.started_at, c.ended_at, c.end_reason, d.disposition,"
            f" (SELECT MAX(q.answered_at) FROM queue_calls q WHERE {mine}) AS agent_answered,"
            f" (SELECT MAX(q.talk_ended_at) FROM queue_calls q WHERE {mine}) AS talk_ended,"
            f" (SELECT MAX(e.at) FROM call_events e WHERE {dialled} AND {json('e.detail', 'status')} = 'ANSWER')"
            " AS customer_answered"
            " FROM calls c LEFT JOIN dispositions d ON d.call_id = c.call_id"
            f" WHERE c.started_at >= ? AND (EXISTS (SELECT 1 FROM queue_calls q WHERE {mine})"
            f" OR (c.direction = 'outbound' AND EXISTS (SELECT 1 FROM call_events e WHERE {dialled})))"
            " ORDER BY c.started_at DESC LIMIT ?",
            (agent_id, agent_id, agent_id, since, agent_id, agent_id, limit))
        calls = []
        for row in rows:
            inbound = row["direction"] == "inbound"
            talk_from = row["agent_answered"] if inbound else row["customer_answered"]
            talk_to = (row["talk_ended"] if inbound else None) or row["ended_at"]
            calls.append({"call_id": row["call_id"], "direction": row["direction"],
                          "number": row["caller"] if inbound else row["did"], "started_at": row["started_at"],
                          "ended_at": row["ended_at"], "answered": talk_from is not None,
                          "talk_seconds": round(talk_to - talk_from, 1) if talk_from and talk_to else None,
                          "end_reason": row["end_reason"], "disposition": row["disposition"]})
        return calls

    def disposition(self, call_id: str, *, agent_id: str | None, disposition: str, notes: str) -> None:
        self._store.write(
            "INSERT INTO dispositions (call_id, at, agent_id, disposition, notes) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(call_id) DO UPDATE SET at = excluded.at, agent_id = excluded.agent_id,"
            " disposition = excluded.disposition, notes = excluded.notes",
            (call_id, self._now(), agent_id, disposition, notes))
        self.event(call_id, "disposition", agent_id=agent_id, disposition=disposition)

    async def agents_of(self, call_id: str) -> set[str]:
        """Agents who answered the call (any of its queue visits, a campaign's customer) or placed it
        (click-to-dial)."""
        rows = await self._store.fetchall(
            "SELECT agent_id FROM queue_calls WHERE call_id = ? AND agent_id IS NOT NULL"
            f" UNION SELECT {self._store.dialect.json_text('detail', 'agent_id')} FROM call_events"
            " WHERE call_id = ? AND kind IN ('customer_dialled', 'agent_answered')", (call_id, call_id))
        return {row["agent_id"] for row in rows if row["agent_id"]}


# The calls with a number: inbound from it, outbound to it (two parameters: the number twice).
_WITH_NUMBER = "((c.direction = 'inbound' AND c.caller = ?) OR (c.direction = 'outbound' AND c.did = ?))"
