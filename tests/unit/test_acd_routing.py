"""Timed relaxation (escalation steps) and the strategies that spread work, with the fake clock.

One test per escalation step (who qualifies before and from its time), per strategy, and for the
timers' edges (a ring in progress at a step's time, a restart part-way through the steps)."""

from __future__ import annotations

import pytest

from controller.acd.engine import AcdEngine
from controller.acd.model import (
    AgentSettings,
    CallLeft,
    CancelOffer,
    EscalationStep,
    Overflow,
    QueueSettings,
)
from controller.acd.routing import AnswerCounter, qualifies, step_at, weighted_idle_key
from controller.clock import FakeClock
from tests.unit.test_acd_engine_edges import offers, states

#: first 20 s only level >= 7 of the primary team (penalty 0); then level >= 4; after 60 s any level;
#: after 90 s the backup team (penalty 1) too, at the levels as configured; after 120 s overflow.
STEPS = (EscalationStep(0, min_level=7, max_penalty=0), EscalationStep(20, min_level=4, max_penalty=0),
         EscalationStep(60, min_level=1, max_penalty=0), EscalationStep(90, max_penalty=1),
         EscalationStep(120, overflow="queue:spare"))
TEAM = {"top": (9, 0), "mid": (5, 0), "low": (2, 0), "backup": (3, 1)}  # agent -> (level of x, penalty)


def escalating(steps: tuple[EscalationStep, ...] = STEPS, *, ready: tuple[str, ...] = ("mid", "low", "backup"),
               **queue: object) -> tuple[AcdEngine, FakeClock]:
    """Queue "q" needs skill x (level 1 as configured) and relaxes by `steps`; the `ready` agents are ready,
    the others logged in but not ready."""
    clock = FakeClock(1000.0)
    options: dict[str, object] = {"wrapup_seconds": 0, "announce_interval": 0, "ring_timeout": 10, "max_wait": 600,
                                  "no_agents": "wait", **queue}
    settings = QueueSettings("q", skills={"x": 1}, escalation=steps, **options)  # type: ignore[arg-type]
    people = [AgentSettings(agent_id, agent_id, agent_id, f"8{agent_id}", skills={"x": level},
                            queues={"q": penalty}) for agent_id, (level, penalty) in TEAM.items()]
    acd = AcdEngine([settings, QueueSettings("spare")], people, clock)
    for agent_id in TEAM:
        acd.login(agent_id, ready=agent_id in ready)
        clock.advance(1)
    return acd, clock


def move(clock: FakeClock, at: float) -> None:
    clock.advance(at - clock.now())


def wait_until(acd: AcdEngine, clock: FakeClock, at: float) -> list[tuple[str, str]]:
    """Advance the clock to `at` (absolute), ticking on the way; the offers made."""
    made = []
    while (deadline := acd.next_deadline()) is not None and deadline <= at:
        move(clock, max(clock.now(), deadline))
        made += offers(acd.tick())
    move(clock, at)
    return made + offers(acd.tick())


def test_step_0_only_top_level_agents_of_the_primary_team() -> None:
    acd, clock = escalating(ready=("top", "mid", "low", "backup"))
    assert offers(acd.enqueue("c1", "q")) == [("c1", "top")]
    acd.answered("c1", "top")
    start = clock.now()
    assert offers(acd.enqueue("c2", "q")) == []  # mid (5), low (2) too low; backup not in the primary team
    assert wait_until(acd, clock, start + 19.9) == []
    assert acd.call("c2").waited == pytest.approx(19.9)  # type: ignore[union-attr]


def test_step_1_after_20_seconds_level_4_and_up() -> None:
    acd, clock = escalating()
    start = clock.now()
    assert offers(acd.enqueue("c1", "q")) == []
    assert acd.next_deadline() == start + 20
    assert wait_until(acd, clock, start + 19.99) == []
    assert wait_until(acd, clock, start + 20) == [("c1", "mid")]
    assert acd.answered("c1", "mid")[-1] == CallLeft("c1", "q", "answered", 20.0, "mid")


def test_step_2_after_60_seconds_any_level_of_the_primary_team() -> None:
    acd, clock = escalating(ready=("low", "backup"))
    start = clock.now()
    acd.enqueue("c1", "q")
    assert wait_until(acd, clock, start + 59.9) == []  # low (2) is below 4; backup not yet
    assert wait_until(acd, clock, start + 60) == [("c1", "low")]


def test_step_3_after_90_seconds_the_backup_team_at_the_configured_levels() -> None:
    acd, clock = escalating(ready=("backup",))
    start = clock.now()
    acd.enqueue("c1", "q")
    assert wait_until(acd, clock, start + 89.9) == []
    assert wait_until(acd, clock, start + 90) == [("c1", "backup")]


