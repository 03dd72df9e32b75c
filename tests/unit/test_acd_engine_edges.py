"""The ACD engine at its edges: exact wrap-up, stale timers, penalty tiers, fewest calls, overflow
with earlier waits and rings in progress, and invariants over random runs that include every command.

Each test here was written against a bug that the older tests let through (issue 21): the bug it
guards is named in the docstring.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable

import pytest

from controller.acd.engine import AcdEngine, AcdError
from controller.acd.model import (
    AgentSettings,
    AgentStateChanged,
    Announce,
    CallLeft,
    CancelOffer,
    Decision,
    Offer,
    Overflow,
    QueueSettings,
)
from controller.clock import FakeClock
from tests.unit.test_acd_saved_state import Rows, as_stored


def agents(*specs: tuple[str, dict[str, int]], skills: dict[str, int] | None = None) -> list[AgentSettings]:
    return [AgentSettings(agent_id, f"Agent {agent_id}", agent_id, f"8{agent_id}", skills=skills or {}, queues=queues)
            for agent_id, queues in specs]


def offers(decisions: Iterable[Decision]) -> list[tuple[str, str]]:
    return [(d.call_id, d.agent_id) for d in decisions if isinstance(d, Offer)]


def states(decisions: Iterable[Decision]) -> list[tuple[str, str]]:
    return [(d.agent_id, d.state) for d in decisions if isinstance(d, AgentStateChanged)]


# -- after-call work ------------------------------------------------------------------------------

def test_acw_lasts_exactly_the_wrap_up_time() -> None:
    """Guards: the end of ACW scheduled at `now + wrapup` cut to milliseconds (or any shorter time)."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", wrapup_seconds=10, announce_interval=0)], agents(("a1", {"q": 0})), clock)
    acd.login("a1")
    acd.enqueue("c1", "q")
    acd.answered("c1", "a1")
    clock.advance(30)
    assert states(acd.call_ended("a1")) == [("a1", "acw")]
    assert acd.next_deadline() == 1040.0
    clock.advance(9.999)
    assert acd.tick() == []
    assert acd.agent("a1").state == "acw"
    assert offers(acd.enqueue("c2", "q")) == []  # in ACW: no call is offered
    clock.advance(0.001)
    decisions = acd.tick()
    assert states(decisions) == [("a1", "ready"), ("a1", "ringing")]
    assert offers(decisions) == [("c2", "a1")]  # the waiting call, as soon as the wrap-up is over
    assert acd.agent("a1").seconds_by_state["acw"] == pytest.approx(10.0)


