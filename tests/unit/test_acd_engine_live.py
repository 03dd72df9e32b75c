"""The ACD engine's live configuration with a fake clock: queues and agents added, changed, disabled and
removed while calls wait, ring and talk (README "Administration (live configuration)")."""

from __future__ import annotations

import dataclasses

import pytest

from controller.acd.engine import AcdEngine, AcdError, OnCall
from controller.acd.model import AgentSettings, CallLeft, CancelOffer, Overflow, QueueSettings
from controller.clock import FakeClock
from tests.unit.test_acd_engine import engine
from tests.unit.test_acd_engine_edges import agents, offers, states
from tests.unit.test_acd_engine_views import STATES, engine_with_x_in, everything

X = AgentSettings("x", "X", "1", "8001", queues={"q": 0})


def finish_the_call(acd: AcdEngine, clock: FakeClock, state: str) -> None:
    """Take agent x from `state` (ringing, talking, on hold or ACW on call c1 in queue q) to the end of the ACW."""
    if state == "ringing":
        acd.answered("c1", "x")
    if state == "on_hold":
        acd.resume("x")
    if state != "acw":
        acd.call_ended("x")
    clock.advance(10)  # queue q's wrap-up


def a1_talking(agents: int = 1, **queue: object) -> tuple[AcdEngine, FakeClock]:
    """Agent a1 talking on call c1 of queue q (the engine of test_acd_engine)."""
    acd, clock = engine(agents=agents, **queue)
    acd.login("a1")
    acd.enqueue("c1", "q")
    acd.answered("c1", "a1")
    return acd, clock


# -- agents -------------------------------------------------------------------------------------

def test_a_new_agent_logs_in_and_takes_the_waiting_call_without_a_restart() -> None:
    acd, _ = engine(agents=1, no_agents="wait", wrapup_seconds=0)
    acd.login("a1")
    acd.enqueue("c1", "q")
    acd.answered("c1", "a1")
    assert offers(acd.enqueue("c2", "q")) == []
    assert acd.upsert_agent(AgentSettings("new", "New", "1006", "8006", queues={"q": 0})) == []
    assert acd.agent("new").state == "logged_out" and acd.agent("new").number == "1006"
    decisions = acd.login("new")
    assert offers(decisions) == [("c2", "new")]
    assert [d.endpoint for d in decisions if hasattr(d, "endpoint")] == ["8006"]


def test_skills_given_while_a_call_waits_route_it_at_once_to_the_newly_qualified_agent() -> None:
    acd, _ = engine(agents=2, no_agents="wait")
    acd.login("a1")
    acd.login("a2")
    assert offers(acd.enqueue("c1", "q", skills={"billing": 3})) == []
    a2 = acd.agent("a2")
    lacking = AgentSettings("a2", a2.name, a2.number, a2.endpoint, skills={"billing": 2}, queues={"q": 0})
    assert offers(acd.upsert_agent(lacking)) == []  # level 2 < 3: still nobody
    decisions = acd.upsert_agent(dataclasses.replace(lacking, skills={"billing": 3}))
    assert offers(decisions) == [("c1", "a2")]
    assert states(decisions) == [("a2", "ringing")]
    # taking a skill away only matters for the next decision: the ringing offer goes on
    assert acd.upsert_agent(dataclasses.replace(lacking, skills={})) == []
    assert acd.agent("a2").current_call == "c1"


def test_a_queue_given_to_a_ready_agent_serves_its_waiting_call_and_one_taken_away_stops_offers() -> None:
    queues = [QueueSettings("q", no_agents="wait"), QueueSettings("sales", no_agents="overflow", overflow="voicemail")]
    acd = AcdEngine(queues, agents(("x", {"q": 0}), ("y", {"q": 0, "sales": 0})), FakeClock())
    acd.login("x")
    acd.login("y", ready=False)
    acd.enqueue("s1", "sales")  # y is logged in: it waits
    decisions = acd.upsert_agent(AgentSettings("x", "X", "x", "8x", queues={"q": 0, "sales": 5}))
    assert offers(decisions) == [("s1", "x")]
    assert acd.queue_stats("sales").agents_logged_in == 2
    acd.no_answer("s1", "x")  # x: not ready (no answer); s1 waits again
    # the last agent logged in to "sales" leaves it: its waiting call overflows (no_agents: overflow)
    acd.upsert_agent(AgentSettings("x", "X", "x", "8x", queues={"q": 0}))
    decisions = acd.upsert_agent(AgentSettings("y", "Y", "y", "8y", queues={"q": 0}))
    assert Overflow("s1", "sales", "voicemail", "no_agents") in decisions
    assert acd.queue_stats("sales").agents_logged_in == 0 and acd.queue_stats("q").agents_logged_in == 2


