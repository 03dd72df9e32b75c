"""The ACD engine's contract in full: which command each agent state accepts, the exact refusal
(and that a refusal changes nothing), and every field of the views and the snapshot after a
scripted day, worked out by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from controller.acd.engine import AcdEngine, AcdError
from controller.acd.model import (
    AgentSettings,
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
from controller.clock import FakeClock

STATES = ("logged_out", "ready", "not_ready", "acw", "ringing", "talking", "on_hold")


def engine_with_x_in(state: str) -> tuple[AcdEngine, FakeClock]:
    """Agent "x" (queue q) in `state`; "helper" talking on h1 (queue third); call "w" waiting in "other"."""
    clock = FakeClock(1000.0)
    queues = [QueueSettings("q", wrapup_seconds=10, ring_timeout=60, announce_interval=0, no_agents="wait"),
              QueueSettings("other", announce_interval=0, no_agents="wait"),
              QueueSettings("third", announce_interval=0, wrapup_seconds=0)]
    people = [AgentSettings("x", "X", "1", "8001", queues={"q": 0}),
              AgentSettings("helper", "H", "2", "8002", queues={"third": 0})]
    acd = AcdEngine(queues, people, clock)
    acd.login("helper")
    acd.enqueue("h1", "third")
    acd.answered("h1", "helper")
    acd.enqueue("w", "other")
    if state != "logged_out":
        acd.login("x", ready=state != "not_ready")
    if state in ("ringing", "talking", "on_hold", "acw"):
        acd.enqueue("c1", "q")
    if state in ("talking", "on_hold", "acw"):
        acd.answered("c1", "x")
    if state == "on_hold":
        acd.hold("x")
    if state == "acw":
        acd.call_ended("x")
    assert acd.agent("x").state == state
    return acd, clock


COMMANDS: dict[str, tuple[Callable[[AcdEngine], list[Decision]], set[str], str]] = {
    # command: (how, the states that accept it, the refusal for the others ({state} filled in))
    "login": (lambda acd: acd.login("x"), {"logged_out"}, "agent x is already logged in ({state})"),
    "ready": (lambda acd: acd.ready("x"), {"ready", "not_ready", "acw"}, "agent x cannot become ready while {state}"),
    "not_ready": (lambda acd: acd.not_ready("x", "meal"), {"ready", "not_ready", "acw"},
                  "agent x cannot go not ready while {state}"),
    "logout": (lambda acd: acd.logout("x"), {"ready", "not_ready", "acw"}, "agent x cannot log out while {state}"),
    "end_acw": (lambda acd: acd.end_acw("x"), {"acw"}, "agent x is not in after-call work ({state})"),
    "hold": (lambda acd: acd.hold("x"), {"talking"}, "agent x has no call to hold ({state})"),
    "resume": (lambda acd: acd.resume("x"), {"on_hold"}, "agent x has no call on hold ({state})"),
    "call_ended": (lambda acd: acd.call_ended("x"), {"talking", "on_hold"}, "agent x is not on a call ({state})"),
    "pickup": (lambda acd: acd.pickup("w", "x"), {"ready", "not_ready", "acw"},
               "agent x cannot take a call now ({state})"),
    "outbound": (lambda acd: acd.outbound("x", "out-1"), {"ready", "not_ready", "acw"},
                 "agent x cannot place a call now ({state})"),
    "transfer_to": (lambda acd: acd.transfer_offer("h1", "helper", "x"), {"ready"}, "agent x is not ready ({state})"),
}
STATE_AFTER = {"login": "ready", "ready": "ready", "not_ready": "not_ready", "logout": "logged_out",
               "end_acw": "ready", "hold": "on_hold", "resume": "talking", "call_ended": "acw", "pickup": "ringing",
               "outbound": "talking", "transfer_to": "ringing"}
SPECIAL_REFUSALS = {("logout", "logged_out"): "agent x is not logged in",
                    ("not_ready", "logged_out"): "agent x cannot go not ready while logged_out",
                    ("transfer_to", "not_ready"): "agent x is not ready (not_ready, login)"}


def everything(acd: AcdEngine) -> Any:
    """All the engine shows, for comparing before and after a refused command."""
    return (acd.snapshot(), acd.agents(), acd.queues(), [acd.waiting(q.name) for q in acd.queues()],
            acd.next_deadline())


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_state_accepts_its_commands_and_refuses_the_others_changing_nothing(command: str, state: str) -> None:
    how, accepted, refusal = COMMANDS[command]
    acd, _ = engine_with_x_in(state)
    if state in accepted:
        how(acd)
        assert acd.agent("x").state == STATE_AFTER[command]
        return
    before = everything(acd)
    with pytest.raises(AcdError) as refused:
        how(acd)
    assert str(refused.value) == SPECIAL_REFUSALS.get((command, state), refusal.format(state=state))
    assert everything(acd) == before


def test_refusals_of_unknown_things_and_bad_arguments() -> None:
    acd, _ = engine_with_x_in("ready")
    before = everything(acd)
    refusals: list[tuple[Callable[[], object], str]] = [
        (lambda: acd.login("nobody"), "unknown agent 'nobody'"),
        (lambda: acd.not_ready("x", "nap"),
         "unknown not-ready reason 'nap' (one of: meal, meeting, training, restroom, helping, no_answer, login)"),
        (lambda: acd.enqueue("c9", "nope"), "unknown queue 'nope'"),
        (lambda: acd.enqueue("w", "other"), "call w is already queued"),
        (lambda: acd.queue_stats("nope"), "unknown queue 'nope'"),
        (lambda: acd.waiting("nope"), "unknown queue 'nope'"),
        (lambda: acd.abandon("gone"), "call gone is not queued"),
        (lambda: acd.answered("w", "x"), "call w is not ringing agent x"),
        (lambda: acd.transfer_offer("h1", "x", "helper"), "agent x is not on call h1"),
        (lambda: acd.transfer_offer("h1", "helper", "helper"), "the call is already with that agent"),
        (lambda: acd.transfer_answered("h1", "helper", "x"), "call h1 is not ringing agent x"),
    ]
    for refuse, message in refusals:
        with pytest.raises(AcdError) as refused:
            refuse()
        assert str(refused.value) == message
    assert everything(acd) == before
    acd.pickup("w", "x")
    with pytest.raises(AcdError, match=r"^call w already rings agent x$"):
        acd.pickup("w", "x")
    acd2, _ = engine_with_x_in("logged_out")
    with pytest.raises(AcdError, match=r"^the phone \(endpoint\) must not be empty$"):
        acd2.login("x", endpoint="  ")
    assert acd2.agent("x").state == "logged_out"
    with pytest.raises(AcdError, match=r"^agent bad: unknown queue 'nope'$"):
        AcdEngine([QueueSettings("q")], [AgentSettings("bad", "", "", "8009", queues={"nope": 0})], FakeClock())


def test_views_after_a_scripted_hour() -> None:
    """Every field of the agent, queue and waiting-call views, and of the snapshot, worked out by hand."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", wrapup_seconds=10, ring_timeout=30, announce_interval=0,
                                   service_level_seconds=20, priority_aging_seconds=60, no_agents="wait"),
                     QueueSettings("spare", announce_interval=0)],
                    [AgentSettings("a1", "Wang", "1001", "8001", queues={"q": 0}),
                     AgentSettings("a2", "Li", "1002", "8002", queues={"q": 0, "spare": 1})], clock)
    assert acd.login("a1", endpoint="8101") == [AgentStateChanged("a1", "ready", None, "logged_out", 1000.0)]
    clock.advance(5)  # 1005
    acd.login("a2", ready=False)
    clock.advance(5)  # 1010
    assert acd.enqueue("c1", "q", priority=1, data={"vip": True}) == [
        AgentStateChanged("a1", "ringing", None, "ready", 1010.0), Offer("c1", "a1", "8101", "q", 30.0)]
    clock.advance(3)  # 1013
    assert acd.enqueue("c2", "q", waited=40) == []  # announcements are off; a2 is not ready
    clock.advance(2)  # 1015
    assert acd.answered("c1", "a1") == [AgentStateChanged("a1", "talking", None, "ringing", 1015.0),
                                        CallLeft("c1", "q", "answered", 5.0, "a1")]
    clock.advance(25)  # 1040: c2 has waited 40 + 27 = 67 s, aged one level
    assert acd.waiting("q") == [WaitingCallView("c2", "q", 1, 0, 1, 67.0, "waiting", (), {})]
    assert acd.call("c2") == acd.waiting("q")[0] and acd.call("c1") is None
    assert acd.queue_stats("q") == QueueStats("q", 1, 67.0, 2, 0, 2, 1, 1, 0, 0, 1.0)
    assert acd.queue_stats("spare") == QueueStats("spare", 0, 0.0, 1, 0, 0, 0, 0, 0, 0, None)
    assert acd.agent("a1") == AgentView("a1", "Wang", "1001", "talking", None, 1015.0, "8101", 1000.0, 1000.0, 1,
                                        "c1", 40.0, {"ready": 10.0, "ringing": 5.0, "talking": 25.0},
                                        talk_started=1015.0)
    assert acd.agent("a2") == AgentView("a2", "Li", "1002", "not_ready", "login", 1005.0, "8002", 1005.0, None, 0,
                                        None, 35.0, {"not_ready": 35.0})
    assert acd.call_ended("a1") == [AgentStateChanged("a1", "acw", None, "talking", 1040.0)]
    assert acd.snapshot() == {"version": 1, "agents": {
        "a1": {"state": "acw", "reason": None, "since": 1040.0, "endpoint": "8101", "logged_in_at": 1000.0,
               "idle_since": 1000.0, "calls_answered": 1, "online_before": 0.0,
               "seconds_by_state": {"ready": 10.0, "ringing": 5.0, "talking": 25.0}, "queue": None,
               "acw_until": 1050.0, "answers": [1015.0]},
        "a2": {"state": "not_ready", "reason": "login", "since": 1005.0, "endpoint": "8002", "logged_in_at": 1005.0,
               "idle_since": None, "calls_answered": 0, "online_before": 0.0, "seconds_by_state": {}, "queue": None,
               "acw_until": None, "answers": []}},
        "queues": {"q": {"talks": [[1040.0, 25.0]], "rings": [[1015.0, 5.0]]}}}
    clock.advance(10)  # 1050: the wrap-up ends and a1 takes c2
    assert acd.tick() == [AgentStateChanged("a1", "ready", None, "acw", 1050.0),
                          AgentStateChanged("a1", "ringing", None, "ready", 1050.0),
                          Offer("c2", "a1", "8101", "q", 30.0)]
    assert acd.waiting("q") == [WaitingCallView("c2", "q", 1, 0, 1, 77.0, "ringing", ("a1",), {})]
    clock.advance(30)  # 1080: no answer
    assert acd.tick() == [CancelOffer("c2", "a1", "ring_timeout"),
                          AgentStateChanged("a1", "not_ready", "no_answer", "ringing", 1080.0)]
    assert acd.abandon("c2") == [CallLeft("c2", "q", "abandoned", 107.0, None)]
    assert acd.logout("a1") == [AgentStateChanged("a1", "logged_out", None, "not_ready", 1080.0)]
    clock.advance(20)  # 1100
    acd.login("a1")
    view = acd.agent("a1")
    assert (view.online_seconds, view.calls_answered, view.logged_in_at) == (80.0, 0, 1100.0)
    assert view.seconds_by_state == {"ready": 10.0, "ringing": 35.0, "talking": 25.0, "acw": 10.0,
                                     "not_ready": 0.0}
    assert acd.queue_stats("q") == QueueStats("q", 0, 0.0, 2, 1, 2, 1, 1, 1, 0, 0.5)
    assert [stats.name for stats in acd.queues()] == ["q", "spare"]