def test_a_stale_acw_timer_does_not_end_a_later_wrap_up() -> None:
    """Guards: the ACW end token not checked, so the timer of an earlier ACW (ended by hand, by a
    pickup or by an outbound call) ends a later one early."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", wrapup_seconds=10, announce_interval=0)], agents(("a1", {"q": 0})), clock)
    acd.login("a1")
    for first_acw_ends_by in ("end_acw", "pickup", "outbound"):
        start = clock.now()
        acd.enqueue("c1", "q")
        acd.answered("c1", "a1")
        acd.call_ended("a1")  # ACW until start + 10
        clock.advance(1)
        if first_acw_ends_by == "end_acw":
            acd.end_acw("a1")
        elif first_acw_ends_by == "outbound":
            acd.outbound("a1", "out")
            acd.call_ended("a1")  # an outbound call has no wrap-up: ready
        if first_acw_ends_by == "pickup":
            acd.enqueue("c2", "q")  # waits: a1 is in ACW
            acd.pickup("c2", "a1")
        else:
            assert offers(acd.enqueue("c2", "q")) == [("c2", "a1")]
        acd.answered("c2", "a1")
        clock.advance(4)
        acd.call_ended("a1")  # a second ACW, until start + 15
        assert acd.next_deadline() == start + 15  # the first ACW's timer is stale: skipped
        clock.advance(5)  # start + 10: the first ACW's timer is due, and must do nothing
        assert acd.tick() == []
        assert acd.agent("a1").state == "acw", first_acw_ends_by
        assert acd.next_deadline() == start + 15
        clock.advance(5)
        assert states(acd.tick()) == [("a1", "ready")]


def test_restore_gives_a_talking_agent_a_fresh_wrap_up_and_keeps_a_running_one() -> None:
    """Guards: an agent in ACW at a restart ready at once (their wrap-up cut short), and the change
    from talking to ACW at a restart not reported (the state history skipped it)."""
    clock = FakeClock(1000.0)
    settings = [QueueSettings("q", wrapup_seconds=10, announce_interval=0)]
    team = agents(("talker", {"q": 0}), ("wrapper", {"q": 0}), ("late", {"q": 0}))
    acd = AcdEngine(settings, team, clock)
    for agent_id in ("talker", "wrapper", "late"):
        acd.login(agent_id, ready=False)
        acd.ready(agent_id)
        acd.enqueue(f"c-{agent_id}", "q")
        acd.answered(f"c-{agent_id}", agent_id)
    acd.call_ended("late")  # ACW until 1010
    clock.advance(4)
    acd.call_ended("wrapper")  # ACW until 1014
    snapshot = acd.snapshot()
    clock.advance(7)  # the restart takes 7 s: late's wrap-up ended meanwhile
    again = AcdEngine(settings, team, clock)
    decisions = again.restore(snapshot)
    assert [(d.agent_id, d.state, d.previous, d.at) for d in decisions if isinstance(d, AgentStateChanged)] == \
        [("talker", "acw", "talking", 1011.0)]
    assert [again.agent(a).state for a in ("talker", "wrapper", "late")] == ["acw", "acw", "acw"]
    assert states(again.tick()) == [("late", "ready")]
    clock.advance(2.9)
    assert again.tick() == []
    clock.advance(0.1)  # 1014
    assert states(again.tick()) == [("wrapper", "ready")]
    assert again.next_deadline() == 1021.0  # the talker's fresh 10 s from the restart
    clock.advance(7)
    assert states(again.tick()) == [("talker", "ready")]


# -- who gets the call ------------------------------------------------------------------------------

def test_the_lowest_penalty_tier_is_offered_first_and_higher_tiers_only_when_it_is_busy() -> None:
    """Guards: penalty tiers inverted (backup agents first)."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", announce_interval=0)],
                    agents(("backup", {"q": 2}), ("middle", {"q": 1}), ("main", {"q": 0})), clock)
    for agent_id in ("backup", "middle", "main"):  # the backup has waited longest: tiers come before idle time
        acd.login(agent_id)
        clock.advance(1)
    assert offers(acd.enqueue("c1", "q")) == [("c1", "main")]
    assert offers(acd.enqueue("c2", "q")) == [("c2", "middle")]
    assert offers(acd.enqueue("c3", "q")) == [("c3", "backup")]


def test_an_agent_of_two_queues_takes_the_better_tier_when_calls_tie() -> None:
    """Between equally urgent calls of two queues, the queue where the agent has the lower penalty wins."""
    clock = FakeClock(1000.0)
    for first, second in (("q1", "q2"), ("q2", "q1")):
        acd = AcdEngine([QueueSettings("q1", announce_interval=0), QueueSettings("q2", announce_interval=0)],
                        agents(("a1", {"q1": 1, "q2": 0})), clock)
        acd.login("a1", ready=False)
        acd.enqueue(f"c-{first}", first)
        acd.enqueue(f"c-{second}", second)  # same moment, same priority
        assert offers(acd.ready("a1")) == [("c-q2", "a1")]