def test_step_4_after_120_seconds_the_call_overflows_stopping_a_ring() -> None:
    acd, clock = escalating(ready=("backup",), ring_timeout=60)
    start = clock.now()
    acd.enqueue("c1", "q")
    assert wait_until(acd, clock, start + 90) == [("c1", "backup")]
    move(clock, start + 120)
    decisions = acd.tick()
    assert decisions[0] == CancelOffer("c1", "backup", "escalation")
    assert Overflow("c1", "q", "queue:spare", "escalation") in decisions
    assert CallLeft("c1", "q", "overflowed", 120.0, None) in decisions
    assert acd.agent("backup").state == "ready" and acd.call("c1") is None
    assert acd.queue_stats("q").overflowed == 1


def test_an_agent_becoming_ready_takes_a_call_only_at_a_step_that_admits_them() -> None:
    acd, clock = escalating(ready=())
    start = clock.now()
    acd.enqueue("c1", "q")
    move(clock, start + 10)
    assert offers(acd.ready("mid")) == []  # level 5 < 7 at step 0
    move(clock, start + 30)
    acd.tick()  # step 1 routed c1 to mid at 20 s
    assert acd.agent("mid").state == "ringing"
    acd.no_answer("c1", "mid")  # RONA: mid goes not ready
    assert offers(acd.ready("low")) == []  # level 2 < 4 at step 1
    assert offers(acd.ready("top")) == [("c1", "top")]  # top qualifies at every step


def test_a_call_ringing_at_a_step_time_keeps_ringing_then_rona_routes_it_with_the_wider_rules() -> None:
    acd, clock = escalating(ready=("top", "low"), ring_timeout=30)
    start = clock.now()
    assert offers(acd.enqueue("c1", "q")) == [("c1", "top")]
    move(clock, start + 20)
    assert acd.tick() == []  # step 1: still ringing top, nothing else happens
    move(clock, start + 30)
    decisions = acd.tick()  # top does not answer
    assert ("top", "not_ready") in states(decisions)
    assert offers(decisions) == []  # low (2) is not admitted before 60 s
    assert wait_until(acd, clock, start + 60) == [("c1", "low")]


def test_a_call_taken_over_after_a_restart_starts_at_the_step_its_wait_reached() -> None:
    acd, _ = escalating(ready=("low",))
    assert offers(acd.enqueue("c1", "q", waited=65)) == [("c1", "low")]  # at step 2 already
    decisions = acd.enqueue("c2", "q", waited=130)  # past the overflow step
    assert Overflow("c2", "q", "queue:spare", "escalation") in decisions
    assert acd.call("c2") is None


def test_the_call_skills_relax_too_and_the_timer_of_an_answered_call_is_stale() -> None:
    acd, clock = escalating(ready=("mid",))
    start = clock.now()
    assert offers(acd.enqueue("c1", "q", skills={"x": 9})) == []  # wants 9; step 0 asks 7: still > 5
    assert wait_until(acd, clock, start + 20) == [("c1", "mid")]  # step 1 sets every skill to >= 4
    acd.answered("c1", "mid")
    assert acd.next_deadline() is None  # the call's later steps are gone with it


def test_without_steps_the_levels_and_tiers_are_as_configured() -> None:
    acd, _ = escalating(steps=(), ready=("low", "backup"))
    assert offers(acd.enqueue("c1", "q")) == [("c1", "low")]  # penalty 0 first, level 1 enough
    assert acd.next_deadline() is not None  # only the maximum wait


def test_qualifies_and_step_at() -> None:
    agent = AgentSettings("a", "", "", "", skills={"x": 4, "y": 1}, queues={"q": 2})
    queue = QueueSettings("q", skills={"x": 2})
    assert qualifies(agent, queue, {"y": 1}, None)
    assert not qualifies(agent, queue, {"z": 1}, None)  # a skill the agent lacks
    assert not qualifies(agent, queue, {}, EscalationStep(0, min_level=5))
    assert qualifies(agent, queue, {"y": 3}, EscalationStep(0, min_level=1))  # relaxed below the call's 3
    assert not qualifies(agent, queue, {}, EscalationStep(0, max_penalty=1))
    assert qualifies(agent, queue, {}, EscalationStep(0, max_penalty=2))
    assert [step_at(STEPS, waited) for waited in (0, 19.9, 20, 60, 89, 90, 500)] == [0, 0, 1, 2, 2, 3, 4]
    assert step_at((), 10) == -1


# -- strategies -----------------------------------------------------------------------------------

def spread(strategy: str, levels: dict[str, int], **queue: object) -> tuple[AcdEngine, FakeClock]:
    clock = FakeClock(1000.0)
    settings = QueueSettings("q", strategy=strategy, skills={"x": 1}, wrapup_seconds=0, announce_interval=0,  # type: ignore[arg-type]
                             no_agents="wait", **queue)  # type: ignore[arg-type]
    people = [AgentSettings(a, a, a, f"8{a}", skills={"x": level}, queues={"q": 0}) for a, level in levels.items()]
    acd = AcdEngine([settings], people, clock)
    for agent_id in levels:
        acd.login(agent_id, ready=False)
    return acd, clock


