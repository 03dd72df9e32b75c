"""The ACD engine with a fake clock: strategies, priorities, RONA, timers (random runs: test_acd_engine_edges.py)."""

from __future__ import annotations

import pytest

from controller.acd.engine import AcdEngine, AcdError, OnCall
from controller.acd.estimates import DurationChanges
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


def engine(strategy: str = "longest_idle", agents: int = 3, **queue: object) -> tuple[AcdEngine, FakeClock]:
    clock = FakeClock()
    settings = QueueSettings("q", strategy=strategy, **queue)  # type: ignore[arg-type]
    people = [AgentSettings(f"a{i}", f"Agent {i}", f"10{i:02d}", f"80{i:02d}", skills={"x": i + 1},
                            queues={"q": 0}) for i in range(1, agents + 1)]
    return AcdEngine([settings], people, clock), clock


def offers(decisions: list[Decision]) -> list[tuple[str, str]]:
    return [(d.call_id, d.agent_id) for d in decisions if isinstance(d, Offer)]


def test_longest_idle_gets_the_call_then_acw_then_ready() -> None:
    acd, clock = engine(wrapup_seconds=10)
    for agent in ("a2", "a1", "a3"):
        acd.login(agent)
        clock.advance(1)
    assert offers(acd.enqueue("c1", "q")) == [("c1", "a2")]
    acd.answered("c1", "a2")
    assert offers(acd.enqueue("c2", "q")) == [("c2", "a1")]
    acd.answered("c2", "a1")
    clock.advance(5)
    ended = acd.call_ended("a2")
    assert [d.state for d in ended if isinstance(d, AgentStateChanged)] == ["acw"]
    assert acd.next_deadline() is not None
    clock.advance(10)
    assert [d.state for d in acd.tick() if isinstance(d, AgentStateChanged)] == ["ready"]
    assert acd.agent("a2").calls_answered == 1


def test_rona_sends_the_call_to_the_next_agent_and_pauses_the_first() -> None:
    acd, clock = engine(ring_timeout=5)
    acd.login("a1")
    clock.advance(1)
    acd.login("a2")
    assert offers(acd.enqueue("c1", "q")) == [("c1", "a1")]
    clock.advance(5)
    decisions = acd.tick()
    assert CancelOffer("c1", "a1", "ring_timeout") in decisions
    assert offers(decisions) == [("c1", "a2")]
    assert acd.agent("a1").state == "not_ready" and acd.agent("a1").reason == "no_answer"
    assert acd.no_answer("c1", "a1") == []  # the phone's own timeout, after the engine's: ignored


def test_priority_with_aging_and_announcements() -> None:
    acd, clock = engine(agents=1, priority_aging_seconds=60, announce_interval=30)
    acd.login("a1", ready=False)
    first = acd.enqueue("old", "q")
    assert [d for d in first if isinstance(d, Announce)] == [Announce("old", "q", 1, None)]  # a1 not ready
    clock.advance(130)  # old has aged two levels
    acd.enqueue("vip", "q", priority=2)
    assert acd.call("vip").position == 2  # type: ignore[union-attr]  # equal priority: arrival order wins
    clock.advance(1)
    assert [d.position for d in acd.tick() if isinstance(d, Announce) and d.call_id == "old"] == [1]
    assert offers(acd.ready("a1")) == [("old", "a1")]


def test_skills_strategy_and_required_skills() -> None:
    acd, _ = engine("skills", skills={"x": 1})
    for agent in ("a1", "a2", "a3"):
        acd.login(agent)
    assert offers(acd.enqueue("c1", "q")) == [("c1", "a3")]  # highest level
    assert offers(acd.enqueue("c2", "q", skills={"x": 4})) == []  # only a3 has x>=4 and it is ringing
    acd.no_answer("c1", "a3")
    acd.answered("c1", acd.call("c1").agents_ringing[0])  # type: ignore[union-attr]
    assert offers(acd.ready("a3")) == [("c2", "a3")]


