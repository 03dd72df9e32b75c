"""Who may take a call, and which of them gets it: timed relaxation (escalation steps) and the
strategies that spread work among qualified agents. Pure functions the engine calls.

Escalation: a queue's `escalation` steps say, from each step's `after` seconds of a call's wait, the
minimum skill level and the penalty tiers that qualify an agent (or that the call overflows). The
engine keeps each waiting call's step and moves it on with a timer at the next step's time, then
routes the call again: its eligible agents widen step by step.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Mapping, Sequence

from controller.acd.model import AgentSettings, EscalationStep, QueueSettings

__all__ = ["AnswerCounter", "qualifies", "step_at", "weighted_idle_key"]


def step_at(steps: Sequence[EscalationStep], waited: float) -> int:
    """The index of the step in force after `waited` seconds (-1: no steps)."""
    return bisect.bisect_right([step.after for step in steps], waited) - 1


def qualifies(agent: AgentSettings, queue: QueueSettings, call_skills: Mapping[str, int],
              step: EscalationStep | None) -> bool:
    """The agent (who serves the queue) has every skill the queue and the call require, at the level the
    step asks (or as configured), and serves the queue at a penalty tier the step allows."""
    if step is not None and step.max_penalty is not None and agent.queues[queue.name] > step.max_penalty:
        return False
    skills = agent.skills
    relaxed = step.min_level if step is not None else None
    for required in (queue.skills, call_skills):
        for skill, level in required.items():
            if skills.get(skill, 0) < (level if relaxed is None else max(1, relaxed)):
                return False
    return True


def weighted_idle_key(agent: AgentSettings, wanted: Mapping[str, int], idle_seconds: float) -> float:
    """`weighted_idle`: the larger, the sooner the agent gets the call — idle time × skill level (the
    mean level of the skills the call wants, 1 when it wants none). A level-8 agent idle 10 s goes
    before a level-4 agent idle 15 s, but not before one idle 25 s: the best agents take more calls,
    not all of them."""
    level = sum(agent.skills.get(skill, 0) for skill in wanted) / len(wanted) if wanted else 1.0
    return max(0.0, idle_seconds) * max(level, 0.1)


class AnswerCounter:
    """The times an agent answered queue calls, for `fewest_calls` over a window. Kept across logins
    (and restarts, in the snapshot): logging out and in again does not make a busy agent look fresh."""

    __slots__ = ("times",)

    def __init__(self, times: Sequence[float] = ()) -> None:
        self.times: deque[float] = deque(sorted(times))

    def add(self, at: float) -> None:
        self.times.append(at)

    def count_since(self, since: float) -> int:
        return len(self.times) - bisect.bisect_left(self.times, since)

    def forget_before(self, since: float) -> None:
        while self.times and self.times[0] < since:
            self.times.popleft()