def test_announcements_give_position_and_estimated_wait() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", announce_interval=30, ring_timeout=60, no_agents="wait")],
                    [AgentSettings(f"a{i}", "", "", f"800{i}", queues={"q": 0}) for i in (1, 2)], clock)
    assert acd.enqueue("c0", "q") == [Announce("c0", "q", 1, None)]  # nobody logged in: no estimate
    acd.login("a1", ready=False)
    acd.login("a2", ready=False)
    # Logged in but not ready: nobody available, no estimate (not one counting agents who take no calls).
    assert acd.enqueue("c1", "q", priority=5) == [Announce("c1", "q", 1, None)]
    clock.advance(29)
    assert acd.tick() == []
    clock.advance(1)
    assert acd.tick() == [Announce("c0", "q", 2, None), Announce("c1", "q", 1, None)]
    acd.ready("a1")  # c1 rings a1: its announcements pause, c0 moves up
    clock.advance(30)
    # a1 is free after c1 (a handle time: the default talk 120 s + wrap-up 60 s)
    assert acd.tick() == [Announce("c0", "q", 1, 180.0)]


def test_no_agents_overflow_at_enqueue_and_when_the_last_agent_logs_out() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", overflow="queue:backup", announce_interval=0, max_wait=100),
                     QueueSettings("backup", announce_interval=0, no_agents="wait")],
                    [AgentSettings("a1", "", "", "8001", queues={"q": 0, "backup": 0}),
                     AgentSettings("a2", "", "", "8002", queues={"q": 0})], clock)
    assert acd.enqueue("c0", "q", waited=3) == [Overflow("c0", "q", "queue:backup", "no_agents"),
                                                CallLeft("c0", "q", "overflowed", 3.0, None)]
    assert acd.next_deadline() is None  # no maximum-wait timer is left behind
    acd.login("a1", ready=False)
    acd.login("a2", ready=False)
    acd.enqueue("c1", "q")
    acd.enqueue("b1", "backup")
    clock.advance(4)
    acd.ready("a2")  # c1 rings a2 and stays; only waiting calls overflow
    acd.enqueue("c2", "q")
    assert acd.logout("a1") == [AgentStateChanged("a1", "logged_out", None, "not_ready", 1004.0)]  # a2 remains
    acd.answered("c1", "a2")
    acd.call_ended("a2")
    acd.not_ready("a2", "meal")
    assert acd.logout("a2") == [AgentStateChanged("a2", "logged_out", None, "not_ready", 1004.0),
                                Overflow("c2", "q", "queue:backup", "no_agents"),
                                CallLeft("c2", "q", "overflowed", 0.0, None)]
    assert [view.call_id for view in acd.waiting("backup")] == ["b1"]  # its queue waits for agents