def test_ring_all_first_answer_wins() -> None:
    acd, _ = engine("ring_all")
    for agent in ("a1", "a2", "a3"):
        acd.login(agent)
    assert sorted(a for _, a in offers(acd.enqueue("c1", "q"))) == ["a1", "a2", "a3"]
    decisions = acd.answered("c1", "a2")
    assert {d.agent_id for d in decisions if isinstance(d, CancelOffer)} == {"a1", "a3"}
    assert acd.agent("a1").state == "ready"


def test_round_robin_and_fewest_calls() -> None:
    acd, _ = engine("round_robin")
    for agent in ("a1", "a2", "a3"):
        acd.login(agent)
    picked = []
    for n in range(4):
        (call, agent), = offers(acd.enqueue(f"c{n}", "q"))
        picked.append(agent)
        acd.answered(call, agent)
        acd.call_ended(agent)
        acd.end_acw(agent)
    assert picked == ["a1", "a2", "a3", "a1"]


def test_abandon_overflow_and_no_agents() -> None:
    acd, clock = engine(max_wait=60, overflow="voicemail")
    assert acd.enqueue("c0", "q")[0] == Overflow("c0", "q", "voicemail", "no_agents")
    acd.login("a1", ready=False)
    acd.enqueue("c1", "q")
    acd.enqueue("c2", "q")
    left = acd.abandon("c1")
    assert [d.outcome for d in left if isinstance(d, CallLeft)] == ["abandoned"]
    clock.advance(60)
    decisions = acd.tick()
    assert Overflow("c2", "q", "voicemail", "max_wait") in decisions
    stats = acd.queue_stats("q")
    assert (stats.offered, stats.abandoned, stats.overflowed, stats.waiting) == (3, 1, 2, 0)


def test_bad_commands_change_nothing() -> None:
    acd, _ = engine()
    with pytest.raises(AcdError, match="unknown agent"):
        acd.login("zz")
    acd.login("a1")
    with pytest.raises(AcdError, match="unknown not-ready reason"):
        acd.not_ready("a1", "nap")
    acd.enqueue("c1", "q")
    with pytest.raises(AcdError, match="cannot log out while ringing"):
        acd.logout("a1")
    with pytest.raises(AcdError, match="unknown queue"):
        acd.enqueue("c2", "nope")
    assert acd.agent("a1").state == "ringing"


def test_snapshot_restore() -> None:
    acd, clock = engine(wrapup_seconds=5)
    acd.login("a1")
    acd.login("a2")
    acd.not_ready("a2", "meal")
    acd.enqueue("c1", "q")
    acd.answered("c1", "a1")
    again = AcdEngine([QueueSettings("q", wrapup_seconds=5)],
                      [AgentSettings(f"a{i}", "", "", f"80{i:02d}", queues={"q": 0}) for i in (1, 2, 3)], clock)
    again.restore(acd.snapshot())
    assert again.agent("a1").state == "acw" and again.agent("a2").reason == "meal"
    assert again.agent("a3").state == "logged_out"
    clock.advance(5)
    again.tick()
    assert again.agent("a1").state == "ready"


def test_a_queues_saved_durations_are_written_as_they_come_and_go() -> None:
    """Each duration is added once (a row each, not the queue's whole list again); a queue with nothing recent
    left has all its rows deleted."""
    acd, clock = engine(wrapup_seconds=0, estimate_window=100)
    acd.login("a1")
    acd.enqueue("c1", "q")
    clock.advance(2)
    acd.answered("c1", "a1")
    clock.advance(30)
    acd.call_ended("a1")
    saved = acd.take_unsaved().queues["q"]
    assert saved is not None
    talks, rings = saved
    assert ([list(pair) for pair in talks.added], [list(pair) for pair in rings.added]) == (
        acd.snapshot()["queues"]["q"]["talks"], acd.snapshot()["queues"]["q"]["rings"])
    acd.login("a2")
    assert acd.take_unsaved().queues == {}  # the queue did not change: nothing to write
    acd.enqueue("c2", "q")
    acd.answered("c2", "a1")
    clock.advance(10)
    acd.call_ended("a1")  # a talk ended: that one duration is added
    saved = acd.take_unsaved().queues["q"]
    assert saved is not None and [s for _, s in saved[0].added] == [10.0] and saved[0].forget_before is None
    clock.advance(95)  # the first talk is older than the estimate window now
    acd.estimated_wait("q", 1)  # forgotten when read: a talk's row stays until enough of them pile up, ...
    saved = acd.take_unsaved().queues["q"]
    assert saved is not None and saved[0] == DurationChanges([], None)
    assert saved[1].added == [] and saved[1].forget_before is not None  # ... the rings' go: none is left
    assert acd.snapshot()["queues"]["q"] == {"talks": [[clock.now() - 95, 10.0]], "rings": []}
    clock.advance(100)
    acd.estimated_wait("q", 1)  # nothing recent left: the queue has nothing to keep, its rows go
    assert acd.take_unsaved().queues == {"q": None} and "q" not in acd.snapshot()["queues"]