def test_fewest_calls_offers_the_agent_who_answered_fewest() -> None:
    """Guards: `fewest_calls` inverted (most calls first); idle time only breaks ties."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", strategy="fewest_calls", wrapup_seconds=0, announce_interval=0)],
                    agents(("a1", {"q": 0}), ("a2", {"q": 0}), ("a3", {"q": 0})), clock)
    for agent_id in ("a1", "a2", "a3"):
        acd.login(agent_id, ready=False)
    for agent_id, count in (("a1", 2), ("a2", 1)):
        acd.ready(agent_id)
        for n in range(count):
            call = f"warm-{agent_id}-{n}"
            assert offers(acd.enqueue(call, "q")) == [(call, agent_id)]
            acd.answered(call, agent_id)
            acd.call_ended(agent_id)
        acd.not_ready(agent_id, "meal")
    for agent_id in ("a1", "a2", "a3"):
        acd.ready(agent_id)
        clock.advance(1)
    # a1 (2 calls) is now the longest idle of the three; a3 has answered none
    assert [acd.agent(a).calls_answered for a in ("a1", "a2", "a3")] == [2, 1, 0]
    assert offers(acd.enqueue("c1", "q")) == [("c1", "a3")]
    assert offers(acd.enqueue("c2", "q")) == [("c2", "a2")]
    assert offers(acd.enqueue("c3", "q")) == [("c3", "a1")]


# -- overflow -------------------------------------------------------------------------------------

def test_a_requeued_caller_overflows_counting_the_time_already_waited() -> None:
    """Guards: the time a caller already waited in an earlier queue ignored at the maximum wait."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", max_wait=60, overflow="voicemail", announce_interval=0, no_agents="wait")],
                    agents(("a1", {"q": 0})), clock)
    acd.enqueue("c1", "q", waited=50)
    assert acd.queue_stats("q").longest_wait == 50
    assert acd.next_deadline() == 1010.0
    clock.advance(9.5)
    assert acd.tick() == []
    clock.advance(0.5)
    decisions = acd.tick()
    assert Overflow("c1", "q", "voicemail", "max_wait") in decisions
    assert [(d.outcome, d.wait_seconds) for d in decisions if isinstance(d, CallLeft)] == [("overflowed", 60.0)]
    acd.enqueue("c2", "q", waited=90)  # waited longer than the maximum already: overflows at the next tick
    assert acd.next_deadline() == 1010.0
    assert [d.call_id for d in acd.tick() if isinstance(d, Overflow)] == ["c2"]
    acd.enqueue("c3", "q", waited=-5)  # nonsense is treated as no wait, not as more time
    assert acd.next_deadline() == 1070.0


