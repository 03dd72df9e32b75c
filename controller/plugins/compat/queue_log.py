"""Asterisk's queue_log, written from the CTI events: the lines app_queue would have logged.

Reporting tools (QueueMetrics, Asternic, home-made ones) read app_queue's `queue_log`, a file of
lines `time|callid|queuename|agent|event|data1|data2|...`, or the realtime table with the same
columns (data split into data1..data5). `QueueLogFormatter` is pure: it follows the events of the
event bus and returns the lines, with the fields in the positions Asterisk 22's app_queue.c gives
them (checked against a real app_queue in tests/e2e/test_queue_log.py):

    ENTERQUEUE|url|callerid|position          RINGNOANSWER|ringtime_ms
    CONNECT|holdtime|agentchannel|ringtime     RINGCANCELED|ringtime_ms
    COMPLETECALLER|holdtime|calltime|origpos   COMPLETEAGENT|holdtime|calltime|origpos
    ABANDON|position|origposition|waittime     EXITWITHTIMEOUT|position|origposition|waittime
    EXITEMPTY|position|origposition|waittime   BLINDTRANSFER|exten|context|holdtime|calltime|origpos
    ATTENDEDTRANSFER|BRIDGE|target|holdtime|calltime|origpos
    ADDMEMBER|PAUSED-or-empty   REMOVEMEMBER|   PAUSE|reason   UNPAUSE|reason

`callid` is our call id (app_queue: the caller channel's uniqueid); agents are named with a
template (default `Agent/{id}`, what QueueMetrics expects). Times in seconds are whole seconds,
as app_queue writes them; waits are per visit of a queue (an overflowed call starts again at
0 in the next queue, as with a second `Queue()` in a dialplan).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from controller.plugins.cti.services import CtiEvent

#: Our not-ready reason for a ring-no-answer, and what app_queue's autopause writes for it.
RONA_REASON = "no_answer"
AUTOPAUSE_REASON = "Auto-Pause"


@dataclass(frozen=True, slots=True)
class QueueLogEntry:
    at: float
    callid: str
    queuename: str
    agent: str
    event: str
    data: tuple[str, ...]

    def line(self) -> str:
        """The file line, as Asterisk's logger writes it (`%ld|%s|%s|%s|%s|` + data)."""
        return "|".join((str(int(self.at)), self.callid, self.queuename, self.agent, self.event, *self.data))

    def columns(self) -> tuple[str, str, str, str, str, str, str, str, str, str]:
        """The realtime table's columns: time, callid, queuename, agent, event, data1..data5."""
        data = [*self.data[:4], "|".join(self.data[4:])] if len(self.data) > 5 else [*self.data]
        data += [""] * (5 - len(data))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at)) + f".{int(self.at % 1 * 1e6):06d}"
        return (stamp, self.callid, self.queuename, self.agent, self.event,
                data[0], data[1], data[2], data[3], data[4])


def _clean(value: object) -> str:
    """A field may not contain the separator or a line break (a caller id could)."""
    return str(value).replace("|", "_").replace("\n", " ").replace("\r", " ")


@dataclass
class _Visit:
    """A call's stay in one queue, as far as the queue_log needs it."""

    queue: str
    entered: float
    orig_position: int
    position: int
    ringing: dict[str, float] = field(default_factory=dict)  # agent id -> ringing since
    released: list[tuple[str, int]] = field(default_factory=list)  # rings stopped early: (agent, ms)
    agent: str | None = None
    connected_at: float | None = None
    wait: float = 0.0