def test_restore_keeps_an_agent_talking_on_a_resumed_call() -> None:
    """A new process resumes the call: the agent is still talking on it (original talk start, no new state
    change), is offered nothing, and goes to ACW when it ends; an agent on hold stays on hold."""
    acd, clock = engine(wrapup_seconds=5)
    for call, agent in (("c1", "a1"), ("c2", "a2")):
        acd.login(agent)
        acd.enqueue(call, "q")
        acd.answered(call, agent)
    acd.hold("a2")
    talk_started = clock.now()
    clock.advance(30)
    again = AcdEngine([QueueSettings("q", wrapup_seconds=5)],
                      [AgentSettings(f"a{i}", "", "", f"80{i:02d}", queues={"q": 0}) for i in (1, 2, 3)], clock)
    out = again.restore(acd.snapshot(), on_calls={"a1": OnCall("c1", "q", talk_started),
                                                   "a2": OnCall("c2", "q", talk_started, on_hold=True)})
    assert not [d for d in out if isinstance(d, AgentStateChanged)]
    assert (again.agent("a1").state, again.agent("a1").current_call) == ("talking", "c1")
    assert (again.agent("a2").state, again.agent("a2").current_call) == ("on_hold", "c2")
    assert offers(again.enqueue("c3", "q")) == []  # nobody free: both are on their calls
    again.resume("a2")
    assert again.agent("a2").state == "talking"
    ended = again.call_ended("a1")
    assert [d.state for d in ended if isinstance(d, AgentStateChanged)] == ["acw"]
    assert again.agent("a1").current_call is None


def test_calls_counted_before_a_restart_add_to_the_statistics() -> None:
    acd, _clock = engine(service_level_seconds=20)
    acd.count_earlier("q", [("answered", 5.0), ("answered", 40.0), ("abandoned", 3.0), ("overflowed", 60.0),
                            ("bogus", 1.0)])
    acd.count_earlier("nope", [("answered", 1.0)])
    stats = acd.queue_stats("q")
    assert (stats.offered, stats.answered, stats.answered_within_sl, stats.abandoned, stats.overflowed) == \
        (4, 2, 1, 1, 1)
    assert stats.service_level == 0.25
    acd.new_day()
    stats = acd.queue_stats("q")
    assert (stats.offered, stats.answered, stats.abandoned, stats.overflowed, stats.service_level) == \
        (0, 0, 0, 0, None)


def test_outbound_call_keeps_the_agent_busy_then_back_as_before() -> None:
    clock = FakeClock(1000.0)
    engine = AcdEngine([QueueSettings("general", wrapup_seconds=0, announce_interval=0)],
                       [AgentSettings("a1", "A", "1", "8001", queues={"general": 0})], clock)
    engine.login("a1", ready=False)
    engine.not_ready("a1", reason="meal")
    engine.outbound("a1", "out-1")
    assert (engine.agent("a1").state, engine.agent("a1").current_call) == ("talking", "out-1")
    assert not any(isinstance(d, Offer) for d in engine.enqueue("c1", "general"))  # busy: no offer
    with pytest.raises(AcdError):
        engine.outbound("a1", "out-2")
    engine.call_ended("a1")
    assert (engine.agent("a1").state, engine.agent("a1").reason) == ("not_ready", "meal")
    decisions = engine.ready("a1")
    assert [d.call_id for d in decisions if isinstance(d, Offer)] == ["c1"]