def test_a_new_penalty_decides_the_next_offer() -> None:
    acd, clock = engine(agents=2)
    acd.login("a1")
    clock.advance(1)
    acd.login("a2")
    a1 = acd.agent("a1")
    acd.upsert_agent(AgentSettings("a1", a1.name, a1.number, a1.endpoint, skills={"x": 2}, queues={"q": 5}))
    assert offers(acd.enqueue("c1", "q")) == [("c1", "a2")]  # a1 idles longer but is in a worse tier now


def test_the_default_phone_follows_the_change_and_one_chosen_at_login_stays() -> None:
    acd, _ = engine(agents=2, no_agents="wait")
    acd.login("a1")
    acd.login("a2", endpoint="desk-9")
    for agent_id in ("a1", "a2"):
        view = acd.agent(agent_id)
        acd.upsert_agent(AgentSettings(agent_id, "Renamed", "2000", "8999", queues={"q": 0}))
        assert acd.agent(agent_id).name == "Renamed" and acd.agent(agent_id).number == "2000"
        assert view.state == "ready"
    assert acd.agent("a1").endpoint == "8999" and acd.agent("a2").endpoint == "desk-9"
    acd.logout("a2")
    acd.upsert_agent(AgentSettings("a2", "Renamed", "2000", "8998", queues={"q": 0}))
    assert acd.agent("a2").endpoint == "8998"


def test_an_agent_naming_an_unknown_queue_is_refused_and_nothing_changes() -> None:
    acd, _ = engine_with_x_in("ready")
    before = everything(acd)
    with pytest.raises(AcdError, match=r"^agent x: unknown queue 'nope'$"):
        acd.upsert_agent(dataclasses.replace(X, queues={"q": 0, "nope": 1}))
    with pytest.raises(AcdError, match=r"^agent new: unknown queue 'nope'$"):
        acd.upsert_agent(AgentSettings("new", "N", "9", "8009", queues={"nope": 0}))
    assert everything(acd) == before


def test_round_robin_goes_on_after_the_same_colleague_when_an_agent_leaves_the_queue() -> None:
    acd, _ = engine("round_robin", agents=4, wrapup_seconds=0)
    for agent in ("a1", "a2", "a3", "a4"):
        acd.login(agent)
    assert offers(acd.enqueue("c1", "q")) == [("c1", "a1")]
    acd.answered("c1", "a1")
    acd.call_ended("a1")
    a1 = acd.agent("a1")
    acd.upsert_agent(AgentSettings("a1", a1.name, a1.number, a1.endpoint, queues={}))  # the last offered leaves
    assert offers(acd.enqueue("c2", "q")) == [("c2", "a2")]
    acd.answered("c2", "a2")
    acd.call_ended("a2")
    acd.upsert_agent(AgentSettings("a4", "A4", "1004", "8004", queues={}))  # one after the last offered leaves
    assert offers(acd.enqueue("c3", "q")) == [("c3", "a3")]
    acd.answered("c3", "a3")
    acd.call_ended("a3")
    assert offers(acd.enqueue("c4", "q")) == [("c4", "a2")]  # the rotation wraps round the two left


# -- removing and disabling an agent ---------------------------------------------------------------

@pytest.mark.parametrize("state", ["logged_out", "ready", "not_ready"])
def test_an_agent_removed_off_a_call_is_forgotten_at_once(state: str) -> None:
    acd, _ = engine_with_x_in(state)
    decisions = acd.remove_agent("x")
    assert states(decisions) == ([] if state == "logged_out" else [("x", "logged_out")])
    with pytest.raises(AcdError, match=r"^unknown agent 'x'$"):
        acd.agent("x")
    assert "x" not in acd.snapshot()["agents"]
    assert acd.queue_stats("q").agents_logged_in == 0 and acd.queue_stats("q").agents_ready == 0
    acd.remove_queue("q")  # nobody serves it any more