def test_a_restart_restores_every_agent_field_and_skips_what_it_should() -> None:
    clock = FakeClock(1000.0)
    queues = [QueueSettings("q", wrapup_seconds=10, announce_interval=0, ring_timeout=60)]
    people = [AgentSettings(agent_id, agent_id.upper(), agent_id, f"80-{agent_id}", queues={"q": 0})
              for agent_id in ("gone", "never", "r", "n", "w", "t")]
    acd = AcdEngine(queues, people, clock)
    acd.login("gone")
    clock.advance(30)
    acd.logout("gone")  # online for 30 s, then logged out: kept in the snapshot, not logged in again
    acd.login("n", ready=False)
    acd.not_ready("n", "meal")
    acd.login("w")
    acd.enqueue("cw", "q")
    acd.answered("cw", "w")
    clock.advance(4)
    acd.call_ended("w")  # ACW until 1044: over by the time of the restart, which ends it at the next tick
    acd.login("t")
    acd.enqueue("ct", "q")
    acd.answered("ct", "t")
    acd.login("r", endpoint="8199")
    for n in range(2):
        acd.enqueue(f"r{n}", "q")
        clock.advance(2)
        acd.answered(f"r{n}", "r")
        clock.advance(3)
        acd.call_ended("r")
        acd.end_acw("r")
    clock.advance(5)
    snapshot = acd.snapshot()
    assert set(snapshot["agents"]) == {"gone", "r", "n", "w", "t"}  # "never" logged in: not saved
    snapshot["agents"] = {"stranger": {"state": "ready"}, **snapshot["agents"]}  # no longer configured: skipped
    clock.advance(1)
    again = AcdEngine(queues, people, clock)
    decisions = again.restore(snapshot)
    assert decisions == [AgentStateChanged("t", "acw", None, "talking", clock.now())]
    for agent_id in ("gone", "never", "r", "n", "w"):
        assert again.agent(agent_id) == acd.agent(agent_id), agent_id
    assert again.queue_stats("q") == QueueStats("q", 0, 0.0, 4, 1, 0, 0, 0, 0, 0, None)
    assert offers(again.enqueue("c9", "q")) == [("c9", "r")]
    assert again.agent("r").endpoint == "8199"