def test_pickup_takes_a_call_ringing_on_a_colleague() -> None:
    clock = FakeClock(1000.0)
    engine = AcdEngine([QueueSettings("general", wrapup_seconds=0, announce_interval=0),
                        QueueSettings("other", wrapup_seconds=0, announce_interval=0)],
                       [AgentSettings("a1", "A", "1", "8001", queues={"general": 0}),
                        AgentSettings("a2", "B", "2", "8002", queues={"other": 0})], clock)
    engine.login("a1")
    engine.login("a2", ready=False)
    offers = [d for d in engine.enqueue("c1", "general") if isinstance(d, Offer)]
    assert [o.agent_id for o in offers] == ["a1"]
    with pytest.raises(AcdError):
        engine.pickup("c1", "a1")  # it rings a1 already
    decisions = engine.pickup("c1", "a2")  # a2 is not ready (DND) and in another queue: may still pick up
    assert [(type(d).__name__, d.agent_id) for d in decisions if isinstance(d, Offer | CancelOffer)] == \
        [("Offer", "a2"), ("CancelOffer", "a1")]
    assert engine.agent("a1").state == "ready" and engine.agent("a2").state == "ringing"
    engine.answered("c1", "a2")
    assert engine.agent("a2").current_call == "c1"
    with pytest.raises(AcdError):
        engine.pickup("c1", "a1")  # answered: nothing left to pick up


def test_transfer_to_a_named_agent_rings_them_then_hands_the_call_over() -> None:
    clock = FakeClock(1000.0)
    engine = AcdEngine([QueueSettings("general", wrapup_seconds=10, announce_interval=0),
                        QueueSettings("other", wrapup_seconds=0, announce_interval=0)],
                       [AgentSettings("a1", "A", "1", "8001", queues={"general": 0}),
                        AgentSettings("a2", "B", "2", "8002", queues={"other": 0}),
                        AgentSettings("a3", "C", "3", "8003", queues={"general": 0})], clock)
    for agent_id in ("a1", "a2"):
        engine.login(agent_id)
    engine.login("a3", ready=False)
    engine.not_ready("a3", reason="meal")
    engine.enqueue("c1", "general")
    engine.answered("c1", "a1")
    for to, refused in (("a3", "not ready (not_ready, meal)"), ("a1", "already with that agent"),
                        ("nobody", "unknown agent")):
        with pytest.raises(AcdError, match=refused.split(" (")[0]):
            engine.transfer_offer("c1", "a1", to)
    with pytest.raises(AcdError):
        engine.transfer_offer("c2", "a1", "a2")  # a1 is not on c2
    assert engine.agent("a3").state == "not_ready"  # refused: nothing changed

    engine.transfer_offer("c1", "a1", "a2")
    assert (engine.agent("a2").state, engine.agent("a2").current_call) == ("ringing", "c1")
    with pytest.raises(AcdError):
        engine.transfer_offer("c1", "a1", "a2")  # it rings a2 already
    assert not offers(engine.enqueue("c2", "other"))  # a ringing colleague gets no queue call
    engine.abandon("c2")
    engine.transfer_answered("c1", "a1", "a2")
    engine.call_ended("a1")
    assert engine.agent("a1").state == "acw"
    a2 = engine.agent("a2")
    assert (a2.state, a2.current_call, a2.calls_answered) == ("talking", "c1", 1)
    clock.advance(1)
    engine.call_ended("a2")
    assert engine.agent("a2").state == "acw"  # the call's queue (general) has 10 s of wrap-up