def test_weighted_idle_gives_the_better_agent_more_calls_but_not_all() -> None:
    """idle × level: level 8 idle 10 s (80) beats level 4 idle 15 s (60), not level 4 idle 25 s (100)."""
    acd, clock = spread("weighted_idle", {"expert": 8, "junior": 4})
    acd.ready("junior")
    clock.advance(5)
    acd.ready("expert")
    clock.advance(10)
    assert offers(acd.enqueue("c1", "q")) == [("c1", "expert")]
    acd.no_answer("c1", "expert")  # (back to the pool: the next choice is between the same two)
    acd.abandon("c1")
    acd.ready("expert")
    clock.advance(10)  # expert idle 10 s, junior idle 25 s
    assert offers(acd.enqueue("c2", "q")) == [("c2", "junior")]
    assert weighted_idle_key(AgentSettings("a", "", "", "", skills={"x": 8}), {"x": 1}, 10) == 80
    assert weighted_idle_key(AgentSettings("a", "", "", "", skills={}), {}, 10) == 10  # no skill wanted: idle
    # the mean level of the skills wanted (one the agent lacks counts 0); under a second idle counts too
    assert weighted_idle_key(AgentSettings("a", "", "", "", skills={"x": 8}), {"x": 1, "y": 1}, 10) == 40
    assert weighted_idle_key(AgentSettings("a", "", "", "", skills={"x": 6}), {"x": 1}, 0.5) == 3
    assert weighted_idle_key(AgentSettings("a", "", "", "", skills={}), {"x": 1}, 10) == pytest.approx(1)


def test_the_skills_strategy_still_picks_the_most_skilled_and_longest_idle_ignores_level() -> None:
    for strategy, expected in (("skills", "expert"), ("longest_idle", "junior")):
        acd, clock = spread(strategy, {"expert": 8, "junior": 4})
        acd.ready("junior")
        clock.advance(30)
        acd.ready("expert")
        clock.advance(1)
        assert offers(acd.enqueue("c1", "q")) == [("c1", expected)], strategy


def answer(acd: AcdEngine, call_id: str, agent_id: str) -> None:
    assert offers(acd.enqueue(call_id, "q")) == [(call_id, agent_id)]
    acd.answered(call_id, agent_id)
    acd.call_ended(agent_id)


def test_fewest_calls_counts_over_the_window_not_since_login() -> None:
    """Guards: the count reset at login (a busy agent who logs out and in looks fresh) and a window
    that never forgets (an agent busy this morning starved this afternoon)."""
    acd, clock = spread("fewest_calls", {"busy": 5, "fresh": 5}, fewest_calls_window=3600)
    acd.ready("busy")
    answer(acd, "m1", "busy")
    answer(acd, "m2", "busy")
    clock.advance(600)
    acd.not_ready("busy", "meal")
    acd.logout("busy")
    acd.login("busy")  # ready again, longest idle of the two below
    clock.advance(1)
    acd.ready("fresh")
    answer(acd, "m3", "fresh")
    clock.advance(1)
    assert acd.agent("busy").calls_answered == 0  # the session's figure starts over...
    assert acd.calls_answered_within("busy", 3600) == 2  # ...what fewest_calls counts does not
    assert offers(acd.enqueue("c1", "q")) == [("c1", "fresh")]  # 1 call against 2, though busy idles longer
    acd.abandon("c1")
    clock.advance(3600 - 600)  # busy's two calls are now more than an hour old; fresh's is not
    assert acd.calls_answered_within("busy", 3600) == 0
    assert offers(acd.enqueue("c2", "q")) == [("c2", "busy")]


def test_the_answer_counter_counts_the_window_s_first_second_in() -> None:
    counter = AnswerCounter([1000.0])
    counter.add(4600.0)
    counter.forget_before(4600.0 - 3600)
    assert counter.count_since(1000.0) == 2 and counter.count_since(1000.5) == 1
    counter.forget_before(1000.5)
    assert counter.count_since(0) == 1


def test_fewest_calls_counts_survive_a_restart() -> None:
    acd, clock = spread("fewest_calls", {"busy": 5, "fresh": 5})
    acd.ready("busy")
    answer(acd, "m1", "busy")
    acd.ready("fresh")
    snapshot = acd.snapshot()
    again = AcdEngine([QueueSettings("q", strategy="fewest_calls", skills={"x": 1}, wrapup_seconds=0,
                                     announce_interval=0, no_agents="wait")],
                      [AgentSettings(a, a, a, f"8{a}", skills={"x": 5}, queues={"q": 0}) for a in ("busy", "fresh")],
                      clock)
    again.restore(snapshot)
    assert again.calls_answered_within("busy", 3600) == 1
    assert offers(again.enqueue("c1", "q")) == [("c1", "fresh")]  # busy is the longest idle, with one call