@pytest.mark.parametrize("state", ["ringing", "talking", "on_hold", "acw"])
def test_an_agent_removed_on_a_call_finishes_it_and_its_acw_unoffered_then_is_forgotten(state: str) -> None:
    acd, clock = engine_with_x_in(state)
    assert acd.remove_agent("x") == []
    assert acd.agent("x").state == state and acd.leaving("x")
    assert offers(acd.enqueue("c2", "q")) == []  # no new offer meanwhile (even when ringing ends)
    finish_the_call(acd, clock, state)
    decisions = acd.tick()
    assert states(decisions) == [("x", "logged_out")]  # straight from ACW: never ready
    assert offers(decisions) == []
    with pytest.raises(AcdError, match=r"^unknown agent 'x'$"):
        acd.agent("x")
    assert [call.call_id for call in acd.waiting("q")] == ["c2"]  # still waiting: nobody else serves q
    assert "x" not in acd.snapshot()["agents"]


def test_an_agent_removed_while_ringing_who_does_not_answer_goes_at_once_and_the_call_rings_on() -> None:
    acd, clock = engine(agents=2, ring_timeout=5, no_agents="wait")
    acd.login("a1")
    clock.advance(1)
    acd.login("a2")
    assert offers(acd.enqueue("c1", "q")) == [("c1", "a1")]
    acd.remove_agent("a1")
    clock.advance(5)
    decisions = acd.tick()
    assert CancelOffer("c1", "a1", "ring_timeout") in decisions
    assert states(decisions) == [("a1", "logged_out"), ("a2", "ringing")]  # not "not_ready (no answer)"
    assert offers(decisions) == [("c1", "a2")]
    assert [a.id for a in acd.agents()] == ["a2"]


def test_a_removed_agent_whose_acw_is_ended_early_goes_and_its_acw_timer_is_harmless() -> None:
    acd, clock = engine_with_x_in("acw")
    acd.remove_agent("x")
    assert states(acd.end_acw("x")) == [("x", "logged_out")]
    assert acd.next_deadline() == 1600.0  # the stale end of ACW skipped: call w's maximum wait is next
    clock.advance(10)
    assert acd.tick() == []


def test_an_agent_removed_while_the_last_one_logged_in_overflows_the_queue_only_when_they_go() -> None:
    acd, clock = a1_talking(wrapup_seconds=10, no_agents="overflow", overflow="voicemail")
    acd.remove_agent("a1")
    assert offers(acd.enqueue("c2", "q")) == []  # a1 still logged in (talking): c2 waits
    acd.call_ended("a1")
    clock.advance(10)
    decisions = acd.tick()
    assert states(decisions) == [("a1", "logged_out")]
    assert Overflow("c2", "q", "voicemail", "no_agents") in decisions
    assert [d.outcome for d in decisions if isinstance(d, CallLeft)] == ["overflowed"]


def test_an_agent_removed_on_a_call_then_added_again_stays_after_the_call() -> None:
    acd, clock = engine_with_x_in("talking")
    acd.remove_agent("x")
    acd.upsert_agent(X)
    assert not acd.leaving("x")
    acd.call_ended("x")
    clock.advance(10)
    assert states(acd.tick()) == [("x", "ready")]


@pytest.mark.parametrize("state", STATES)
def test_a_disabled_agent_finishes_any_call_then_is_logged_out_and_cannot_log_in(state: str) -> None:
    acd, clock = engine_with_x_in(state)
    decisions = acd.upsert_agent(dataclasses.replace(X, enabled=False))
    on_call = state in ("ringing", "talking", "on_hold", "acw")
    assert states(decisions) == ([("x", "logged_out")] if state in ("ready", "not_ready") else [])
    if on_call:
        assert offers(acd.enqueue("c2", "q")) == []
        finish_the_call(acd, clock, state)
        assert states(acd.tick()) == [("x", "logged_out")]
    assert acd.agent("x").state == "logged_out"  # known still (the day's figures), not forgotten
    with pytest.raises(AcdError, match=r"^agent x is disabled$"):
        acd.login("x")
    acd.upsert_agent(X)  # enabled again
    acd.login("x")
    assert acd.agent("x").state in ("ready", "ringing")


