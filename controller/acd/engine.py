"""The ACD routing engine: which agent gets which call, and when a call overflows. No I/O.

Commands (agent login/ready/…, call enqueue/answered/…) change the state and return the
decisions that follow, in order; `tick()` returns what the clock made due (ring timeouts, end of
wrap-up, announcements, maximum wait). The adapter carries the decisions out and reports back.

Routing:
- an agent is eligible for a call when logged in, ready, not ringing for another call, serving the
  call's queue and having every skill the queue and the call require, at or above the level;
- a queue's calls are served by effective priority (priority + one level per
  `priority_aging_seconds` waited: VIPs first, nobody starved), then by arrival;
- an agent becoming ready takes the most urgent eligible call across all the queues it serves;
- a call is given to an agent of the lowest penalty tier, chosen by the queue's strategy;
- a queue's escalation steps (`controller.acd.routing`) widen who qualifies as a call waits: the
  engine moves the call to each step at its time (a timer) and routes it again.

Indexes keep a decision cheap with thousands of agents and calls: per queue, the ready agents;
per queue and base priority, the waiting calls in arrival order (only the first eligible call of
each such bucket can be the most urgent); one heap of timers with lazy invalidation.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from controller import jsontext
from controller.acd import estimates, routing
from controller.acd.model import (
    DEFAULT_NOT_READY_REASONS,
    PHONE_UNREACHABLE,
    AgentSettings,
    AgentStanding,
    AgentState,
    AgentStateChanged,
    AgentView,
    Announce,
    CallLeft,
    CancelOffer,
    Decision,
    Offer,
    Overflow,
    QueueSettings,
    QueueStats,
    WaitingCallView,
)
from controller.clock import Clock

__all__ = ["AcdEngine", "AcdError", "UnsavedChanges", "waiting_refusal"]

LOGGED_IN_STATES = {"ready", "not_ready", "ringing", "talking", "on_hold", "acw"}


def waiting_refusal(queue: str, waiting: int) -> str:
    """Why a queue with callers in it (waiting or ringing an agent) cannot be removed."""
    callers = "1 caller is" if waiting == 1 else f"{waiting} callers are"
    return f"{callers} waiting in queue {queue}: move them or wait until it is empty"


class OnCall(NamedTuple):
    """A call an agent is on that a new process resumes (see `AcdEngine.restore`)."""

    call_id: str
    queue: str | None
    talk_started: float
    on_hold: bool = False


class UnsavedChanges(NamedTuple):
    """What changed since the store last took the engine's state (`AcdEngine.take_unsaved`), encoded as the
    store keeps it: per agent their part of `snapshot()["agents"]` as JSON (None: nothing to keep any more,
    removed), per queue what to do with its talk and ring durations (None: the queue was removed)."""

    agents: dict[str, str | None]
    queues: dict[str, tuple[estimates.DurationChanges, estimates.DurationChanges] | None]


class AcdError(Exception):
    """A command the engine refuses (unknown agent, queue or reason; a state that does not allow it)."""


@dataclass(slots=True)
class _Agent:
    settings: AgentSettings
    state: AgentState = "logged_out"
    reason: str | None = None
    since: float | None = None
    endpoint: str = ""
    logged_in_at: float | None = None
    idle_since: float | None = None
    calls_answered: int = 0
    offered_call: str | None = None
    current_call: str | None = None
    current_queue: str | None = None
    talk_started: float | None = None
    timer_token: int = 0  # ACW end
    acw_until: float | None = None  # when the current wrap-up ends (kept in the snapshot)
    resume_reason: str | None = None  # not-ready reason to go back to after an outbound call
    outbound_wrapup: float = 0.0  # ACW after the agent's current call when it has no queue (outbound; queue removed)
    removed: bool = False  # removed from the configuration: forgotten once their call and its ACW are over
    online_before: float = 0.0  # online seconds of earlier sessions
    seconds_by_state: dict[str, float] = field(default_factory=dict)
    answers: routing.AnswerCounter = field(default_factory=routing.AnswerCounter)  # for fewest_calls


@dataclass(slots=True)
class _Call:
    call_id: str
    queue: str
    priority: int
    skills: Mapping[str, int]
    data: Mapping[str, Any]
    enqueued_at: float  # clock time the wait counts from (earlier when it had already waited)
    seq: int
    ringing: dict[str, int] = field(default_factory=dict)  # agent id -> offer token
    timer_token: int = 0  # announcements
    announce_at: float | None = None  # clock time of the next position announcement
    step: int = -1  # the queue's escalation step in force (-1: none)
    offered_at: float | None = None  # when its latest offer began (the ring measured for wait estimates)


@dataclass(slots=True)
class _Queue:
    settings: QueueSettings
    agent_order: list[str] = field(default_factory=list)  # for round robin
    last_offered: int = -1
    ready: set[str] = field(default_factory=set)
    logged_in: set[str] = field(default_factory=set)
    buckets: dict[int, dict[str, _Call]] = field(default_factory=dict)  # base priority -> calls by arrival
    talks: estimates.Durations = field(default_factory=estimates.Durations)  # for wait estimates
    rings: estimates.Durations = field(default_factory=estimates.Durations)  # offer to answer, ditto
    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    overflowed: int = 0

    def calls(self) -> Iterable[_Call]:
        for bucket in self.buckets.values():
            yield from bucket.values()

    def count_left(self, outcome: str, wait: float) -> None:
        """A call left the queue: answered (within the service level or not), abandoned or overflowed."""
        if outcome == "answered":
            self.answered += 1
            if wait <= self.settings.service_level_seconds:
                self.answered_within_sl += 1
        elif outcome == "abandoned":
            self.abandoned += 1
        else:
            self.overflowed += 1


class AcdEngine:
    def __init__(self, queues: Iterable[QueueSettings], agents: Iterable[AgentSettings], clock: Clock,
                 not_ready_reasons: Sequence[str] = DEFAULT_NOT_READY_REASONS) -> None:
        self.clock = clock
        self.not_ready_reasons = tuple(not_ready_reasons)
        # Whether a phone can be rung now (several Asterisk servers: false while its node is down). An agent
        # who would become ready on an unreachable phone is not ready (`PHONE_UNREACHABLE`) instead.
        self.phone_reachable: Callable[[str], bool] = lambda _endpoint: True
        self._queues = {q.name: _Queue(q) for q in queues}
        self._agents: dict[str, _Agent] = {}
        self._calls: dict[str, _Call] = {}
        self._timers: list[tuple[float, int, str, str, str, int]] = []  # at, seq, kind, key, agent, token
        self._seq = itertools.count()
        self._tokens = itertools.count(1)
        # Changed since the store last took them (`take_unsaved`): only these are encoded and written at the
        # next commit, not every agent (README "Benchmarks", third round).
        self._unsaved_agents: set[str] = set()
        self._unsaved_queues: set[str] = set()
        for settings in agents:
            self.upsert_agent(settings)

    # -- live configuration: queues, agents and not-ready reasons changed while calls go on ------------

    def upsert_queue(self, settings: QueueSettings) -> list[Decision]:
        """Add a queue or change its settings. The next decision uses them; what is already scheduled
        keeps its time (an agent's running ACW, a waiting call's maximum wait, a ringing phone's
        timeout, the next position announcement). Waiting calls are routed again at once (their
        required skills may have changed), and they overflow when the queue now says `no_agents:
        overflow` and nobody serving it is logged in."""
        out: list[Decision] = []
        queue = self._queues.get(settings.name)
        if queue is None:
            self._queues[settings.name] = _Queue(settings)
            return out
        queue.settings = settings
        self._overflow_if_unattended(queue, out)
        out.extend(self.route_waiting())
        return out

    def remove_queue(self, name: str) -> list[Decision]:
        """Remove a queue nobody waits in and no agent serves. An agent talking on one of its calls keeps
        the queue's wrap-up for that call."""
        queue = self._queue(name)
        waiting = sum(1 for _ in queue.calls())
        if waiting:
            raise AcdError(waiting_refusal(name, waiting))
        serving = sorted(a.settings.id for a in self._agents.values() if name in a.settings.queues and not a.removed)
        if serving:
            raise AcdError(f"queue {name} is still served by agent{'s' if len(serving) > 1 else ''} "
                           f"{', '.join(serving)}")
        out: list[Decision] = []
        for agent in self._agents.values():
            if name in agent.settings.queues:  # removed, finishing a call: they leave the queue now
                self._leave_queue(agent, queue, out)
                queues = {q: penalty for q, penalty in agent.settings.queues.items() if q != name}
                agent.settings = dataclasses.replace(agent.settings, queues=queues)
            if agent.current_queue == name:
                agent.current_queue, agent.outbound_wrapup = None, queue.settings.wrapup_seconds
                self._unsaved_agents.add(agent.settings.id)
        del self._queues[name]
        self._unsaved_queues.add(name)
        return out

    def upsert_agent(self, settings: AgentSettings) -> list[Decision]:
        """Add an agent or change their settings (name, number, phone, skills, queues and penalties,
        enabled). The next routing decision uses them: a ready agent takes a waiting call they now
        qualify for at once. A phone chosen at login stays; the default one follows the change.

        Disabling an agent logged in: ready or not ready, they are logged out at once; ringing, talking,
        on hold or in ACW, they finish that call and its ACW (no new offers meanwhile), then are logged
        out. A disabled agent cannot log in. Enabling again (or a new `upsert_agent` of a removed agent
        still on a call) cancels that."""
        unknown = [q for q in settings.queues if q not in self._queues]
        if unknown:
            raise AcdError(f"agent {settings.id}: unknown queue {unknown[0]!r}")
        out: list[Decision] = []
        agent = self._agents.get(settings.id)
        if agent is None:
            self._agents[settings.id] = _Agent(settings, endpoint=settings.endpoint)
            for name in settings.queues:
                self._queues[name].agent_order.append(settings.id)
            return out
        old = agent.settings
        agent.settings, agent.removed = settings, False
        if agent.endpoint == old.endpoint or agent.state == "logged_out":
            agent.endpoint = settings.endpoint
            self._unsaved_agents.add(settings.id)
        for name in [q for q in old.queues if q not in settings.queues]:
            left = self._queues.get(name)
            if left is not None:
                self._leave_queue(agent, left, out)
        for name in [q for q in settings.queues if q not in old.queues]:
            joined = self._queues[name]
            joined.agent_order.append(settings.id)
            if agent.state != "logged_out":
                joined.logged_in.add(settings.id)
            if agent.state == "ready":
                joined.ready.add(settings.id)
        if self._leaving(agent):
            if agent.state in ("ready", "not_ready"):
                self._sign_out(agent, out)
        elif agent.state == "ready" and agent.offered_call is None:
            self._route_agent(agent, out)
        return out

    def remove_agent(self, agent_id: str) -> list[Decision]:
        """Remove an agent: logged out (or ready, or not ready) they are forgotten at once; ringing,
        talking, on hold or in ACW they finish that call and its ACW first (no new offers meanwhile)."""
        agent = self._agent(agent_id)
        agent.removed = True
        out: list[Decision] = []
        if agent.state in ("logged_out", "ready", "not_ready"):
            self._sign_out(agent, out)
        return out

    def set_not_ready_reasons(self, reasons: Sequence[str]) -> None:
        """The reasons agents may give from now on; an agent already not ready keeps theirs."""
        self.not_ready_reasons = tuple(reasons)

    def leaving(self, agent_id: str) -> bool:
        """Whether the agent is disabled or removed (finishing a call first when still logged in)."""
        return self._leaving(self._agent(agent_id))

    # -- agent commands ------------------------------------------------------------------------------

    def login(self, agent_id: str, endpoint: str | None = None, *, ready: bool = True) -> list[Decision]:
        agent = self._agent(agent_id)
        if agent.state != "logged_out":
            raise AcdError(f"agent {agent_id} is already logged in ({agent.state})")
        if self._leaving(agent):
            raise AcdError(f"agent {agent_id} is disabled")
        if endpoint is not None and not endpoint.strip():
            raise AcdError("the phone (endpoint) must not be empty")
        out: list[Decision] = []
        now = self.clock.now()
        agent.endpoint = endpoint or agent.settings.endpoint
        agent.logged_in_at = now
        agent.calls_answered = 0
        for queue in agent.settings.queues:
            self._queues[queue].logged_in.add(agent_id)
        if ready:
            self._become_ready(agent, out)
        else:
            self._set_state(agent, "not_ready", "login", out)
        return out

    def ready(self, agent_id: str) -> list[Decision]:
        agent = self._agent(agent_id)
        if agent.state not in ("not_ready", "acw", "ready"):
            raise AcdError(f"agent {agent_id} cannot become ready while {agent.state}")
        out: list[Decision] = []
        if agent.state != "ready":
            self._become_ready(agent, out)
        return out

    def not_ready(self, agent_id: str, reason: str) -> list[Decision]:
        agent = self._agent(agent_id)
        if reason not in self.not_ready_reasons:
            raise AcdError(f"unknown not-ready reason {reason!r} (one of: {', '.join(self.not_ready_reasons)})")
        if agent.state not in ("ready", "acw", "not_ready"):
            raise AcdError(f"agent {agent_id} cannot go not ready while {agent.state}")
        out: list[Decision] = []
        self._set_state(agent, "not_ready", reason, out)
        return out

    def logout(self, agent_id: str) -> list[Decision]:
        agent = self._agent(agent_id)
        if agent.state == "logged_out":
            raise AcdError(f"agent {agent_id} is not logged in")
        if agent.state in ("ringing", "talking", "on_hold"):
            raise AcdError(f"agent {agent_id} cannot log out while {agent.state}")
        out: list[Decision] = []
        self._sign_out(agent, out)
        return out

    def end_acw(self, agent_id: str) -> list[Decision]:
        agent = self._agent(agent_id)
        if agent.state != "acw":
            raise AcdError(f"agent {agent_id} is not in after-call work ({agent.state})")
        out: list[Decision] = []
        self._become_ready(agent, out)
        return out

    def hold(self, agent_id: str) -> list[Decision]:
        agent = self._agent(agent_id)
        if agent.state != "talking":
            raise AcdError(f"agent {agent_id} has no call to hold ({agent.state})")
        out: list[Decision] = []
        self._set_state(agent, "on_hold", None, out)
        return out

    def resume(self, agent_id: str) -> list[Decision]:
        agent = self._agent(agent_id)
        if agent.state != "on_hold":
            raise AcdError(f"agent {agent_id} has no call on hold ({agent.state})")
        out: list[Decision] = []
        self._set_state(agent, "talking", None, out)
        return out

    # -- call events -----------------------------------------------------------------------------------

    def enqueue(self, call_id: str, queue: str, *, priority: int = 0, skills: Mapping[str, int] | None = None,
                data: Mapping[str, Any] | None = None, waited: float = 0.0,
                enqueued_at: float | None = None, route: bool = True,
                announce_from: float | None = None) -> list[Decision]:
        """Queue a call. Its wait counts from `enqueued_at` (clock time) when given, else from `waited`
        seconds ago: a caller taken over after a restart keeps their place among the callers who
        arrived meanwhile (first come, first served), and their maximum wait counts from then too.
        `route=False` only queues it (the resume queues every waiting caller first, then
        `route_waiting()` offers them in order). `announce_from`: when the caller's next position
        announcement was due (`next_announcement()` before a restart): they go on every
        `announce_interval` from then, rather than one at once."""
        if queue not in self._queues:
            raise AcdError(f"unknown queue {queue!r}")
        if call_id in self._calls:
            raise AcdError(f"call {call_id} is already queued")
        q = self._queues[queue]
        now = self.clock.now()
        since = min(now, enqueued_at) if enqueued_at is not None else now - max(0.0, waited)
        waited = now - since
        call = _Call(call_id, queue, int(priority), dict(skills or {}), dict(data or {}), since, next(self._seq))
        q.offered += 1
        out: list[Decision] = []
        self._calls[call_id] = call
        self._into_bucket(q, call)
        if not q.logged_in and q.settings.no_agents == "overflow":
            self._overflow(call, "no_agents", out)
            return out
        self._schedule(now + max(0.0, q.settings.max_wait - max(0.0, waited)), "max_wait", call_id)
        if q.settings.escalation:
            self._escalate_to(call, routing.step_at(q.settings.escalation, waited), out)
            if call_id not in self._calls:
                return out  # a step already passed sent it to its overflow target
        if route:
            self._route_call(call, out)
        if not call.ringing and call_id in self._calls:
            interval = q.settings.announce_interval
            if announce_from is not None and interval > 0:
                behind = max(0.0, now - announce_from)
                self._schedule_announcement(call, announce_from + math.ceil(behind / interval) * interval)
            else:
                self._announce(call, out)
        return out

    def next_announcement(self, call_id: str) -> float | None:
        """When the queued call's next position announcement is due (None: none planned)."""
        call = self._calls.get(call_id)
        return call.announce_at if call is not None else None

    def route_waiting(self) -> list[Decision]:
        """Offer waiting calls to the ready agents (longest idle first), each agent the most urgent call
        it can take: after calls were queued with `route=False`."""
        out: list[Decision] = []
        ready = [a for a in self._agents.values() if a.state == "ready" and a.offered_call is None]
        for agent in sorted(ready, key=lambda a: (a.idle_since or 0.0, a.settings.id)):
            if agent.state == "ready" and agent.offered_call is None:
                self._route_agent(agent, out)
        return out

    def abandon(self, call_id: str) -> list[Decision]:
        call = self._call(call_id)
        out: list[Decision] = []
        for agent_id in list(call.ringing):
            out.append(CancelOffer(call_id, agent_id, "abandoned"))
            self._release_offer(self._agents[agent_id], out)
        call.ringing.clear()
        self._leave(call, "abandoned", None, out)
        return out

    def move(self, call_id: str, queue: str) -> list[Decision]:
        """A supervisor moves a waiting call to another queue: it leaves this one as overflowed (reason
        "moved", any ringing stopped) and the caller's visit goes on in `queue`, keeping their wait."""
        call = self._call(call_id)
        self._queue(queue)
        if queue == call.queue:
            raise AcdError(f"call {call_id} is already in queue {queue!r}")
        out: list[Decision] = []
        for agent_id in list(call.ringing):
            out.append(CancelOffer(call_id, agent_id, "moved"))
            self._release_offer(self._agents[agent_id], out)
        call.ringing.clear()
        out.append(Overflow(call_id, call.queue, f"queue:{queue}", "moved"))
        self._leave(call, "overflowed", None, out)
        return out

    def answered(self, call_id: str, agent_id: str) -> list[Decision]:
        call = self._call(call_id)
        agent = self._agent(agent_id)
        if agent_id not in call.ringing:
            raise AcdError(f"call {call_id} is not ringing agent {agent_id}")
        out: list[Decision] = []
        for other in [a for a in call.ringing if a != agent_id]:
            out.append(CancelOffer(call_id, other, "answered_elsewhere"))
            self._release_offer(self._agents[other], out)
        call.ringing.clear()
        agent.offered_call = None
        agent.current_call = call_id
        agent.current_queue = call.queue
        agent.calls_answered += 1
        agent.talk_started = self.clock.now()
        self._count_answer(agent)
        if call.offered_at is not None:
            self._queues[call.queue].rings.add(agent.talk_started, agent.talk_started - call.offered_at)
            self._unsaved_queues.add(call.queue)
        self._set_state(agent, "talking", None, out)
        self._leave(call, "answered", agent_id, out)
        return out

    def pickup(self, call_id: str, agent_id: str) -> list[Decision]:
        """抢接: an agent takes a waiting call, ringing on a colleague's phone or not yet offered.

        The picker may be ready, not ready (DND only stops offers, not their own choice) or in ACW,
        and need not serve the call's queue; the colleague's phone stops ringing and they are ready
        again (no RONA). The picker's phone rings with the queue's ring timeout.
        """
        call = self._call(call_id)
        agent = self._agent(agent_id)
        if agent_id in call.ringing:
            raise AcdError(f"call {call_id} already rings agent {agent_id}")
        if agent.state not in ("ready", "not_ready", "acw"):
            raise AcdError(f"agent {agent_id} cannot take a call now ({agent.state})")
        if self._leaving(agent):
            raise AcdError(f"agent {agent_id} is disabled: no new calls")
        out: list[Decision] = []
        others = list(call.ringing)
        call.ringing.clear()
        agent.timer_token = next(self._tokens)  # ends a pending ACW
        self._offer(call, agent, out)  # first, so the released colleagues are not offered this call again
        for other in others:
            out.append(CancelOffer(call_id, other, "picked_up"))
            self._release_offer(self._agents[other], out)
        return out

    def resume_offer(self, call_id: str, agent_id: str, *, ring_started: float | None = None) -> list[Decision]:
        """After a restart: the queued call was ringing this agent's phone and that leg is still there
        (ringing, or answered meanwhile). The agent is `ringing` for the call again, no `Offer` (the
        phone rings already), the ring timeout counting from `ring_started`; then `answered`,
        `no_answer` or the ring timeout settle it as usual."""
        call = self._call(call_id)
        agent = self._agent(agent_id)
        if call.ringing:
            raise AcdError(f"call {call_id} already rings an agent")
        if agent.state not in ("ready", "not_ready", "acw") or agent.offered_call is not None:
            raise AcdError(f"agent {agent_id} cannot ring for the call now ({agent.state})")
        out: list[Decision] = []
        token = next(self._tokens)
        call.ringing[agent_id] = token
        agent.offered_call = call_id
        agent.timer_token = next(self._tokens)  # ends a pending ACW
        self._set_state(agent, "ringing", None, out)
        started = self.clock.now() if ring_started is None else min(self.clock.now(), ring_started)
        call.offered_at = started
        self._schedule(started + self._queues[call.queue].settings.ring_timeout, "ring_timeout", call_id, agent_id,
                       token)
        return out

    def no_answer(self, call_id: str, agent_id: str, reason: str = "no_answer") -> list[Decision]:
        call = self._calls.get(call_id)
        if call is None or agent_id not in call.ringing:
            return []  # that offer is over already (ring timeout, answered elsewhere, abandoned)
        out: list[Decision] = []
        self._rona(call, agent_id, out)
        return out

    def outbound(self, agent_id: str, call_id: str, *, wrapup_seconds: float = 0.0) -> list[Decision]:
        """The agent places a call (click-to-dial, or dialled on their phone): busy (talking, reason
        "outbound"), offered nothing, until `call_ended`.

        Allowed when ready, not ready or in ACW (which it ends); afterwards ACW for `wrapup_seconds`
        if any, else a not-ready agent is not ready again with the same reason, anyone else ready.
        """
        agent = self._agent(agent_id)
        if agent.state not in ("ready", "not_ready", "acw"):
            raise AcdError(f"agent {agent_id} cannot place a call now ({agent.state})")
        if self._leaving(agent):
            raise AcdError(f"agent {agent_id} is disabled: no new calls")
        out: list[Decision] = []
        agent.resume_reason = agent.reason if agent.state == "not_ready" else None
        agent.timer_token = next(self._tokens)  # a pending end of ACW no longer applies
        agent.current_call, agent.current_queue, agent.talk_started = call_id, None, self.clock.now()
        agent.outbound_wrapup = max(0.0, wrapup_seconds)
        self._set_state(agent, "talking", "outbound", out)
        return out

    def transfer_offer(self, call_id: str, from_agent_id: str, to_agent_id: str) -> list[Decision]:
        """转接到指定坐席: the call `from_agent_id` talks on rings a named colleague.

        The colleague must be ready and not ringing for another call (a not-ready agent is not
        disturbed). They are `ringing` until `transfer_answered` or `transfer_failed`; the call stays
        the first agent's meanwhile, so a colleague who does not answer gives it back to them.
        """
        source, target = self._agent(from_agent_id), self._agent(to_agent_id)
        if source.current_call != call_id:
            raise AcdError(f"agent {from_agent_id} is not on call {call_id}")
        if to_agent_id == from_agent_id:
            raise AcdError("the call is already with that agent")
        if target.state != "ready" or target.offered_call is not None:
            reason = f", {target.reason}" if target.reason else ""
            raise AcdError(f"agent {to_agent_id} is not ready ({target.state}{reason})")
        out: list[Decision] = []
        target.offered_call = call_id
        self._set_state(target, "ringing", None, out)
        return out

    def transfer_answered(self, call_id: str, from_agent_id: str, to_agent_id: str) -> list[Decision]:
        """The colleague took the transferred call: they talk on it in the first agent's queue (its
        wrap-up applies). The first agent's part ends with their own `call_ended`."""
        source, target = self._agent(from_agent_id), self._agent(to_agent_id)
        if target.offered_call != call_id or target.state != "ringing":
            raise AcdError(f"call {call_id} is not ringing agent {to_agent_id}")
        out: list[Decision] = []
        target.offered_call = None
        target.current_call, target.current_queue = call_id, source.current_queue
        target.calls_answered += 1
        target.talk_started = self.clock.now()
        self._count_answer(target)
        self._set_state(target, "talking", None, out)
        return out

    def transfer_failed(self, call_id: str, to_agent_id: str, reason: str) -> list[Decision]:
        """The transfer ring ended without an answer: `no_answer`/`busy` is RONA (the colleague goes
        not ready "no_answer"); `cancelled` (the caller left first) makes them ready again."""
        target = self._agent(to_agent_id)
        if target.offered_call != call_id:
            return []  # that offer is over already
        out: list[Decision] = []
        if reason == "cancelled":
            self._release_offer(target, out)
        else:
            target.offered_call = None
            self._set_state(target, "not_ready", "no_answer", out)
        return out

    def call_ended(self, agent_id: str) -> list[Decision]:
        agent = self._agent(agent_id)
        if agent.state not in ("talking", "on_hold"):
            raise AcdError(f"agent {agent_id} is not on a call ({agent.state})")
        out: list[Decision] = []
        now = self.clock.now()
        queue = self._queues.get(agent.current_queue or "")
        agent.current_call = None
        agent.current_queue = None
        wrapup = queue.settings.wrapup_seconds if queue else agent.outbound_wrapup
        agent.outbound_wrapup = 0.0
        if queue is not None and agent.talk_started is not None:
            queue.talks.add(now, now - agent.talk_started)
            self._unsaved_queues.add(queue.settings.name)
        agent.talk_started = None
        if wrapup > 0:
            self._set_state(agent, "acw", None, out)
            self._start_acw_timer(agent, now + wrapup)
        elif agent.resume_reason is not None:
            reason, agent.resume_reason = agent.resume_reason, None
            self._set_state(agent, "not_ready", reason, out)
        else:
            self._become_ready(agent, out)
        return out

    # -- the clock ----------------------------------------------------------------------------------

    def tick(self) -> list[Decision]:
        out: list[Decision] = []
        now = self.clock.now()
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, key, agent_id, token = heapq.heappop(self._timers)
            if kind == "ring_timeout":
                call = self._calls.get(key)
                if call is not None and call.ringing.get(agent_id) == token:
                    out.append(CancelOffer(key, agent_id, "ring_timeout"))
                    self._rona(call, agent_id, out)
            elif kind == "acw_end":
                agent = self._agents.get(key)
                if agent is not None and agent.state == "acw" and agent.timer_token == token:
                    self._after_acw(agent, out)
            elif kind == "max_wait":
                call = self._calls.get(key)
                if call is not None:
                    for ringing_agent in list(call.ringing):
                        out.append(CancelOffer(key, ringing_agent, "max_wait"))
                        self._release_offer(self._agents[ringing_agent], out)
                    call.ringing.clear()
                    self._overflow(call, "max_wait", out)
            elif kind == "announce":
                call = self._calls.get(key)
                if call is not None and call.timer_token == token:
                    if call.ringing:
                        self._schedule_announcement(call)
                    else:
                        self._announce(call, out)
            elif kind == "escalate":
                call = self._calls.get(key)
                if call is not None and call.step + 1 == token:
                    self._escalate_to(call, token, out)
                    if call.call_id in self._calls and not call.ringing:
                        self._route_call(call, out)
        return out

    def next_deadline(self) -> float | None:
        while self._timers and not self._timer_live(self._timers[0]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    # -- views -------------------------------------------------------------------------------------

    def agent(self, agent_id: str) -> AgentView:
        agent = self._agent(agent_id)
        now = self.clock.now()
        seconds = dict(agent.seconds_by_state)
        if agent.since is not None and agent.state != "logged_out":
            seconds[agent.state] = seconds.get(agent.state, 0.0) + now - agent.since
        online = agent.online_before + (now - agent.logged_in_at if agent.logged_in_at is not None else 0.0)
        settings = agent.settings
        return AgentView(settings.id, settings.name, settings.number, agent.state, agent.reason, agent.since,
                         agent.endpoint, agent.logged_in_at, agent.idle_since, agent.calls_answered,
                         agent.current_call or agent.offered_call, online, seconds,
                         talk_started=agent.talk_started if agent.current_call else None,
                         acw_until=agent.acw_until if agent.state == "acw" else None)

    def has_queue(self, name: str) -> bool:
        return name in self._queues

    def has_agent(self, agent_id: str) -> bool:
        """Whether the engine knows the agent (a removed one until their call and its ACW are over)."""
        return agent_id in self._agents

    def agents(self) -> list[AgentView]:
        return [self.agent(agent_id) for agent_id in self._agents]

    def standings(self, states: Container[str] | None = None) -> list[AgentStanding]:
        """Every agent's state, since when and call (as `agent()` tells them), without the rest of a view; only the
        agents in `states` when given (the service-standards check reads those that a standard limits, each second:
        hundreds of agents ready or not ready are skipped, not viewed)."""
        return [AgentStanding(agent.settings.id, agent.state, agent.since, agent.current_call or agent.offered_call)
                for agent in self._agents.values() if states is None or agent.state in states]

    def queue_stats(self, queue: str) -> QueueStats:
        q = self._queue(queue)
        now = self.clock.now()
        calls = list(q.calls())
        longest = max((now - c.enqueued_at for c in calls), default=0.0)
        left = q.answered + q.abandoned + q.overflowed
        return QueueStats(queue, len(calls), longest, len(q.logged_in), len(q.ready), q.offered, q.answered,
                          q.answered_within_sl, q.abandoned, q.overflowed,
                          q.answered_within_sl / left if left else None)

    def queues(self) -> list[QueueStats]:
        return [self.queue_stats(name) for name in self._queues]

    def queue_names(self) -> list[str]:
        """The queues' names, in the order `queues()` gives their figures (without computing them)."""
        return list(self._queues)

    def waiting(self, queue: str) -> list[WaitingCallView]:
        q = self._queue(queue)
        now = self.clock.now()
        ordered = sorted(q.calls(), key=lambda c: self._queue_order(c, q, now))
        return [self._view(call, position, q, now) for position, call in enumerate(ordered, 1)]

    def waiting_everywhere(self) -> list[WaitingCallView]:
        """Every queue's calls as `waiting` gives them, queue after queue (in `queues()` order); a queue without
        calls is skipped, not sorted nor viewed (the service-standards check reads them each second)."""
        return [view for name, q in self._queues.items() if q.buckets for view in self.waiting(name)]

    def call(self, call_id: str) -> WaitingCallView | None:
        """The call's view as `waiting` gives it, without sorting the queue nor viewing the other calls: its
        position is one more than the calls before it (3 per call, they were the engine's largest cost with
        hundreds waiting: README "Benchmarks")."""
        call = self._calls.get(call_id)
        if call is None:
            return None
        q = self._queues[call.queue]
        now = self.clock.now()
        order = self._queue_order(call, q, now)
        ahead = sum(1 for other in q.calls() if self._queue_order(other, q, now) < order)
        return self._view(call, ahead + 1, q, now)

    # -- persistence ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything a restarted controller restores (`restore`): each agent's state and the day's figures, and
        each queue's recent talk and ring durations. The store keeps it one row per agent, rewritten only when it
        changed, and one row per duration (`take_unsaved`)."""
        agents = {agent_id: saved for agent_id, agent in self._agents.items()
                  if (saved := self._saved_agent(agent)) is not None}
        queues = {name: {"talks": q.talks.saved(), "rings": q.rings.saved()} for name, q in self._queues.items()
                  if q.talks.ended or q.rings.ended}
        return {"version": 1, "agents": agents, "queues": queues}

    def has_unsaved(self) -> bool:
        """Whether an agent or a queue changed since the store last took the changes (`take_unsaved`)."""
        return bool(self._unsaved_agents or self._unsaved_queues)

    def take_unsaved(self) -> UnsavedChanges:
        """The agents and queues changed since the last call, encoded (see `UnsavedChanges`), and forgotten as
        changed. Called when the store cuts a batch: the batch then holds them (a failed commit keeps its batch
        and tries it again). When the encoding fails they stay changed."""
        agent_ids, queue_names = self._unsaved_agents, self._unsaved_queues
        self._unsaved_agents, self._unsaved_queues = set(), set()
        try:
            agents: dict[str, str | None] = {}
            for agent_id in agent_ids:
                agent = self._agents.get(agent_id)
                saved = self._saved_agent(agent) if agent is not None else None
                agents[agent_id] = None if saved is None else jsontext.dumps(saved)
        except BaseException:
            self.keep_unsaved(agent_ids, queue_names)
            raise
        queues: dict[str, tuple[estimates.DurationChanges, estimates.DurationChanges] | None] = {}
        for name in queue_names:
            q = self._queues.get(name)
            if q is None:  # removed
                queues[name] = None
                continue
            talks, rings = q.talks.take_changes(), q.rings.take_changes()
            if not (q.talks.ended or q.rings.ended):  # nothing recent left: all of its rows go
                queues[name] = None
            elif talks.added or rings.added or talks.forget_before is not None or rings.forget_before is not None:
                queues[name] = (talks, rings)
        return UnsavedChanges(agents, queues)

    def keep_unsaved(self, agent_ids: Iterable[str], queue_names: Iterable[str] = ()) -> None:
        """Count agents and queues as changed again (their changes were taken but not written)."""
        self._unsaved_agents.update(agent_ids)
        self._unsaved_queues.update(queue_names)

    @staticmethod
    def _saved_agent(agent: _Agent) -> dict[str, Any] | None:
        """The agent's part of the snapshot; None when there is nothing to keep (never logged in today)."""
        if agent.state == "logged_out" and not agent.online_before:
            return None
        return {
            "state": agent.state, "reason": agent.reason, "since": agent.since, "endpoint": agent.endpoint,
            "logged_in_at": agent.logged_in_at, "idle_since": agent.idle_since,
            "calls_answered": agent.calls_answered, "online_before": agent.online_before,
            "seconds_by_state": dict(agent.seconds_by_state), "queue": agent.current_queue,
            "acw_until": agent.acw_until if agent.state == "acw" else None,
            "answers": [round(at, 3) for at in agent.answers.times],
        }

    def restore(self, snapshot: Mapping[str, Any], on_calls: Mapping[str, OnCall] | None = None) -> list[Decision]:
        """After a restart: ready/not-ready agents as they were; an agent in ACW until their wrap-up ends (at
        once if it ended during the restart); an agent on a call the new process resumes (`on_calls`: agent
        id -> that call) is still talking (or on hold) on it, with the original talk start; an agent who was
        on another call gets a fresh wrap-up. Agents logged out keep the day's figures (online time, time
        per state). An agent on a resumed call who is no longer configured (removed while talking) finishes
        it as a removed agent does. Every agent and queue saved is written again at the next commit (as this
        process has them: an agent or queue no longer configured is deleted)."""
        out: list[Decision] = []
        self.keep_unsaved(dict(snapshot.get("agents", {})), dict(snapshot.get("queues", {})))
        for name, saved_queue in dict(snapshot.get("queues", {})).items():
            if name in self._queues:
                self._queues[name].talks = estimates.Durations(saved_queue.get("talks", []))
                self._queues[name].rings = estimates.Durations(saved_queue.get("rings", []))
        for agent_id, saved in dict(snapshot.get("agents", {})).items():
            agent = self._agents.get(agent_id)
            if agent is None and agent_id in (on_calls or {}) and saved.get("state") is not None:
                # removed from the configuration while on this call: they finish it (and its ACW), then go
                agent = _Agent(AgentSettings(agent_id, "", "", saved.get("endpoint") or ""), removed=True)
                self._agents[agent_id] = agent
            if agent is None or saved.get("state") is None:
                continue
            agent.answers = routing.AnswerCounter(saved.get("answers", []))
            agent.endpoint = saved.get("endpoint") or agent.settings.endpoint
            agent.idle_since = saved.get("idle_since")
            agent.calls_answered = int(saved.get("calls_answered", 0))
            agent.online_before = float(saved.get("online_before", 0.0))
            agent.seconds_by_state = dict(saved.get("seconds_by_state", {}))
            if saved["state"] == "logged_out":
                agent.since = saved.get("since")
                continue
            agent.logged_in_at = saved.get("logged_in_at") or self.clock.now()
            for queue in agent.settings.queues:
                self._queues[queue].logged_in.add(agent_id)
            state = saved["state"]
            on_call = (on_calls or {}).get(agent_id)
            if on_call is not None:
                self._restore_on_call(agent, on_call, saved)
                continue
            if state in ("ready", "not_ready"):
                agent.state, agent.reason, agent.since = state, saved.get("reason"), saved.get("since")
                if state == "ready":
                    for name in agent.settings.queues:
                        self._queues[name].ready.add(agent_id)
                continue
            if state == "acw" and saved.get("acw_until") is not None:
                agent.state, agent.reason, agent.since = "acw", None, saved.get("since")
                self._start_acw_timer(agent, float(saved["acw_until"]))  # a time already past ends it at the next tick
                continue
            agent.state, agent.since = state, None  # the call's state, for the change's `previous`; no time counted
            last_queue = self._queues.get(saved.get("queue") or "")
            wrapup = last_queue.settings.wrapup_seconds if last_queue else 0.0
            if wrapup > 0:
                self._set_state(agent, "acw", None, out)
                self._start_acw_timer(agent, self.clock.now() + wrapup)
            else:
                self._become_ready(agent, out)
        for agent in list(self._agents.values()):
            if self._leaving(agent) and agent.state in ("ready", "not_ready"):
                self._sign_out(agent, out)  # disabled while no process ran
        return out

    def count_earlier(self, queue: str, left: Iterable[tuple[str, float]]) -> None:
        """Count calls that left the queue before this process (today's, from the store) in its statistics:
        `left` is (outcome, wait seconds) per call. Unknown queues and outcomes are ignored."""
        q = self._queues.get(queue)
        if q is None:
            return
        for outcome, wait in left:
            if outcome in ("answered", "abandoned", "overflowed"):
                q.offered += 1
                q.count_left(outcome, wait)

    def new_day(self) -> None:
        """Midnight: the queues' counters (offered, answered, abandoned, overflowed, service level) start over."""
        for q in self._queues.values():
            q.offered = q.answered = q.answered_within_sl = q.abandoned = q.overflowed = 0

    def _restore_on_call(self, agent: _Agent, on_call: OnCall, saved: Mapping[str, Any]) -> None:
        state: AgentState = "on_hold" if on_call.on_hold else "talking"
        agent.state, agent.reason = state, None
        agent.since = saved.get("since") if saved.get("state") == state else self.clock.now()
        agent.current_call = on_call.call_id
        agent.current_queue = on_call.queue if on_call.queue in self._queues else None
        agent.talk_started = on_call.talk_started

    # -- internals: state ----------------------------------------------------------------------------

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise AcdError(f"unknown agent {agent_id!r}")
        return agent

    def _queue(self, name: str) -> _Queue:
        queue = self._queues.get(name)
        if queue is None:
            raise AcdError(f"unknown queue {name!r}")
        return queue

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            raise AcdError(f"call {call_id} is not queued")
        return call

    def _set_state(self, agent: _Agent, state: AgentState, reason: str | None, out: list[Decision]) -> None:
        if state in ("ready", "not_ready") and self._leaving(agent):
            self._sign_out(agent, out)  # a disabled or removed agent's call and ACW are over: they go
            return
        now = self.clock.now()
        previous = agent.state
        if agent.since is not None and previous != "logged_out":
            agent.seconds_by_state[previous] = agent.seconds_by_state.get(previous, 0.0) + now - agent.since
        agent.state, agent.reason, agent.since = state, reason, now
        self._unsaved_agents.add(agent.settings.id)
        if state in ("ready", "not_ready", "logged_out"):
            agent.resume_reason = None  # the agent's own choice now, not the one before an outbound call
        is_ready = state == "ready"
        for queue in agent.settings.queues:
            ready = self._queues[queue].ready
            if is_ready:
                ready.add(agent.settings.id)
            else:
                ready.discard(agent.settings.id)
        out.append(AgentStateChanged(agent.settings.id, state, reason, previous, now))

    @staticmethod
    def _leaving(agent: _Agent) -> bool:
        return agent.removed or not agent.settings.enabled

    def _sign_out(self, agent: _Agent, out: list[Decision]) -> None:
        """Log the agent out (a removed agent is then forgotten); a queue left without anyone logged in
        overflows its waiting calls when it says so."""
        agent_id = agent.settings.id
        if agent.state != "logged_out":
            now = self.clock.now()
            self._set_state(agent, "logged_out", None, out)
            agent.online_before += now - (agent.logged_in_at or now)
            agent.logged_in_at = None
            for name in agent.settings.queues:
                queue = self._queues[name]
                queue.logged_in.discard(agent_id)
                self._overflow_if_unattended(queue, out)
        if agent.removed:
            for name in list(agent.settings.queues):
                self._leave_queue(agent, self._queues[name], out)
            del self._agents[agent_id]
            self._unsaved_agents.add(agent_id)  # their saved row goes

    def _leave_queue(self, agent: _Agent, queue: _Queue, out: list[Decision]) -> None:
        """The agent no longer serves the queue (the round robin goes on after the same colleague)."""
        agent_id = agent.settings.id
        if agent_id in queue.agent_order:
            order = queue.agent_order
            last = order[queue.last_offered] if 0 <= queue.last_offered < len(order) else None
            position = order.index(agent_id)
            order.remove(agent_id)
            if last == agent_id:
                queue.last_offered = position - 1  # the next one is the colleague after them
            elif last is not None:
                queue.last_offered = order.index(last)
        queue.ready.discard(agent_id)
        if agent_id in queue.logged_in:
            queue.logged_in.discard(agent_id)
            self._overflow_if_unattended(queue, out)

    def _overflow_if_unattended(self, queue: _Queue, out: list[Decision]) -> None:
        if not queue.logged_in and queue.settings.no_agents == "overflow":
            for call in [c for c in queue.calls() if not c.ringing]:
                self._overflow(call, "no_agents", out)

    def _after_acw(self, agent: _Agent, out: list[Decision]) -> None:
        """The end of wrap-up: ready, or not ready again for an agent who placed a call from not ready."""
        if agent.resume_reason is not None:
            self._set_state(agent, "not_ready", agent.resume_reason, out)
        else:
            self._become_ready(agent, out)

    def _start_acw_timer(self, agent: _Agent, until: float) -> None:
        """End the agent's ACW at `until`; a new token makes any earlier ACW timer stale."""
        agent.acw_until = until
        self._unsaved_agents.add(agent.settings.id)
        agent.timer_token = next(self._tokens)
        self._schedule(until, "acw_end", agent.settings.id, token=agent.timer_token)

    def _become_ready(self, agent: _Agent, out: list[Decision]) -> None:
        agent.idle_since = self.clock.now()
        if not self.phone_reachable(agent.endpoint):
            self._set_state(agent, "not_ready", PHONE_UNREACHABLE, out)
            return
        self._set_state(agent, "ready", None, out)
        self._route_agent(agent, out)

    def phones_unreachable(self) -> list[Decision]:
        """Agents whose phones cannot be rung now (their node is down) and who are waiting for calls or
        in after-call work become not ready (`PHONE_UNREACHABLE`); agents on a call end it first."""
        out: list[Decision] = []
        for agent in self._agents.values():
            if agent.state in ("ready", "acw") and not self.phone_reachable(agent.endpoint):
                self._set_state(agent, "not_ready", PHONE_UNREACHABLE, out)
        return out

    def phones_reachable_again(self) -> list[Decision]:
        """Agents made not ready because their phone was unreachable, whose phone can be rung again, are
        ready again (an agent who chose another state meanwhile keeps it)."""
        out: list[Decision] = []
        for agent in self._agents.values():
            if agent.state == "not_ready" and agent.reason == PHONE_UNREACHABLE \
                    and self.phone_reachable(agent.endpoint) and not self._leaving(agent):
                self._become_ready(agent, out)
        return out

    def _release_offer(self, agent: _Agent, out: list[Decision]) -> None:
        """An offer to the agent ended without the call (cancelled, answered elsewhere): ready again."""
        agent.offered_call = None
        if agent.state == "ringing" and not self.phone_reachable(agent.endpoint):
            self._set_state(agent, "not_ready", PHONE_UNREACHABLE, out)
        elif agent.state == "ringing":
            self._set_state(agent, "ready", None, out)
            self._route_agent(agent, out)

    def _rona(self, call: _Call, agent_id: str, out: list[Decision]) -> None:
        """Redirect on no answer: the agent goes not ready; the call is routed again from its place."""
        call.ringing.pop(agent_id, None)
        agent = self._agents[agent_id]
        agent.offered_call = None
        self._set_state(agent, "not_ready", "no_answer", out)
        if not call.ringing:
            self._route_call(call, out)

    def _leave(self, call: _Call, outcome: str, agent_id: str | None, out: list[Decision]) -> None:
        queue = self._queues[call.queue]
        wait = self.clock.now() - call.enqueued_at
        del self._calls[call.call_id]
        bucket = queue.buckets[call.priority]
        del bucket[call.call_id]
        if not bucket:
            del queue.buckets[call.priority]
        queue.count_left(outcome, wait)
        out.append(CallLeft(call.call_id, call.queue, outcome, wait, agent_id))  # type: ignore[arg-type]

    @staticmethod
    def _into_bucket(queue: _Queue, call: _Call) -> None:
        """Add a call to its priority's bucket, kept in arrival order (enqueue time, then sequence):
        a call that waited before (an overflow hop, a restart) goes before later arrivals."""
        bucket = queue.buckets.setdefault(call.priority, {})
        last = next(reversed(bucket.values()), None)
        bucket[call.call_id] = call
        if last is not None and (call.enqueued_at, call.seq) < (last.enqueued_at, last.seq):
            ordered = sorted(bucket.values(), key=lambda c: (c.enqueued_at, c.seq))
            bucket.clear()
            bucket.update((c.call_id, c) for c in ordered)

    def _overflow(self, call: _Call, reason: str, out: list[Decision]) -> None:
        settings = self._queues[call.queue].settings
        out.append(Overflow(call.call_id, call.queue, settings.overflow, reason))  # type: ignore[arg-type]
        self._leave(call, "overflowed", None, out)

    # -- internals: routing ----------------------------------------------------------------------------

    def _eligible(self, agent: _Agent, call: _Call, queue: _Queue) -> bool:
        if agent.state != "ready" or agent.offered_call is not None:
            return False
        steps = queue.settings.escalation
        return routing.qualifies(agent.settings, queue.settings, call.skills, steps[call.step] if call.step >= 0
                                 else None)

    def _queue_order(self, call: _Call, queue: _Queue, now: float) -> tuple[int, float, int]:
        """Where a call stands in its queue: the most urgent first (effective priority), then the earliest."""
        return -self._effective(call, queue, now), call.enqueued_at, call.seq

    def _effective(self, call: _Call, queue: _Queue, now: float) -> int:
        aging = queue.settings.priority_aging_seconds
        return call.priority + (math.floor((now - call.enqueued_at) / aging) if aging > 0 else 0)

    def _route_call(self, call: _Call, out: list[Decision]) -> None:
        """Offer a call that is waiting to the agent(s) the queue's strategy picks, if any is free."""
        queue = self._queues[call.queue]
        agents, name, settings = self._agents, call.queue, queue.settings
        step = settings.escalation[call.step] if call.step >= 0 else None
        # What `_eligible` checks, in one pass over the queue's ready agents that keeps the best tier only (the
        # scan grows with them: no function call per agent); with no step nor skill to meet, all qualify.
        everyone_qualifies = step is None and not settings.skills and not call.skills
        tier: list[_Agent] = []
        best_tier = 0
        for agent_id in queue.ready:
            agent = agents[agent_id]
            if agent.state != "ready" or agent.offered_call is not None or not (
                    everyone_qualifies or routing.qualifies(agent.settings, settings, call.skills, step)):
                continue
            penalty = agent.settings.queues[name]
            if not tier or penalty < best_tier:
                best_tier, tier = penalty, [agent]
            elif penalty == best_tier:
                tier.append(agent)
        if not tier:
            return
        strategy = queue.settings.strategy
        if strategy == "ring_all":
            chosen = sorted(tier, key=lambda a: (a.idle_since or 0.0, a.settings.id))
        elif strategy == "round_robin":
            order = {agent_id: index for index, agent_id in enumerate(queue.agent_order)}
            size = len(queue.agent_order)
            chosen = [min(tier, key=lambda a: (order[a.settings.id] - queue.last_offered - 1) % size)]
        elif strategy == "fewest_calls":
            since = self.clock.now() - queue.settings.fewest_calls_window
            chosen = [min(tier, key=lambda a: (a.answers.count_since(since), a.idle_since or 0.0, a.settings.id))]
        elif strategy == "weighted_idle":
            now = self.clock.now()
            wanted = {**queue.settings.skills, **call.skills}
            chosen = [min(tier, key=lambda a: (
                -routing.weighted_idle_key(a.settings, wanted, now - (a.idle_since or now)),
                a.idle_since or 0.0, a.settings.id))]
        elif strategy == "skills":
            wanted = {**queue.settings.skills, **call.skills}
            chosen = [min(tier, key=lambda a: (-sum(a.settings.skills.get(s, 0) for s in wanted),
                                                a.idle_since or 0.0, a.settings.id))]
        else:
            chosen = [min(tier, key=lambda a: (a.idle_since or 0.0, a.settings.id))]
        for agent in chosen:
            self._offer(call, agent, out)

    def _route_agent(self, agent: _Agent, out: list[Decision]) -> None:
        """A ready agent takes the most urgent eligible call across its queues."""
        now = self.clock.now()
        best: tuple[tuple[int, float, int, int], _Call] | None = None
        for queue_name, penalty in agent.settings.queues.items():
            # Calls still waiting found no eligible ready agent of any tier when they were routed,
            # so the tier order cannot be broken here; the penalty only breaks ties between queues.
            queue = self._queues[queue_name]
            for bucket in queue.buckets.values():
                for call in bucket.values():
                    if call.ringing or not self._eligible(agent, call, queue):
                        continue
                    key = (-self._effective(call, queue, now), call.enqueued_at, penalty, call.seq)
                    if best is None or key < best[0]:
                        best = (key, call)
                    break  # later calls of a bucket are never more urgent than its first eligible one
        if best is None:
            return
        call = best[1]
        if self._queues[call.queue].settings.strategy == "ring_all":
            self._route_call(call, out)
        else:
            self._offer(call, agent, out)

    def _offer(self, call: _Call, agent: _Agent, out: list[Decision]) -> None:
        queue = self._queues[call.queue]
        token = next(self._tokens)
        call.ringing[agent.settings.id] = token
        agent.offered_call = call.call_id
        if queue.settings.strategy == "round_robin" and call.queue in agent.settings.queues:
            # however the call reached the agent (chosen, or taken on becoming ready), the rotation goes on after them
            queue.last_offered = queue.agent_order.index(agent.settings.id)
        self._set_state(agent, "ringing", None, out)
        call.offered_at = self.clock.now()
        ring_timeout = queue.settings.ring_timeout
        out.append(Offer(call.call_id, agent.settings.id, agent.endpoint, call.queue, ring_timeout))
        self._schedule(self.clock.now() + ring_timeout, "ring_timeout", call.call_id, agent.settings.id, token)

    def _announce(self, call: _Call, out: list[Decision]) -> None:
        queue = self._queues[call.queue]
        if queue.settings.announce_interval <= 0:
            return
        now = self.clock.now()
        mine = (-self._effective(call, queue, now), call.enqueued_at, call.seq)
        position = 1 + sum(1 for other in queue.calls() if not other.ringing and other is not call
                           and (-self._effective(other, queue, now), other.enqueued_at, other.seq) < mine)
        out.append(Announce(call.call_id, call.queue, position,
                            self.estimated_wait(call.queue, position, call.call_id)))
        self._schedule_announcement(call)

    def _schedule_announcement(self, call: _Call, at: float | None = None) -> None:
        call.timer_token = next(self._tokens)
        interval = self._queues[call.queue].settings.announce_interval
        call.announce_at = self.clock.now() + interval if at is None else at
        self._schedule(call.announce_at, "announce", call.call_id, token=call.timer_token)

    def _view(self, call: _Call, position: int, queue: _Queue, now: float) -> WaitingCallView:
        return WaitingCallView(call.call_id, call.queue, position, call.priority, self._effective(call, queue, now),
                               now - call.enqueued_at, "ringing" if call.ringing else "waiting",
                               tuple(call.ringing), call.data)

    # -- internals: timers --------------------------------------------------------------------------

    def _schedule(self, at: float, kind: str, key: str, agent_id: str = "", token: int = 0) -> None:
        heapq.heappush(self._timers, (at, next(self._seq), kind, key, agent_id, token))

    def _timer_live(self, timer: tuple[float, int, str, str, str, int]) -> bool:
        _, _, kind, key, agent_id, token = timer
        if kind == "acw_end":
            agent = self._agents.get(key)
            return agent is not None and agent.state == "acw" and agent.timer_token == token
        call = self._calls.get(key)
        if call is None:
            return False
        if kind == "ring_timeout":
            return call.ringing.get(agent_id) == token
        if kind == "announce":
            return call.timer_token == token
        if kind == "escalate":
            return call.step + 1 == token
        return True

    # -- escalation, answer counts and wait estimates (controller.acd.routing, controller.acd.estimates) ------

    def _escalate_to(self, call: _Call, index: int, out: list[Decision]) -> None:
        """Put the call at escalation step `index` and plan the next step; an overflow step sends the
        call to its target (stopping any ring)."""
        steps = self._queues[call.queue].settings.escalation
        call.step = index
        if index >= 0 and steps[index].overflow is not None:
            for ringing_agent in list(call.ringing):
                out.append(CancelOffer(call.call_id, ringing_agent, "escalation"))
                self._release_offer(self._agents[ringing_agent], out)
            call.ringing.clear()
            out.append(Overflow(call.call_id, call.queue, steps[index].overflow, "escalation"))
            self._leave(call, "overflowed", None, out)
            return
        if index + 1 < len(steps):
            self._schedule(call.enqueued_at + steps[index + 1].after, "escalate", call.call_id, token=index + 1)

    def _count_answer(self, agent: _Agent) -> None:
        now = self.clock.now()
        agent.answers.add(now)
        window = max((self._queues[q].settings.fewest_calls_window for q in agent.settings.queues if q in self._queues),
                     default=0.0)
        agent.answers.forget_before(now - window)

    def calls_answered_within(self, agent_id: str, seconds: float) -> int:
        """Calls the agent answered in the last `seconds` (what `fewest_calls` counts), across logins."""
        return self._agent(agent_id).answers.count_since(self.clock.now() - seconds)

    def handle_time(self, queue: str) -> float:
        """The queue's handle time: mean talk time over its estimate window, plus its wrap-up."""
        q = self._queue(queue)
        talk = self._recent_mean(q, q.talks, self.clock.now())
        return (estimates.DEFAULT_TALK_SECONDS if talk is None else talk) + q.settings.wrapup_seconds

    def estimated_wait(self, queue: str, position: int, call_id: str | None = None) -> float | None:
        """Seconds the caller at `position` of the queue should still wait (see `controller.acd.estimates`);
        None when no agent serving the queue is available (logged in and not "not ready"). With `call_id`,
        only the agents who qualify for that call count, each from when its escalation admits them."""
        q = self._queue(queue)
        call = self._calls.get(call_id or "")
        now = self.clock.now()
        handle = self.handle_time(queue)
        talk = handle - q.settings.wrapup_seconds
        free_in = []
        for agent_id in q.logged_in:
            agent = self._agents[agent_id]
            admitted = self._admitted_in(agent, call, q, now) if call is not None else 0.0
            if admitted is None:
                continue
            if agent.state == "ready":
                free = 0.0
            elif agent.state == "ringing":
                free = handle  # about to take the call it rings for
            elif agent.state == "acw":
                free = min(handle, max(0.0, (agent.acw_until or now) - now))
            elif agent.state in ("talking", "on_hold"):
                wrapup = self._queues[agent.current_queue].settings.wrapup_seconds \
                    if agent.current_queue in self._queues else 0.0
                elapsed = now - (agent.talk_started or now)
                free = min(handle, max(estimates.MIN_REMAINING_TALK * talk, talk - elapsed) + wrapup)
            else:
                continue
            free_in.append(max(free, admitted))
        estimate = estimates.estimate_wait(position, free_in, handle)
        if estimate is None:
            return None
        return estimate + (self._recent_mean(q, q.rings, now) or 0.0)

    def _recent_mean(self, queue: _Queue, durations: estimates.Durations, now: float) -> float | None:
        """The mean of the queue's durations over its estimate window (older ones are forgotten: a change
        the store is to take too)."""
        kept = len(durations.ended)
        mean = durations.mean(now, queue.settings.estimate_window)
        if len(durations.ended) != kept:
            self._unsaved_queues.add(queue.settings.name)
        return mean

    def _admitted_in(self, agent: _Agent, call: _Call, queue: _Queue, now: float) -> float | None:
        """Seconds until the call's escalation lets this agent take it (0: now; None: never)."""
        steps = queue.settings.escalation
        if not steps:
            return 0.0 if routing.qualifies(agent.settings, queue.settings, call.skills, None) else None
        for index in range(max(0, call.step), len(steps)):
            if steps[index].overflow is not None:
                return None
            if routing.qualifies(agent.settings, queue.settings, call.skills, steps[index]):
                return max(0.0, call.enqueued_at + steps[index].after - now)
        return None
