"""The ACD's vocabulary: queue and agent settings, the decisions the engine returns, and its views.

Everything here is plain data: the engine (`controller.acd.engine`) takes commands and returns
decisions; the telephony adapter (`controller.plugins.acd`) carries them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

AgentState = Literal["logged_out", "ready", "not_ready", "ringing", "talking", "on_hold", "acw"]
Strategy = Literal["longest_idle", "fewest_calls", "round_robin", "skills", "ring_all", "weighted_idle"]
DEFAULT_NOT_READY_REASONS = ("meal", "meeting", "training", "restroom", "helping", "no_answer", "login")
#: The controller's own not-ready reason for an agent whose phone's Asterisk node is down (not one to choose).
PHONE_UNREACHABLE = "phone_unreachable"


@dataclass(frozen=True, slots=True)
class EscalationStep:
    """From `after` seconds of a call's wait: who may take it (see `controller.acd.routing`).

    `min_level`: every required skill (the queue's and the call's) needs at least this level (None: the
    levels as configured); `max_penalty`: only agents serving the queue at this penalty tier or a better
    one (None: every tier); `overflow`: the call leaves the queue for this target instead."""

    after: float
    min_level: int | None = None
    max_penalty: int | None = None
    overflow: str | None = None


@dataclass(frozen=True, slots=True)
class QueueSettings:
    name: str
    strategy: Strategy = "longest_idle"
    skills: Mapping[str, int] = field(default_factory=dict)  # required skill -> minimum level 1..10
    wrapup_seconds: float = 60.0  # ACW after each call; 0 = ready at once
    ring_timeout: float = 15.0
    max_wait: float = 600.0
    overflow: str | None = None  # "queue:NAME" | "voicemail" | "callback" | "node:ID"; None = none
    announce_interval: float = 30.0  # 0 = no position announcements
    service_level_seconds: float = 20.0
    no_agents: Literal["wait", "overflow"] = "overflow"  # when no agent serving the queue is logged in
    priority_aging_seconds: float = 60.0  # each this many seconds waited adds 1 to a call's effective priority
    escalation: tuple[EscalationStep, ...] = ()  # timed relaxation, by `after`; empty = the same rules all along
    fewest_calls_window: float = 3600.0  # `fewest_calls` counts the calls each agent answered this long back
    estimate_window: float = 1800.0  # wait estimates use the talk times of calls ended this long back


@dataclass(frozen=True, slots=True)
class AgentSettings:
    id: str
    name: str
    number: str  # the agent's number (工号) announced to callers
    endpoint: str  # default phone, e.g. "8001"
    skills: Mapping[str, int] = field(default_factory=dict)
    queues: Mapping[str, int] = field(default_factory=dict)  # queue -> penalty (0 best; lower tiers first)
    enabled: bool = True  # a disabled agent cannot log in; one logged in finishes their call, then is logged out


# -- decisions ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Offer:
    """Ring this agent's phone for this call."""

    call_id: str
    agent_id: str
    endpoint: str
    queue: str
    ring_timeout: float


@dataclass(frozen=True, slots=True)
class CancelOffer:
    """Stop ringing (ring_all: another agent answered; "ring_timeout"; "abandoned")."""

    call_id: str
    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Announce:
    """Tell the caller their place: position 1 = next; estimated wait in seconds."""

    call_id: str
    queue: str
    position: int
    estimated_wait: float | None


@dataclass(frozen=True, slots=True)
class Overflow:
    """The call has left the queue for its overflow target (None: the adapter's default)."""

    call_id: str
    queue: str
    target: str | None
    reason: Literal["max_wait", "no_agents", "escalation", "moved"]


@dataclass(frozen=True, slots=True)
class AgentStateChanged:
    agent_id: str
    state: AgentState
    reason: str | None
    previous: AgentState
    at: float


@dataclass(frozen=True, slots=True)
class CallLeft:
    """How a queued call's visit ended: exactly one per enqueue."""

    call_id: str
    queue: str
    outcome: Literal["answered", "abandoned", "overflowed"]
    wait_seconds: float
    agent_id: str | None


Decision = Offer | CancelOffer | Announce | Overflow | AgentStateChanged | CallLeft


# -- views ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AgentView:
    id: str
    name: str
    number: str
    state: AgentState
    reason: str | None
    since: float | None  # when the current state began
    endpoint: str
    logged_in_at: float | None
    idle_since: float | None  # when they last became ready (longest-idle routing)
    calls_answered: int
    current_call: str | None  # the call ringing, talking or on hold with them
    online_seconds: float
    seconds_by_state: dict[str, float]
    talk_started: float | None = None  # when the current call was answered (its talk timer counts from here)
    acw_until: float | None = None  # in ACW: when the wrap-up ends (the toolbar's countdown)


@dataclass(frozen=True, slots=True)
class AgentStanding:
    """What the service-standards check reads each second of an agent in a state a standard limits
    (`AcdEngine.standings`): their state, since when, and their call; an `AgentView` (counters, a copy of the seconds
    per state) cost ~10x more, for every agent every second whatever the call rate."""
    id: str
    state: AgentState
    since: float | None
    current_call: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    name: str
    waiting: int  # calls in the queue (ringing included)
    longest_wait: float
    agents_logged_in: int
    agents_ready: int
    offered: int
    answered: int
    answered_within_sl: int
    abandoned: int
    overflowed: int
    service_level: float | None  # answered within the threshold / calls that left the queue


@dataclass(frozen=True, slots=True)
class WaitingCallView:
    call_id: str
    queue: str
    position: int
    priority: int
    effective_priority: int
    waited: float
    state: Literal["waiting", "ringing"]
    agents_ringing: tuple[str, ...]
    data: Mapping[str, Any]
