"""Agents' schedules and adherence, pure (README "Schedules and adherence").

A schedule is a list of shifts: agent, start, end, activity. Activities nest: a `break` row inside a
`work` row is a break in that shift — at any moment an agent's scheduled activity is the one of the
shortest shift covering that moment. `work` expects the agent on the phones (ready, ringing, talking,
on hold, after-call work); every other activity expects them off the phones (not ready or logged out).
A state that differs from the schedule for longer than the grace period is out of adherence.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

ACTIVITIES = ("work", "break", "meal", "training", "meeting", "off")
ON_PHONES = frozenset({"ready", "ringing", "talking", "on_hold", "acw"})
#: The longest shift (a typo in a date makes a shift weeks long).
MAX_SHIFT_SECONDS = 24 * 3600
AdherenceStatus = Literal["in", "out", "pending", "unscheduled"]


class ScheduleError(ValueError):
    """A schedule that cannot be taken as it is (the message names the row and the problem)."""


@dataclass(frozen=True, slots=True)
class Shift:
    agent_id: str
    start: float
    end: float
    activity: str = "work"

    def covers(self, moment: float) -> bool:
        return self.start <= moment < self.end

    def as_dict(self) -> dict[str, str | float]:
        return {"agent_id": self.agent_id, "start": self.start, "end": self.end, "activity": self.activity}


def check(shifts: Sequence[Shift], known_agent: set[str] | None = None) -> None:
    """Raise ScheduleError for the first bad shift (row numbers from 1), so a bad schedule changes nothing."""
    for number, shift in enumerate(shifts, 1):
        if not shift.agent_id:
            raise ScheduleError(f"row {number}: no agent id")
        if known_agent is not None and shift.agent_id not in known_agent:
            raise ScheduleError(f"row {number}: no agent {shift.agent_id!r}")
        if shift.activity not in ACTIVITIES:
            raise ScheduleError(f"row {number}: activity {shift.activity!r} is not one of {', '.join(ACTIVITIES)}")
        if not (math.isfinite(shift.start) and math.isfinite(shift.end)) or shift.end <= shift.start:
            raise ScheduleError(f"row {number}: the end must be after the start")
        if shift.end - shift.start > MAX_SHIFT_SECONDS:
            raise ScheduleError(f"row {number}: a shift is at most 24 hours")


def parse_time(text: str) -> float:
    """Epoch seconds, or a local ISO time: `2026-11-26 09:00`, `2026-11-26T09:00:00`, with or without an offset."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ScheduleError(f"{text!r} is not a time (use 'YYYY-MM-DD HH:MM' or epoch seconds)") from None


def parse_csv(text: str) -> list[Shift]:
    """Shifts from CSV with the header `agent_id,start,end,activity` (activity optional: work)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"agent_id", "start", "end"} - set(reader.fieldnames or [])
    if missing:
        raise ScheduleError(f"the CSV header needs agent_id,start,end[,activity]; missing {', '.join(sorted(missing))}")
    shifts = []
    for number, row in enumerate(reader, 1):
        try:
            shifts.append(Shift((row["agent_id"] or "").strip(), parse_time(row["start"] or ""),
                                parse_time(row["end"] or ""), (row.get("activity") or "work").strip() or "work"))
        except ScheduleError as exc:
            raise ScheduleError(f"row {number}: {exc}") from None
    check(shifts)
    return shifts


def scheduled_activity(shifts: Iterable[Shift], moment: float) -> Shift | None:
    """The shift whose activity holds at `moment`: the shortest covering it (a break inside a work shift)."""
    covering = [shift for shift in shifts if shift.covers(moment)]
    return min(covering, key=lambda shift: (shift.end - shift.start, -shift.start)) if covering else None


@dataclass(frozen=True, slots=True)
class Adherence:
    agent_id: str
    status: AdherenceStatus
    scheduled: str  # the activity now ("off": outside every shift)
    state: str
    since: float | None  # when the current difference began (None: in adherence)

    def as_dict(self) -> dict[str, str | float | None]:
        return {"agent_id": self.agent_id, "status": self.status, "scheduled": self.scheduled,
                "state": self.state, "out_since": self.since}


def adherence_now(agent_id: str, shifts: Sequence[Shift], *, state: str, state_since: float | None,
                  now: float, grace_seconds: float) -> Adherence:
    """Real-time adherence: is the agent's state what their schedule asks for right now?

    An agent with no shift at all in `shifts` (the day's schedule) is `unscheduled`: not judged."""
    if not shifts:
        return Adherence(agent_id, "unscheduled", "off", state, None)
    current = scheduled_activity(shifts, now)
    activity = current.activity if current else "off"
    if (activity == "work") == (state in ON_PHONES):
        return Adherence(agent_id, "in", activity, state, None)
    # The difference began when both the activity and the state were what they are now.
    activity_since = current.start if current else max((s.end for s in shifts if s.end <= now), default=now)
    since = max(activity_since, state_since if state_since is not None else activity_since)
    status: AdherenceStatus = "out" if now - since > grace_seconds else "pending"
    return Adherence(agent_id, status, activity, state, since)


@dataclass(frozen=True, slots=True)
class StateSpan:
    """An agent's state from `start` to `end` (logged-out time is not a span)."""

    state: str
    start: float
    end: float


def adherence_share(shifts: Sequence[Shift], spans: Sequence[StateSpan], start: float,
                    end: float) -> tuple[float, float]:
    """(seconds scheduled, seconds in adherence) for one agent between `start` and `end`.

    Scheduled time is the time covered by a shift; in it, `work` is in adherence while on the phones,
    every other activity while off them (not ready or logged out)."""
    bounds = sorted({start, end, *(t for s in shifts for t in (s.start, s.end) if start < t < end)})
    scheduled = adhered = 0.0
    for left, right in itertools.pairwise(bounds):
        current = scheduled_activity(shifts, (left + right) / 2)
        if current is None:
            continue
        length = right - left
        on_phones = sum(max(0.0, min(right, span.end) - max(left, span.start))
                        for span in spans if span.state in ON_PHONES)
        scheduled += length
        adhered += on_phones if current.activity == "work" else length - on_phones
    return scheduled, adhered