def test_restoring_a_minimal_or_empty_snapshot() -> None:
    clock = FakeClock(1000.0)
    queues = [QueueSettings("q", announce_interval=0, wrapup_seconds=0)]
    people = [AgentSettings("a1", "A", "1", "8001", queues={"q": 0})]
    acd = AcdEngine(queues, people, clock)
    assert acd.restore({}) == [] and acd.agent("a1").state == "logged_out"
    assert acd.restore({"agents": {"a1": {"state": "ready"}}}) == []
    assert acd.agent("a1") == AgentView("a1", "A", "1", "ready", None, None, "8001", 1000.0, None, 0, None, 0.0, {})
    talking = AcdEngine(queues, people, clock)
    talking.restore({"agents": {"a1": {"state": "talking", "queue": "q"}}})  # q has no wrap-up: ready at once
    assert talking.agent("a1").state == "ready"


def offers(decisions: list[Decision]) -> list[tuple[str, str]]:
    return [(d.call_id, d.agent_id) for d in decisions if isinstance(d, Offer)]


def test_snapshot_leaves_out_agents_never_logged_in_and_stale_wrap_up_ends() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", wrapup_seconds=5, announce_interval=0)],
                    [AgentSettings("never", "", "", "8000", queues={"q": 0}),
                     AgentSettings("a1", "", "", "8001", queues={"q": 0})], clock)
    assert acd.agent("never").endpoint == "8000"  # the configured phone, before any login
    acd.login("a1")
    acd.enqueue("c1", "q")
    acd.answered("c1", "a1")
    acd.call_ended("a1")
    clock.advance(5)
    acd.tick()  # the wrap-up ended: no end time is saved for a ready agent
    assert list(acd.snapshot()["agents"]) == ["a1"] and acd.snapshot()["agents"]["a1"]["acw_until"] is None