def test_a_call_that_overflows_while_ringing_stops_the_ring_and_frees_the_agent() -> None:
    """Guards: the agent's phone never told to stop ringing for a call that overflowed."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", max_wait=20, ring_timeout=30, overflow="callback", announce_interval=0,
                                   no_agents="wait")],
                    agents(("a1", {"q": 0})), clock)
    acd.login("a1", ready=False)
    acd.enqueue("c1", "q")
    clock.advance(10)
    acd.enqueue("c2", "q")
    assert offers(acd.ready("a1")) == [("c1", "a1")]
    clock.advance(10)  # c1 reaches its maximum wait while a1's phone rings for it
    decisions = acd.tick()
    cancel = decisions.index(CancelOffer("c1", "a1", "max_wait"))
    overflow = decisions.index(Overflow("c1", "q", "callback", "max_wait"))
    assert cancel < overflow
    assert offers(decisions) == [("c2", "a1")]  # a1 is free again and takes the next caller
    with pytest.raises(AcdError):
        acd.answered("c1", "a1")  # the overflowed call can no longer be answered
    assert acd.agent("a1").current_call == "c2"


# -- timers ---------------------------------------------------------------------------------------

def test_next_deadline_skips_stale_timers_and_keeps_live_ones() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", ring_timeout=10, max_wait=100, announce_interval=30, wrapup_seconds=5)],
                    agents(("a1", {"q": 0})), clock)
    assert acd.next_deadline() is None
    acd.login("a1")
    acd.enqueue("c1", "q")
    assert acd.next_deadline() == 1010.0  # the ring timeout
    clock.advance(2)
    acd.answered("c1", "a1")
    assert acd.next_deadline() is None  # the ring timeout and the maximum wait of an answered call are stale
    clock.advance(1)
    acd.call_ended("a1")
    assert acd.next_deadline() == 1008.0  # the end of ACW
    acd.not_ready("a1", "meal")
    assert acd.next_deadline() is None  # ACW ended by hand: its timer is stale
    acd.enqueue("c2", "q")
    assert acd.next_deadline() == 1033.0  # the announcement, before the maximum wait (1103)
    clock.advance(30)
    assert acd.next_deadline() == 1033.0  # asking again does not drop a live timer
    assert [type(d).__name__ for d in acd.tick()] == ["Announce"]
    acd.ready("a1")
    assert acd.next_deadline() == 1043.0  # the ring timeout of c2
    acd.abandon("c2")
    assert acd.next_deadline() is None


def test_the_estimated_wait_learns_from_handled_calls_including_transferred_ones() -> None:
    """An announced estimate counts the available agents only (a not-ready one is not), each free at
    a known time (in wrap-up: when it ends), then once per handle time = the mean talk time of the
    calls ended in the window (from the answer, also the colleague's of a transfer) + the wrap-up; plus
    the mean ring (offer to answer) of the window."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", wrapup_seconds=10, announce_interval=30, no_agents="wait")],
                    agents(("a1", {"q": 0}), ("a2", {"q": 0})), clock)
    acd.login("a1")
    acd.login("a2", ready=False)
    acd.enqueue("c1", "q")
    clock.advance(5)
    acd.answered("c1", "a1")
    clock.advance(100)
    acd.call_ended("a1")  # talked 100 s; wrap-up until 10 s from now; a2 (not ready) is not counted
    # a1 is free in 10 s; the one ring so far lasted 5 s
    assert [d for d in acd.enqueue("c2", "q") if isinstance(d, Announce)] == [Announce("c2", "q", 1, 15.0)]
    acd.end_acw("a1")
    acd.answered("c2", "a1")
    acd.ready("a2")
    acd.transfer_offer("c2", "a1", "a2")
    clock.advance(3)
    with pytest.raises(AcdError):
        acd.transfer_answered("c2", "a1", "a1")
    acd.transfer_answered("c2", "a1", "a2")
    assert acd.agent("a2").calls_answered == 1
    clock.advance(50)
    acd.call_ended("a2")  # a2 talked 50 s
    acd.not_ready("a2", "meal")
    acd.call_ended("a1")  # a1 talked 53 s: mean talk (100 + 50 + 53) / 3, handle time that + 10
    assert acd.handle_time("q") == pytest.approx(203 / 3 + 10)
    assert [(d.position, d.estimated_wait) for d in acd.enqueue("c3", "q") if isinstance(d, Announce)] == \
        [(1, 12.5)]  # a1's wrap-up ends in 10 s; rings of 5 s and 0 s (c2, answered at once)
    assert [(d.position, d.estimated_wait) for d in acd.enqueue("c4", "q") if isinstance(d, Announce)] == \
        [(2, pytest.approx(10 + 203 / 3 + 10 + 2.5))]  # then a1 once more, a handle time later


def test_transfer_answered_needs_the_transfer_to_be_ringing_that_agent() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", announce_interval=0)], agents(("a1", {"q": 0}), ("a2", {"q": 0})), clock)
    acd.login("a1")
    acd.enqueue("c1", "q")
    acd.answered("c1", "a1")
    acd.login("a2")
    acd.enqueue("c2", "q")  # a2 rings for a queue call, not for the transfer
    with pytest.raises(AcdError, match="call c1 is not ringing agent a2"):
        acd.transfer_answered("c1", "a1", "a2")
    assert acd.agent("a2").state == "ringing" and acd.agent("a2").current_call == "c2"


# -- routing details ----------------------------------------------------------------------------------

def test_priority_aging_per_queue_setting() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("fast", priority_aging_seconds=1, announce_interval=0, no_agents="wait"),
                     QueueSettings("none", priority_aging_seconds=0, announce_interval=0, no_agents="wait"),
                     QueueSettings("half", priority_aging_seconds=0.5, announce_interval=0, no_agents="wait")],
                    agents(("a1", {"fast": 0, "none": 0, "half": 0})), clock)
    for queue in ("fast", "none", "half"):
        acd.enqueue(f"c-{queue}", queue, priority=2)
    clock.advance(3.5)
    views = {view.call_id: view.effective_priority for q in ("fast", "none", "half") for view in acd.waiting(q)}
    assert views == {"c-fast": 5, "c-none": 2, "c-half": 9}  # +1 per second, none, +1 per half second