def test_a_disabled_agent_on_a_call_enabled_again_goes_on_as_usual() -> None:
    acd, clock = engine_with_x_in("on_hold")
    acd.upsert_agent(dataclasses.replace(X, enabled=False))
    acd.upsert_agent(X)
    acd.resume("x")
    acd.call_ended("x")
    clock.advance(10)
    assert states(acd.tick()) == [("x", "ready")]


def test_an_agent_disabled_while_no_process_ran_is_logged_out_on_restore() -> None:
    acd, clock = engine_with_x_in("ready")
    snapshot = acd.snapshot()
    queues = [QueueSettings("q", wrapup_seconds=10, announce_interval=0, no_agents="wait")]
    restarted = AcdEngine(queues, [dataclasses.replace(X, enabled=False)], clock)
    assert states(restarted.restore(snapshot)) == [("x", "logged_out")]
    assert restarted.queue_stats("q").agents_logged_in == 0


def test_outbound_and_pickup_are_refused_to_a_disabled_agent_in_acw_changing_nothing() -> None:
    acd, _ = engine_with_x_in("acw")
    acd.upsert_agent(dataclasses.replace(X, enabled=False))
    before = everything(acd)
    for refused in (lambda: acd.outbound("x", "o1"), lambda: acd.pickup("w", "x")):
        with pytest.raises(AcdError, match=r"^agent x is disabled: no new calls$"):
            refused()
    assert everything(acd) == before


# -- queues ----------------------------------------------------------------------------------------

def test_a_new_wrap_up_leaves_a_running_acw_alone_and_applies_to_the_next_call() -> None:
    acd, clock = engine(agents=1, wrapup_seconds=30, no_agents="wait")
    acd.login("a1")
    acd.enqueue("c1", "q")
    acd.answered("c1", "a1")
    acd.call_ended("a1")
    clock.advance(5)
    assert acd.upsert_queue(QueueSettings("q", wrapup_seconds=5, no_agents="wait")) == []
    assert acd.agent("a1").state == "acw"
    clock.advance(24)
    assert acd.tick() == []
    clock.advance(1)  # the ACW ends 30 s after the call, as it began
    assert states(acd.tick()) == [("a1", "ready")]
    acd.enqueue("c2", "q")
    acd.answered("c2", "a1")
    acd.call_ended("a1")
    clock.advance(5)
    assert states(acd.tick()) == [("a1", "ready")]


def test_required_skills_lowered_while_a_call_waits_route_it_at_once() -> None:
    acd, _ = engine(agents=1, skills={"x": 5}, no_agents="wait")
    acd.login("a1")  # skill x 2 < 5
    assert offers(acd.enqueue("c1", "q")) == []
    decisions = acd.upsert_queue(QueueSettings("q", skills={"x": 2}, no_agents="wait"))
    assert offers(decisions) == [("c1", "a1")]


def test_a_new_ring_timeout_and_strategy_are_used_for_the_next_offer() -> None:
    acd, clock = engine(agents=2, ring_timeout=5, no_agents="wait")
    acd.login("a1")
    clock.advance(1)
    acd.login("a2")
    acd.upsert_queue(QueueSettings("q", strategy="fewest_calls", ring_timeout=50, no_agents="wait"))
    decisions = acd.enqueue("c1", "q")
    assert [(o.agent_id, o.ring_timeout) for o in decisions if hasattr(o, "ring_timeout")] == [("a1", 50)]


def test_a_queue_changed_to_overflow_with_nobody_logged_in_overflows_its_waiting_calls() -> None:
    acd, _ = engine(agents=1, no_agents="wait")
    acd.enqueue("c1", "q")
    decisions = acd.upsert_queue(QueueSettings("q", no_agents="overflow", overflow="callback"))
    assert Overflow("c1", "q", "callback", "no_agents") in decisions


def test_a_new_queue_serves_agents_given_it() -> None:
    acd, _ = engine(agents=1)
    assert acd.upsert_queue(QueueSettings("vip", no_agents="wait")) == []
    acd.login("a1")
    acd.enqueue("v1", "vip")
    a1 = acd.agent("a1")
    decisions = acd.upsert_agent(AgentSettings("a1", a1.name, a1.number, a1.endpoint, queues={"q": 0, "vip": 0}))
    assert offers(decisions) == [("v1", "a1")]