class QueueLogFormatter:
    """Feed every CTI event to `feed()`; it returns the queue_log entries that event makes."""

    def __init__(self, agent_queues: Mapping[str, Sequence[str]], *, agent_format: str = "Agent/{id}",
                 log_caller_id: bool = True) -> None:
        self.agent_queues = {agent: list(queues) for agent, queues in agent_queues.items()}
        self.agent_format = agent_format
        self.log_caller_id = log_caller_id
        self._callers: dict[str, str] = {}
        self._visits: dict[str, _Visit] = {}
        self._ringing_call: dict[str, str] = {}  # agent id -> the call ringing them

    def agent_name(self, agent_id: str) -> str:
        return self.agent_format.format(id=agent_id)

    def feed(self, event: CtiEvent) -> list[QueueLogEntry]:
        handler = getattr(self, "_on_" + event.type.replace(".", "_"), None)
        if handler is None:
            return []
        entries: list[QueueLogEntry] = handler(event)
        return entries

    # -- calls -------------------------------------------------------------------------------------

    def _entry(self, event: CtiEvent, queue: str, agent: str, name: str, *data: object) -> QueueLogEntry:
        return QueueLogEntry(event.at, event.call_id or "NONE", queue, agent, name, tuple(_clean(d) for d in data))

    def _on_call_offered(self, event: CtiEvent) -> list[QueueLogEntry]:
        if event.call_id and self.log_caller_id:
            self._callers[event.call_id] = str(event.data.get("caller") or "")
        return []

    def _on_call_queued(self, event: CtiEvent) -> list[QueueLogEntry]:
        if event.call_id is None or event.queue is None:
            return []
        position = int(event.data.get("position") or 1)
        self._visits[event.call_id] = _Visit(event.queue, event.at, position, position)
        return [self._entry(event, event.queue, "NONE", "ENTERQUEUE", "", self._callers.get(event.call_id, ""),
                            position)]

    def _visit(self, event: CtiEvent) -> _Visit | None:
        return self._visits.get(event.call_id) if event.call_id else None

    def _on_call_position_changed(self, event: CtiEvent) -> list[QueueLogEntry]:
        visit = self._visit(event)
        if visit is not None:
            visit.position = int(event.data.get("position") or visit.position)
        return []

    def _on_call_ringing(self, event: CtiEvent) -> list[QueueLogEntry]:
        visit = self._visit(event)
        if visit is not None and event.agent_id and visit.connected_at is None and event.queue == visit.queue:
            visit.ringing[event.agent_id] = event.at
            self._ringing_call[event.agent_id] = event.call_id or ""
        return []

    def _on_call_answered(self, event: CtiEvent) -> list[QueueLogEntry]:
        visit = self._visit(event)
        if visit is None or event.agent_id is None:
            return []
        rang_since = visit.ringing.pop(event.agent_id, event.at)
        self._ringing_call.pop(event.agent_id, None)
        visit.released.clear()  # colleagues rung at the same time: app_queue logs nothing for them
        visit.agent, visit.connected_at = event.agent_id, event.at
        visit.wait = event.at - visit.entered  # this visit's wait, as app_queue counts it (not one carried over)
        return [self._entry(event, visit.queue, self.agent_name(event.agent_id), "CONNECT", round(visit.wait),
                            event.data.get("agent_channel", ""), round(event.at - rang_since))]

    def _on_call_completed(self, event: CtiEvent) -> list[QueueLogEntry]:
        visit = self._visit(event)
        if visit is None or visit.connected_at is None or visit.agent is None or visit.agent != event.agent_id:
            return []
        self._visits.pop(event.call_id or "", None)
        name = "COMPLETECALLER" if event.data.get("ended_by") == "caller" else "COMPLETEAGENT"
        return [self._entry(event, visit.queue, self.agent_name(visit.agent), name, round(visit.wait),
                            round(event.at - visit.connected_at), visit.orig_position)]

    def _on_call_transferred(self, event: CtiEvent) -> list[QueueLogEntry]:
        visit = self._visit(event)
        if visit is None or visit.connected_at is None or visit.agent is None:
            return []
        self._visits.pop(event.call_id or "", None)
        kind, _, value = str(event.data.get("target", "")).partition(":")
        times = (round(visit.wait), round(event.at - visit.connected_at), visit.orig_position)
        agent = self.agent_name(visit.agent)
        if event.data.get("kind") == "attended":
            return [self._entry(event, visit.queue, agent, "ATTENDEDTRANSFER", "BRIDGE", value or kind, *times)]
        return [self._entry(event, visit.queue, agent, "BLINDTRANSFER", value or kind, kind if value else "",
                            *times)]

    def _left(self, event: CtiEvent, name: str) -> list[QueueLogEntry]:
        visit = self._visit(event)
        if visit is None:
            return []
        self._visits.pop(event.call_id or "", None)
        for agent_id in visit.ringing:
            self._ringing_call.pop(agent_id, None)
        entries = []
        if name == "ABANDON":  # the caller hung up while phones rang: app_queue logs each ring cancelled
            released = visit.released + [(agent, round((event.at - since) * 1000))
                                         for agent, since in visit.ringing.items()]
            entries = [self._entry(event, visit.queue, self.agent_name(agent), "RINGCANCELED", ms)
                       for agent, ms in released]
        wait = round(event.at - visit.entered)
        entries.append(self._entry(event, visit.queue, "NONE", name, visit.position, visit.orig_position, wait))
        return entries

    def _on_call_abandoned(self, event: CtiEvent) -> list[QueueLogEntry]:
        return self._left(event, "ABANDON")

    def _on_call_overflowed(self, event: CtiEvent) -> list[QueueLogEntry]:
        return self._left(event, "EXITEMPTY" if event.data.get("reason") == "no_agents" else "EXITWITHTIMEOUT")

    def _on_call_ended(self, event: CtiEvent) -> list[QueueLogEntry]:
        if event.call_id:
            self._callers.pop(event.call_id, None)
            visit = self._visits.pop(event.call_id, None)
            for agent_id in visit.ringing if visit else ():
                self._ringing_call.pop(agent_id, None)
        return []

    # -- agents ------------------------------------------------------------------------------------

    def _on_agent_state_changed(self, event: CtiEvent) -> list[QueueLogEntry]:
        agent_id = event.agent_id
        if agent_id is None:
            return []
        state, previous = event.data.get("state"), event.data.get("previous")
        reason = event.data.get("reason") or ""
        entries: list[QueueLogEntry] = []
        if previous == "ringing" and state != "talking":  # the answer itself comes as call.answered
            entries += self._ring_stopped(event, agent_id, rona=state == "not_ready" and reason == RONA_REASON)
        if previous == state and reason == "":
            return entries
        if previous in (None, "logged_out") and state != "logged_out":
            name, data = "ADDMEMBER", "PAUSED" if state == "not_ready" else ""
        elif state == "logged_out":
            name, data = "REMOVEMEMBER", ""
        elif state == "not_ready":
            name, data = "PAUSE", AUTOPAUSE_REASON if reason == RONA_REASON and previous == "ringing" else reason
        elif previous == "not_ready" and state == "ready":
            name, data = "UNPAUSE", ""
        else:
            return entries  # ringing, talking, wrap-up, ready again: app_queue logs none of these
        return entries + [QueueLogEntry(event.at, "NONE", queue, self.agent_name(agent_id), name, (_clean(data),))
                          for queue in self.agent_queues.get(agent_id, [])]

    def _ring_stopped(self, event: CtiEvent, agent_id: str, *, rona: bool) -> list[QueueLogEntry]:
        call_id = self._ringing_call.pop(agent_id, None)
        visit = self._visits.get(call_id) if call_id else None
        if visit is None or agent_id not in visit.ringing:
            return []
        since = visit.ringing.pop(agent_id)
        ms = round((event.at - since) * 1000)
        if rona:
            return [QueueLogEntry(event.at, call_id or "NONE", visit.queue, self.agent_name(agent_id),
                                  "RINGNOANSWER", (str(ms),))]
        visit.released.append((agent_id, ms))  # a RINGCANCELED if the caller is hanging up
        return []