def test_an_agent_becoming_ready_takes_the_most_urgent_call_across_queues() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q1", announce_interval=0, no_agents="wait"),
                     QueueSettings("q2", announce_interval=0, no_agents="wait")],
                    agents(("a1", {"q1": 0, "q2": 0})), clock)
    acd.login("a1", ready=False)
    acd.enqueue("early", "q1")
    clock.advance(1)
    acd.enqueue("urgent", "q2", priority=3)
    acd.enqueue("later", "q2")
    assert offers(acd.ready("a1")) == [("urgent", "a1")]


def test_required_skills_an_agent_lacks_entirely_are_not_met() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", announce_interval=0, no_agents="wait")],
                    [AgentSettings("novice", "", "", "8001", queues={"q": 0}),
                     AgentSettings("expert", "", "", "8002", skills={"billing": 1}, queues={"q": 0})], clock)
    acd.login("novice")
    clock.advance(1)
    acd.login("expert")
    assert offers(acd.enqueue("c1", "q", skills={"billing": 1})) == [("c1", "expert")]
    assert offers(acd.enqueue("c2", "q", skills={"billing": 1})) == []  # the novice may not take it


@pytest.mark.parametrize("strategy", ["longest_idle", "fewest_calls", "skills", "ring_all"])
def test_ties_go_to_the_longest_idle_agent_whatever_their_ids(strategy: str) -> None:
    """Equal on the strategy's own measure, the agent ready longest comes first (ring_all: rings first);
    an agent restored without an idle time counts as idle since the epoch."""
    clock = FakeClock(0.5)
    queues = [QueueSettings("q", strategy=strategy, announce_interval=0)]  # type: ignore[arg-type]
    team = agents(("a3", {"q": 0}), ("a2", {"q": 0}), ("a1", {"q": 0}), skills={"x": 1})
    acd = AcdEngine(queues, team, clock)
    acd.login("a3")  # idle since 0.5
    clock.advance(1)
    acd.login("a2")  # idle since 1.5
    restored = {"agents": {"a1": {"state": "ready", "reason": None, "since": 0.0, "endpoint": "8a1"}}}
    acd.restore(restored)  # no idle time saved: first in line
    expected = ["a1", "a3", "a2"] if strategy == "ring_all" else ["a1"]
    assert [agent_id for _, agent_id in offers(acd.enqueue("c1", "q"))] == expected


def test_round_robin_continues_after_the_agent_who_took_the_last_call_however_it_was_given() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", strategy="round_robin", wrapup_seconds=0, announce_interval=0,
                                   no_agents="wait")],
                    agents(("a1", {"q": 0}), ("a2", {"q": 0}), ("a3", {"q": 0})), clock)
    for agent_id in ("a1", "a2", "a3"):
        acd.login(agent_id, ready=False)
    acd.enqueue("c1", "q")
    assert offers(acd.ready("a2")) == [("c1", "a2")]  # the only one ready: round robin moves past a2
    acd.answered("c1", "a2")
    acd.ready("a1")
    acd.ready("a3")
    assert offers(acd.enqueue("c2", "q")) == [("c2", "a3")]


# -- invariants over random runs ----------------------------------------------------------------------

class Model:
    """What the test expects of the engine, kept from the decisions it returns (as the adapter would)."""

    def __init__(self) -> None:
        self.ringing: dict[str, str] = {}  # agent -> queue call ringing their phone
        self.transfers: dict[str, tuple[str, str]] = {}  # agent rung for a transfer -> (call, from agent)
        self.talking: dict[str, str] = {}  # agent -> call (queue, transferred or outbound)
        self.on_hold: set[str] = set()
        self.visits: dict[str, int] = {}  # call -> times enqueued
        self.left: dict[str, int] = {}  # call -> times it left a queue
        self.waited: dict[str, float] = {}  # call -> wait before its current visit

    def queued(self) -> list[str]:
        return sorted(c for c, n in self.visits.items() if self.left.get(c, 0) < n)

    def busy(self, agent_id: str) -> bool:
        return agent_id in self.ringing or agent_id in self.transfers or agent_id in self.talking