@pytest.mark.parametrize("ringing", [False, True])
def test_a_queue_with_callers_waiting_or_ringing_cannot_be_removed_and_nothing_changes(ringing: bool) -> None:
    acd, _ = engine_with_x_in("ringing" if ringing else "not_ready")
    if not ringing:
        acd.enqueue("c1", "q")
        acd.enqueue("c2", "q")
    acd.upsert_agent(dataclasses.replace(X, queues={}))
    before = everything(acd)
    message = ("1 caller is waiting in queue q" if ringing else "2 callers are waiting in queue q")
    with pytest.raises(AcdError, match=rf"^{message}: move them or wait until it is empty$"):
        acd.remove_queue("q")
    assert everything(acd) == before


def test_a_queue_served_by_agents_cannot_be_removed_and_an_empty_one_can() -> None:
    acd, _ = engine(agents=2)
    with pytest.raises(AcdError, match=r"^queue q is still served by agents a1, a2$"):
        acd.remove_queue("q")
    with pytest.raises(AcdError, match=r"^unknown queue 'nope'$"):
        acd.remove_queue("nope")
    acd.remove_agent("a1")
    with pytest.raises(AcdError, match=r"^queue q is still served by agent a2$"):
        acd.remove_queue("q")
    acd.remove_agent("a2")
    assert acd.remove_queue("q") == []
    assert acd.queues() == []


def test_an_agent_talking_on_a_removed_queues_call_keeps_its_wrap_up() -> None:
    acd, clock = a1_talking(wrapup_seconds=20)
    acd.upsert_agent(AgentSettings("a1", "A", "1", "8001"))  # serves no queue now
    acd.remove_queue("q")
    assert states(acd.call_ended("a1")) == [("a1", "acw")]
    clock.advance(20)
    assert states(acd.tick()) == [("a1", "ready")]


# -- not-ready reasons -------------------------------------------------------------------------------

def test_not_ready_reasons_changed_apply_to_the_next_command_and_a_current_one_stays() -> None:
    acd, _ = engine_with_x_in("ready")
    acd.not_ready("x", "meal")
    acd.set_not_ready_reasons(["coaching", "login", "no_answer"])
    assert acd.agent("x").reason == "meal"
    with pytest.raises(AcdError, match=r"^unknown not-ready reason 'meal' \(one of: coaching, login, no_answer\)$"):
        acd.not_ready("x", "meal")
    acd.not_ready("x", "coaching")
    assert acd.agent("x").reason == "coaching"
    assert states(acd.ready("x")) == [("x", "ready")]


def test_a_queue_served_only_by_a_removed_agent_finishing_a_call_can_go_and_the_agent_still_finishes() -> None:
    acd, clock = a1_talking(wrapup_seconds=20)
    acd.remove_agent("a1")
    assert acd.remove_queue("q") == []  # a1 leaves it (the last one logged in: nobody waits, nothing overflows)
    assert acd.agent("a1").state == "talking"
    assert states(acd.call_ended("a1")) == [("a1", "acw")]  # the removed queue's wrap-up
    clock.advance(20)
    assert states(acd.tick()) == [("a1", "logged_out")]
    assert acd.agents() == [] and acd.queues() == []


def test_an_agent_removed_while_talking_finishes_the_call_resumed_after_a_restart_then_goes() -> None:
    acd, clock = a1_talking(agents=2, wrapup_seconds=5)
    acd.remove_agent("a1")
    snapshot = acd.snapshot()
    restarted = AcdEngine([QueueSettings("q", wrapup_seconds=5)], agents(("a2", {"q": 0})), clock)
    restarted.restore(snapshot, {"a1": OnCall("c1", "q", clock.now())})
    assert restarted.agent("a1").state == "talking" and restarted.leaving("a1")
    assert states(restarted.call_ended("a1")) == [("a1", "acw")]
    clock.advance(5)
    assert states(restarted.tick()) == [("a1", "logged_out")]
    assert not restarted.has_agent("a1")
    restarted.restore(snapshot)  # not on a call: an unknown agent's saved state is ignored
    assert not restarted.has_agent("a1")