def test_a_transfer_nobody_answers_is_rona_and_a_cancelled_one_frees_the_colleague() -> None:
    clock = FakeClock(1000.0)
    engine = AcdEngine([QueueSettings("general", wrapup_seconds=0, announce_interval=0)],
                       [AgentSettings(f"a{i}", "A", str(i), f"800{i}", queues={"general": 0}) for i in (1, 2, 3)],
                       clock)
    for agent_id in ("a1", "a2", "a3"):
        engine.login(agent_id)
    engine.enqueue("c1", "general")
    engine.answered("c1", "a1")
    engine.transfer_offer("c1", "a1", "a2")
    engine.transfer_failed("c1", "a2", "no_answer")
    assert (engine.agent("a2").state, engine.agent("a2").reason) == ("not_ready", "no_answer")
    assert (engine.agent("a1").state, engine.agent("a1").current_call) == ("talking", "c1")
    assert engine.transfer_failed("c1", "a2", "no_answer") == []  # over already
    engine.transfer_offer("c1", "a1", "a3")
    engine.enqueue("c2", "general")  # waits: a3 rings for the transfer
    decisions = engine.transfer_failed("c1", "a3", "cancelled")
    assert engine.agent("a3").state == "ringing" and offers(decisions) == [("c2", "a3")]  # free, takes c2


def test_outbound_call_with_wrapup_ends_in_acw_then_back_as_before() -> None:
    clock = FakeClock(1000.0)
    engine = AcdEngine([QueueSettings("general", wrapup_seconds=0, announce_interval=0)],
                       [AgentSettings("a1", "A", "1", "8001", queues={"general": 0})], clock)
    engine.login("a1", ready=False)
    engine.not_ready("a1", reason="meal")
    engine.outbound("a1", "out-1", wrapup_seconds=5)
    assert (engine.agent("a1").state, engine.agent("a1").reason) == ("talking", "outbound")
    engine.call_ended("a1")
    assert engine.agent("a1").state == "acw"
    clock.advance(5.1)
    engine.tick()
    assert (engine.agent("a1").state, engine.agent("a1").reason) == ("not_ready", "meal")
    # A later queue call has no outbound wrap-up and no reason to go back to.
    engine.ready("a1")
    engine.outbound("a1", "out-2", wrapup_seconds=5)
    engine.call_ended("a1")
    engine.ready("a1")  # the agent ends ACW by choice: the earlier "ready" is not overridden later
    assert (engine.agent("a1").state, engine.agent("a1").reason) == ("ready", None)


def test_a_caller_taken_over_after_a_restart_keeps_their_place_and_wait() -> None:
    """Re-queued with their original enqueue time, a caller goes before those who came meanwhile (same
    priority), their wait and maximum wait count from the first enqueue, and nothing routes until
    `route_waiting()` when queued with route=False."""
    acd, clock = engine(max_wait=100, announce_interval=0)
    acd.login("a1", ready=False)
    first_enqueue = clock.now()
    clock.advance(30)
    assert acd.enqueue("late", "q") == []  # arrived while the controller was down
    clock.advance(5)
    assert offers(acd.enqueue("early", "q", enqueued_at=first_enqueue, route=False)) == []
    assert [v.call_id for v in acd.waiting("q")] == ["early", "late"]
    early = acd.call("early")
    assert early is not None and early.waited == pytest.approx(35)
    assert offers(acd.ready("a1")) == [("early", "a1")]
    # The maximum wait counts from the first enqueue: 100 s after it, not after the re-queue.
    acd.no_answer("early", "a1")
    clock.advance(64)
    assert not any(isinstance(d, Overflow) for d in acd.tick())
    clock.advance(1)
    overflowed = [d.call_id for d in acd.tick() if isinstance(d, Overflow)]
    assert overflowed == ["early"]


def test_route_waiting_offers_requeued_calls_in_arrival_order() -> None:
    acd, clock = engine(agents=1, announce_interval=0, wrapup_seconds=0)
    acd.login("a1")
    start = clock.now()
    clock.advance(50)
    for index in (3, 1, 2, 0):  # taken over in any order
        assert acd.enqueue(f"c{index}", "q", enqueued_at=start + index, route=False) == []
    served = []
    decisions = acd.route_waiting()
    for _ in range(4):
        (call_id, agent_id), = offers(decisions)
        served.append(call_id)
        acd.answered(call_id, agent_id)
        decisions = acd.call_ended(agent_id)
    assert served == ["c0", "c1", "c2", "c3"]
    assert acd.route_waiting() == []  # nothing left to offer