def test_cancelled_offers_say_why() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", strategy="ring_all", announce_interval=0, wrapup_seconds=0)],
                    [AgentSettings(f"a{i}", "", "", f"800{i}", queues={"q": 0}) for i in (1, 2, 3)], clock)
    for agent_id in ("a1", "a2"):
        acd.login(agent_id)
    acd.login("a3", ready=False)
    acd.enqueue("c1", "q")
    assert acd.answered("c1", "a1") == [CancelOffer("c1", "a2", "answered_elsewhere"),
                                        AgentStateChanged("a2", "ready", None, "ringing", 1000.0),
                                        AgentStateChanged("a1", "talking", None, "ringing", 1000.0),
                                        CallLeft("c1", "q", "answered", 0.0, "a1")]
    acd.enqueue("c2", "q")  # rings a2
    assert acd.pickup("c2", "a3") == [AgentStateChanged("a3", "ringing", None, "not_ready", 1000.0),
                                      Offer("c2", "a3", "8003", "q", 15.0),
                                      CancelOffer("c2", "a2", "picked_up"),
                                      AgentStateChanged("a2", "ready", None, "ringing", 1000.0)]
    assert acd.abandon("c2") == [CancelOffer("c2", "a3", "abandoned"),
                                 AgentStateChanged("a3", "ready", None, "ringing", 1000.0),
                                 CallLeft("c2", "q", "abandoned", 0.0, None)]
    acd.not_ready("a2", "meal")
    acd.not_ready("a3", "meal")
    acd.enqueue("c3", "q")  # waits: nobody is ready
    assert offers(acd.ready("a2")) == [("c3", "a2")]  # a ring-all call taken by an agent becoming ready