@pytest.mark.parametrize("seed", range(30))
def test_invariants_over_random_runs(seed: int) -> None:
    """Random commands of every kind (enqueue, answer, no answer, hang up, abandon, hold, resume,
    transfer, pickup, outbound, not ready, ready, end of ACW, logout, login, restart with restore),
    maximum waits short enough to fire, and an overflow that re-queues the caller elsewhere.

    Checked after every step: no call offered to two agents, no agent offered two calls or a call
    while busy, every offer ends (answered, cancelled or timed out) before its call leaves, a call
    leaves once per visit, an overflow at the maximum wait counts the earlier visit's wait, and each
    agent's state is the one the decisions imply. At the end: every call has left and every agent
    is ready again with no call."""
    rng = random.Random(seed)
    clock = FakeClock(1000.0)
    max_wait = {"q1": float(rng.choice([8, 12, 20])), "q2": float(rng.choice([6, 10]))}
    wrapup = {"q1": 3.0, "q2": 0.0}
    queues = [QueueSettings("q1", ring_timeout=5, wrapup_seconds=wrapup["q1"], max_wait=max_wait["q1"],
                            overflow="voicemail", announce_interval=rng.choice([0, 7]), priority_aging_seconds=30),
              QueueSettings("q2", strategy=rng.choice(["fewest_calls", "skills", "round_robin", "longest_idle"]),
                            ring_timeout=4, wrapup_seconds=wrapup["q2"], max_wait=max_wait["q2"],
                            overflow="queue:q1", no_agents=rng.choice(["wait", "overflow"]))]
    people = [AgentSettings(f"a{i}", "", "", f"e{i}", skills={"s": rng.randint(1, 5)},
                            queues=dict(rng.sample([("q1", rng.randint(0, 1)), ("q2", rng.randint(0, 1))],
                                                   rng.randint(1, 2))))
              for i in range(5)]
    acd = AcdEngine(queues, people, clock)
    model = Model()
    ids = [p.id for p in people]

    def apply(decisions: list[Decision], *, expect_cancelled: Iterable[str] = (), by_clock: bool = False) -> None:
        cancelled = set(expect_cancelled)
        for d in decisions:
            if isinstance(d, AgentStateChanged) and d.state == "acw":
                acw_since[d.agent_id] = d.at
            elif isinstance(d, AgentStateChanged) and d.previous == "acw" and by_clock:
                assert d.at - acw_since[d.agent_id] >= wrapup["q1"], f"{d}: ACW ended early"  # q2 has none
            if isinstance(d, Offer):
                assert not model.busy(d.agent_id), (d, model.__dict__)
                assert d.call_id not in model.ringing.values(), d
                assert d.call_id in model.queued(), d
                model.ringing[d.agent_id] = d.call_id
            elif isinstance(d, CancelOffer):
                if d.agent_id in cancelled:
                    cancelled.discard(d.agent_id)
                else:
                    assert model.ringing.pop(d.agent_id) == d.call_id, d
            elif isinstance(d, CallLeft):
                assert d.call_id not in model.ringing.values(), f"{d}: a phone still rings for it"
                model.left[d.call_id] = model.left.get(d.call_id, 0) + 1
                assert model.left[d.call_id] == model.visits[d.call_id], d
                if d.outcome == "overflowed" and overflow_reason.pop(d.call_id) == "max_wait":
                    limit = max_wait[d.queue]
                    assert limit <= d.wait_seconds <= max(limit, model.waited[d.call_id]) + 5, d
            elif isinstance(d, Overflow):
                overflow_reason[d.call_id] = d.reason
                assert d.target == ("queue:q1" if d.queue == "q2" else "voicemail")
                if d.target == "queue:q1" and rng.random() < 0.7:
                    later.append(d.call_id)  # the adapter re-queues the caller in q1, keeping their wait
            elif isinstance(d, AgentStateChanged) and d.state in ("not_ready", "logged_out", "acw", "ready"):
                assert d.agent_id not in model.ringing and d.agent_id not in model.transfers, d
        assert not cancelled, f"expected CancelOffer for {cancelled}"

    def requeue() -> None:
        while later:
            call_id = later.pop(0)
            waited = next(d.wait_seconds for d in reversed(history) if isinstance(d, CallLeft) and d.call_id == call_id)
            enqueue(call_id, "q1", waited)

    def enqueue(call_id: str, queue: str, waited: float = 0.0) -> None:
        model.visits[call_id] = model.visits.get(call_id, 0) + 1
        model.waited[call_id] = waited
        run(acd.enqueue(call_id, queue, priority=rng.choice([0, 0, 3]), waited=waited))

    def run(decisions: list[Decision], *, expect_cancelled: Iterable[str] = (), by_clock: bool = False) -> None:
        history.extend(decisions)
        apply(decisions, expect_cancelled=expect_cancelled, by_clock=by_clock)
        requeue()

    def check_states() -> None:
        for view in acd.agents():
            expected = ("ringing",) if view.id in model.ringing or view.id in model.transfers else \
                ("on_hold",) if view.id in model.on_hold else \
                ("talking",) if view.id in model.talking else ("ready", "not_ready", "acw", "logged_out")
            assert view.state in expected, (view, model.__dict__)
        waiting = sum(stats.waiting for stats in acd.queues())
        assert waiting == len(model.queued())
        rows.acd = acd
        rows.take()  # what a commit now writes: the rows of the agents and queues that changed ...
        assert rows.saved == as_stored(acd.snapshot())  # ... and the store then holds the whole snapshot

    later: list[str] = []
    rows = Rows(acd)
    acw_since: dict[str, float] = {}
    overflow_reason: dict[str, str] = {}
    history: list[Decision] = []
    for agent_id in ids:
        run(acd.login(agent_id))
    for step in range(400):
        clock.advance(rng.choice([0, 1, 2, 5]))
        run(acd.tick(), by_clock=True)
        check_states()
        action = rng.random()
        free = [a for a in ids if not model.busy(a)]
        state = {view.id: view.state for view in acd.agents()}
        if action < 0.25:
            enqueue(f"c{step}", rng.choice(["q1", "q2"]))
        elif action < 0.38 and model.ringing:
            agent_id, call_id = rng.choice(sorted(model.ringing.items()))
            del model.ringing[agent_id]
            others = [a for a, c in model.ringing.items() if c == call_id]
            model.talking[agent_id] = call_id
            run(acd.answered(call_id, agent_id), expect_cancelled=others)
        elif action < 0.43 and model.ringing:
            agent_id, call_id = rng.choice(sorted(model.ringing.items()))
            del model.ringing[agent_id]
            run(acd.no_answer(call_id, agent_id))
        elif action < 0.55 and model.talking:
            agent_id = rng.choice(sorted(model.talking))
            if any(source == agent_id for _, source in model.transfers.values()):
                continue  # the transfer is settled first
            del model.talking[agent_id]
            model.on_hold.discard(agent_id)
            run(acd.call_ended(agent_id))
        elif action < 0.60:
            waiting = [c for c in model.queued() if c not in model.ringing.values()]
            if waiting:
                run(acd.abandon(rng.choice(waiting)))
            elif model.queued():  # abandoned while ringing: the rings are cancelled
                call_id = rng.choice(model.queued())
                rung = [a for a, c in model.ringing.items() if c == call_id]
                for agent_id in rung:
                    del model.ringing[agent_id]
                run(acd.abandon(call_id), expect_cancelled=rung)
        elif action < 0.65 and model.talking:
            agent_id = rng.choice(sorted(model.talking))
            if agent_id in model.on_hold:
                model.on_hold.discard(agent_id)
                run(acd.resume(agent_id))
            else:
                model.on_hold.add(agent_id)
                run(acd.hold(agent_id))
        elif action < 0.70 and model.talking:
            source = rng.choice(sorted(model.talking))
            targets = [a for a in free if state[a] == "ready" and a != source]
            call_id = model.talking[source]
            if targets and source not in model.on_hold and not any(
                    s == source for _, s in model.transfers.values()):
                target = rng.choice(targets)
                model.transfers[target] = (call_id, source)
                run(acd.transfer_offer(call_id, source, target))
        elif action < 0.75 and model.transfers:
            target, (call_id, source) = rng.choice(sorted(model.transfers.items()))
            del model.transfers[target]
            outcome = rng.choice(["answered", "no_answer", "cancelled"])
            if outcome == "answered":
                model.talking[target] = call_id
                run(acd.transfer_answered(call_id, source, target))
            else:
                run(acd.transfer_failed(call_id, target, outcome))
        elif action < 0.79 and model.queued():
            call_id = rng.choice(model.queued())
            pickers = [a for a in free if state[a] in ("ready", "not_ready", "acw")]
            if pickers:
                picker = rng.choice(pickers)
                rung = [a for a, c in model.ringing.items() if c == call_id]
                for agent_id in rung:
                    del model.ringing[agent_id]
                run(acd.pickup(call_id, picker), expect_cancelled=rung)
        elif action < 0.82:
            callers = [a for a in free if state[a] in ("ready", "not_ready", "acw")]
            if callers:
                agent_id = rng.choice(callers)
                model.talking[agent_id] = f"out{step}"
                run(acd.outbound(agent_id, f"out{step}"))
        elif action < 0.87:
            agent_id = rng.choice(ids)
            if state[agent_id] in ("ready", "acw", "not_ready"):
                run(acd.not_ready(agent_id, rng.choice(["meal", "training"])))
        elif action < 0.90:
            agent_id = rng.choice(ids)
            if state[agent_id] in ("ready", "acw", "not_ready"):
                run(acd.logout(agent_id))
            elif state[agent_id] == "logged_out":
                run(acd.login(agent_id, ready=rng.random() < 0.5))
        elif action < 0.92 and not model.queued() and not model.transfers:
            # A restart: a new engine restores the agents from the saved rows; calls in progress end
            # outside the controller's sight and their agents get a wrap-up.
            snapshot = json.loads(json.dumps(rows.saved))
            acd = AcdEngine(queues, people, clock)
            model.talking.clear()
            model.on_hold.clear()
            run(acd.restore(snapshot))
        else:
            for view in acd.agents():
                if view.state in ("not_ready", "acw"):
                    run(acd.ready(view.id))
        check_states()

    # Drain: everyone logs in and answers; every call leaves, then every agent is ready with no call.
    for _ in range(200):
        clock.advance(1)
        run(acd.tick(), by_clock=True)
        for target, (call_id, source) in sorted(model.transfers.items()):
            del model.transfers[target]
            model.talking[target] = call_id
            run(acd.transfer_answered(call_id, source, target))
        for agent_id, call_id in sorted(model.ringing.items()):
            if model.ringing.get(agent_id) == call_id:
                del model.ringing[agent_id]
                model.talking[agent_id] = call_id
                run(acd.answered(call_id, agent_id),
                    expect_cancelled=[a for a, c in model.ringing.items() if c == call_id])
                for other in [a for a, c in model.ringing.items() if c == call_id]:
                    del model.ringing[other]
        for agent_id in sorted(model.talking):
            del model.talking[agent_id]
            model.on_hold.discard(agent_id)
            run(acd.call_ended(agent_id))
        for view in acd.agents():
            if view.state == "logged_out":
                run(acd.login(view.id))
            elif view.state == "not_ready":
                run(acd.ready(view.id))
        check_states()
        if not model.queued() and not model.talking and not model.ringing:
            break
    assert not model.queued() and all(model.left[c] == n for c, n in model.visits.items())
    clock.advance(max(wrapup.values()))
    run(acd.tick())
    views = acd.agents()
    assert [(v.id, v.state, v.current_call) for v in views] == [(v.id, "ready", None) for v in views]
    assert all(stats.waiting == 0 for stats in acd.queues())