def test_a_ring_taken_over_after_a_restart_is_settled_like_any_offer() -> None:
    """resume_offer: the agent rings for the call again without a new Offer; answered connects; the ring
    timeout counts from the first ring and is RONA; a failed leg (no_answer) is RONA, the call keeps its place."""
    acd, clock = engine(ring_timeout=15, announce_interval=0, max_wait=1000)
    acd.login("a1", ready=False)
    acd.login("a2", ready=False)
    started = clock.now()
    clock.advance(10)
    acd.enqueue("c", "q", enqueued_at=started - 5, route=False)
    decisions = acd.resume_offer("c", "a1", ring_started=started)
    assert offers(decisions) == [] and acd.agent("a1").state == "ringing"
    with pytest.raises(AcdError):
        acd.resume_offer("c", "a2")  # one ringing leg per call taken over
    left = [d for d in acd.answered("c", "a1") if isinstance(d, CallLeft)]
    assert left[0].outcome == "answered" and left[0].wait_seconds == pytest.approx(15)
    # Still ringing: the ring timeout counts from the first ring (15 s after it, 5 s from now).
    acd.enqueue("d", "q", enqueued_at=clock.now(), route=False)
    acd.resume_offer("d", "a2", ring_started=clock.now() - 10)
    clock.advance(4)
    assert acd.tick() == []
    clock.advance(1)
    timed_out = acd.tick()
    assert [(d.call_id, d.agent_id, d.reason) for d in timed_out if isinstance(d, CancelOffer)] == \
        [("d", "a2", "ring_timeout")]
    assert acd.agent("a2").state == "not_ready" and acd.agent("a2").reason == "no_answer"
    assert acd.call("d") is not None  # still waiting, in its place


def test_a_requeued_caller_hears_announcements_on_the_same_beat() -> None:
    """announce_from: a caller taken over after a restart gets no announcement at once, but the next one
    on the schedule they had (every announce_interval from the one that was due)."""
    acd, clock = engine(announce_interval=30, max_wait=1000)
    acd.login("a1", ready=False)
    announced = [d for d in acd.enqueue("c", "q") if isinstance(d, Announce)]
    assert len(announced) == 1
    due = acd.next_announcement("c")
    assert due == clock.now() + 30
    acd.abandon("c")  # the old process's view of it is gone; the new one re-queues it 40 s later
    clock.advance(40)
    assert not [d for d in acd.enqueue("c", "q", enqueued_at=clock.now() - 40, announce_from=due)
                if isinstance(d, Announce)]
    assert acd.next_announcement("c") == due + 30  # 60 s after the first one: on the same beat
    clock.advance(19)
    assert not [d for d in acd.tick() if isinstance(d, Announce)]
    clock.advance(1)
    assert [d.call_id for d in acd.tick() if isinstance(d, Announce)] == ["c"]


def test_a_supervisor_moves_a_waiting_call_to_another_queue() -> None:
    acd, clock = engine()
    acd.upsert_queue(QueueSettings("vip"))
    acd.login("a1")
    acd.enqueue("c1", "q")  # rings a1
    clock.advance(5)
    moved = acd.move("c1", "vip")
    assert CancelOffer("c1", "a1", "moved") in moved  # the ringing stops
    assert Overflow("c1", "q", "queue:vip", "moved") in moved
    assert [(d.outcome, d.wait_seconds) for d in moved if isinstance(d, CallLeft)] == [("overflowed", 5.0)]
    assert acd.agent("a1").state == "ready" and acd.call("c1") is None
    assert acd.queue_stats("q").waiting == 0
    # Bad moves are refused and change nothing.
    acd.enqueue("c2", "q")
    for call_id, queue, problem in (("c2", "q", "already in queue"), ("c2", "nope", "unknown queue"),
                                    ("c9", "vip", "not queued")):
        with pytest.raises(AcdError, match=problem):
            acd.move(call_id, queue)
    assert acd.call("c2") is not None and acd.call("c2").queue == "q"  # type: ignore[union-attr]