def test_counters_views_and_orders_over_more_than_one_call() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", wrapup_seconds=0.5, announce_interval=0, max_wait=30, no_agents="wait"),
                     QueueSettings("b", wrapup_seconds=0, announce_interval=0)],
                    [AgentSettings("a1", "", "", "8001", queues={"q": 0}),
                     AgentSettings("a2", "", "", "8002", queues={"b": 0})], clock)
    acd.login("a1", ready=False)
    acd.enqueue("low", "q")
    acd.enqueue("same-time", "q")  # same moment and priority: arrival order
    acd.enqueue("high", "q", priority=2)
    assert [v.call_id for v in acd.waiting("q")] == ["high", "low", "same-time"]
    acd.abandon("low")
    acd.abandon("same-time")
    acd.ready("a1")  # takes "high"
    acd.answered("high", "a1")
    assert states_of(acd.call_ended("a1")) == [("a1", "acw")]  # half a second of wrap-up is still a wrap-up
    clock.advance(0.5)
    assert states_of(acd.tick()) == [("a1", "ready")]
    acd.enqueue("again", "q")
    acd.answered("again", "a1")
    acd.enqueue("late", "q")
    clock.advance(30)
    acd.tick()  # "late" overflows at its maximum wait
    assert acd.queue_stats("q") == QueueStats("q", 0, 0.0, 1, 0, 5, 2, 2, 2, 1, 0.4)
    acd.login("a2")
    acd.enqueue("b1", "b")
    acd.answered("b1", "a2")
    acd.call_ended("a2")
    acd.enqueue("b2", "b")
    acd.answered("b2", "a2")
    acd.call_ended("a2")
    acd.transfer_offer("again", "a1", "a2")
    acd.transfer_answered("again", "a1", "a2")
    assert acd.agent("a2").calls_answered == 3
    acd.call_ended("a2")
    acd.call_ended("a1")
    clock.advance(10)
    acd.logout("a2")
    clock.advance(5)
    acd.login("a2")
    clock.advance(7)
    acd.logout("a2")
    clock.advance(3)
    view = acd.agent("a2")
    assert (view.online_seconds, "logged_out" in view.seconds_by_state) == (17.0, False)


def states_of(decisions: list[Decision]) -> list[tuple[str, str]]:
    return [(d.agent_id, d.state) for d in decisions if isinstance(d, AgentStateChanged)]


def test_timers_a_phone_ended_and_a_maximum_wait_before_the_next_announcement() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", ring_timeout=10, max_wait=20, announce_interval=30)],
                    [AgentSettings("a1", "", "", "8001", queues={"q": 0})], clock)
    acd.login("a1")
    assert acd.enqueue("c1", "q") == [AgentStateChanged("a1", "ringing", None, "ready", 1000.0),
                                      Offer("c1", "a1", "8001", "q", 10.0)]  # ringing: no announcement
    clock.advance(2)
    acd.no_answer("c1", "a1")  # the phone gave up before the engine's ring timeout (1010), now stale
    assert acd.next_deadline() == 1020.0  # the maximum wait, ahead of the announcement (1032)
    assert acd.next_deadline() == 1020.0
    clock.advance(18)
    assert [type(d).__name__ for d in acd.tick()] == ["Overflow", "CallLeft"]


def test_one_second_announcements_and_ready_twice() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", announce_interval=1, no_agents="wait")],
                    [AgentSettings("a1", "", "", "8001", queues={"q": 0})], clock)
    assert acd.enqueue("c1", "q") == [Announce("c1", "q", 1, None)]
    clock.advance(1)
    assert acd.tick() == [Announce("c1", "q", 1, None)]
    acd.abandon("c1")
    acd.login("a1")
    clock.advance(5)
    assert acd.ready("a1") == []  # already ready: nothing changes, the idle time keeps counting from login
    assert acd.agent("a1").idle_since == 1001.0


def test_skills_strategy_counts_a_skill_an_agent_lacks_as_zero() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", strategy="skills", skills={"x": 0}, announce_interval=0)],
                    [AgentSettings("without", "", "", "8001", queues={"q": 0}),
                     AgentSettings("with", "", "", "8002", skills={"x": 1}, queues={"q": 0})], clock)
    acd.login("without")  # idle longer, and allowed (level 0 required), but has none of the skill
    clock.advance(1)
    acd.login("with")
    assert offers(acd.enqueue("c1", "q")) == [("c1", "with")]


