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
                                        "c1", 40.0, {"ready": 10.0, "ringing": 5.0, "talking": 25.0})
    assert acd.agent("a2") == AgentView("a2", "Li", "1002", "not_ready", "login", 1005.0, "8002", 1005.0, None, 0,
                                        None, 35.0, {"not_ready": 35.0})
    assert acd.call_ended("a1") == [AgentStateChanged("a1", "acw", None, "talking", 1040.0)]
    assert acd.snapshot() == {"version": 1, "agents": {
        "a1": {"state": "acw", "reason": None, "since": 1040.0, "endpoint": "8101", "logged_in_at": 1000.0,
               "idle_since": 1000.0, "calls_answered": 1, "online_before": 0.0,
               "seconds_by_state": {"ready": 10.0, "ringing": 5.0, "talking": 25.0}, "queue": None,
               "acw_until": 1050.0},
        "a2": {"state": "not_ready", "reason": "login", "since": 1005.0, "endpoint": "8002", "logged_in_at": 1005.0,
               "idle_since": None, "calls_answered": 0, "online_before": 0.0, "seconds_by_state": {}, "queue": None,
               "acw_until": None}}}
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
    assert acd.enqueue("c1", "q", priority=5) == [Announce("c1", "q", 1, 90.0)]  # ahead of c0: 1 × 180 / 2
    clock.advance(29)
    assert acd.tick() == []
    clock.advance(1)
    assert acd.tick() == [Announce("c0", "q", 2, 180.0), Announce("c1", "q", 1, 90.0)]
    acd.ready("a1")  # c1 rings a1: its announcements pause, c0 moves up
    clock.advance(30)
    assert acd.tick() == [Announce("c0", "q", 1, 90.0)]


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