def test_calls_of_the_same_moment_keep_their_arrival_order_everywhere() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q1", announce_interval=30, no_agents="wait"),
                     QueueSettings("q2", announce_interval=30, no_agents="wait")],
                    [AgentSettings("a1", "", "", "8001", queues={"q1": 0, "q2": 0})], clock)
    acd.login("a1", ready=False)
    assert acd.enqueue("first", "q2") == [Announce("first", "q2", 1, None)]  # nobody available: no estimate
    assert acd.enqueue("second", "q2") == [Announce("second", "q2", 2, None)]  # same moment: behind the first
    acd.enqueue("other", "q1")  # same moment, the agent's first-listed queue
    assert offers(acd.ready("a1")) == [("first", "a1")]


def test_a_maximum_wait_due_before_the_next_announcement_is_not_lost() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", max_wait=20, announce_interval=30, no_agents="wait")],
                    [AgentSettings("a1", "", "", "8001", queues={"q": 0})], clock)
    assert [type(d).__name__ for d in acd.enqueue("c1", "q")] == ["Announce"]
    assert acd.next_deadline() == 1020.0
    clock.advance(20)
    assert [type(d).__name__ for d in acd.tick()] == ["Overflow", "CallLeft"]


def test_a_restart_gives_half_a_second_of_wrap_up_too() -> None:
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", wrapup_seconds=0.5, announce_interval=0)],
                    [AgentSettings("a1", "", "", "8001", queues={"q": 0})], clock)
    acd.restore({"agents": {"a1": {"state": "talking", "queue": "q"}}})
    assert acd.agent("a1").state == "acw" and acd.next_deadline() == 1000.5


def test_a_calls_own_view_is_its_view_in_the_whole_queue() -> None:
    """`call(id)` counts the calls ahead instead of sorting the queue: the same position and fields as `waiting`
    gives, with priorities, aging (a lower priority that waited overtakes), equal arrival times, a call that
    waited before (restored ahead of later arrivals) and one ringing."""
    clock = FakeClock(1000.0)
    acd = AcdEngine([QueueSettings("q", priority_aging_seconds=10, announce_interval=0, no_agents="wait",
                                   ring_timeout=600)],
                    [AgentSettings("a1", "Wang", "1001", "8001", queues={"q": 0})], clock)
    acd.enqueue("old-low", "q", priority=0)
    clock.advance(25)  # old-low ages two levels: as urgent as p2, and earlier
    for call_id, priority in (("p1-a", 1), ("p1-b", 1), ("p2", 2), ("p0", 0)):
        acd.enqueue(call_id, "q", priority=priority)  # p1-a and p1-b: the same time, arrival order decides
    acd.enqueue("waited-before", "q", priority=1, waited=100)  # aged ten levels: the most urgent
    acd.login("a1")  # rings it
    clock.advance(3)
    views = acd.waiting("q")
    assert [view.call_id for view in views] == ["waited-before", "old-low", "p2", "p1-a", "p1-b", "p0"]
    assert views[0].state == "ringing"
    assert [acd.call(view.call_id) for view in views] == views
    assert acd.call("nobody") is None


@pytest.mark.parametrize("state", STATES)
def test_the_standards_checks_views_are_the_full_views_narrowed(state: str) -> None:
    """`standings(states)` is `standings()` of the agents in those states, in the same order; `waiting_everywhere()`
    is `waiting` of each queue in `queues()` order (ringing calls included), the queues without calls skipped."""
    acd, _clock = engine_with_x_in(state)
    acd.enqueue("w2", "q")  # ringing x when x is ready, else waiting
    acd.enqueue("w3", "other")
    everyone = acd.standings()
    assert [a.id for a in everyone] == ["x", "helper"]
    for states in (("talking", "on_hold", "acw"), (state,), ()):
        assert acd.standings(states) == [a for a in everyone if a.state in states]
    assert acd.waiting_everywhere() == [view for q in acd.queues() for view in acd.waiting(q.name)]
    assert [view.call_id for view in acd.waiting_everywhere()][-2:] == ["w", "w3"]
    assert acd.queue_names() == [q.name for q in acd.queues()] == ["q", "other", "third"]
