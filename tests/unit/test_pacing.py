"""The outbound pacing engine (controller/outbound/pacing.py) on a fake clock, and its simulation."""

from __future__ import annotations

import pytest

from controller.clock import FakeClock
from controller.outbound.pacing import Abandon, Connect, IvrOnly, PacingEngine, PacingError, PacingSettings
from controller.outbound.simulation import CampaignScenario, simulate


def engine(mode: str, agents: int = 2, **settings: object) -> tuple[PacingEngine, FakeClock]:
    clock = FakeClock()
    pacing = PacingEngine(PacingSettings(mode=mode, **settings), clock)  # type: ignore[arg-type]
    for index in range(agents):
        pacing.agent_ready(f"a{index}")
    return pacing, clock


def test_progressive_dials_one_call_per_ready_agent_reserved_to_it() -> None:
    pacing, clock = engine("progressive")
    dials = pacing.plan()
    assert [d.agent_id for d in dials] == ["a0", "a1"]
    assert pacing.plan() == []  # both reserved: nothing more until one is reported
    pacing.not_answered(dials[0].id)
    again = pacing.plan()
    assert [d.agent_id for d in again] == ["a0"]
    clock.advance(5)
    assert pacing.answered(dials[1].id) == Connect("a1")
    assert pacing.answered(again[0].id) == Connect("a0")
    assert pacing.plan() == []
    clock.advance(90)
    pacing.finished("a1")
    assert [d.agent_id for d in pacing.plan()] == ["a1"]
    assert pacing.stats().abandoned == 0


def test_preview_skip_gives_the_agent_another_contact() -> None:
    pacing, _ = engine("preview", agents=1)
    first = pacing.plan()
    pacing.cancel(first[0].id)
    second = pacing.plan()
    assert [d.agent_id for d in second] == ["a0"] and second[0].id != first[0].id
    assert pacing.stats().dialed == 1  # a skipped preview is not a dial


def test_a_reserved_agent_who_went_away_abandons_nobody_else() -> None:
    pacing, _ = engine("progressive", agents=1)
    dial = pacing.plan()[0]
    pacing.agent_away("a0")
    assert pacing.answered(dial.id) == Abandon()
    assert pacing.stats().abandoned == 1


def test_predictive_dials_ahead_and_abandons_when_no_agent_is_free() -> None:
    pacing, _ = engine("predictive", agents=10, expected_answer_rate=0.2)
    dials = pacing.plan()
    assert len(dials) > 10  # more lines than agents
    assert all(d.agent_id is None for d in dials)
    decisions = [pacing.answered(d.id) for d in dials[:11]]
    assert [type(d) for d in decisions] == [Connect] * 10 + [Abandon]
    assert {d.agent_id for d in decisions if isinstance(d, Connect)} == {f"a{i}" for i in range(10)}
    stats = pacing.stats()
    assert stats.abandoned == 1 and stats.answered == 11 and stats.abandon_rate == pytest.approx(1 / 11)


def test_predictive_longest_idle_agent_first() -> None:
    pacing, clock = engine("predictive", agents=0)
    pacing.agent_ready("late")
    clock.advance(1)
    pacing.agent_ready("later")
    dial = pacing.plan()[0]
    assert pacing.answered(dial.id) == Connect("late")


def test_blending_counts_only_the_agents_the_campaign_may_use() -> None:
    pacing, _ = engine("progressive", agents=3)
    pacing.agent_away("a2")  # took an inbound call
    pacing.inbound_waiting = 1  # and one more inbound caller waits for these agents: inbound first
    assert [d.agent_id for d in pacing.plan()] == ["a0"]
    pacing, _ = engine("predictive", agents=3)
    for agent in ("a0", "a1", "a2"):
        pacing.agent_away(agent)
    assert pacing.plan() == []


def test_ivr_only_keeps_its_lines_full() -> None:
    pacing, _ = engine("ivr", agents=0, ivr_lines=3)
    dials = pacing.plan()
    assert len(dials) == 3 and pacing.plan() == []
    assert pacing.answered(dials[0].id) == IvrOnly()
    pacing.not_answered(dials[1].id)
    assert len(pacing.plan()) == 1  # the unanswered line is free again, the answered one is in the flow
    pacing.ivr_done(dials[0].id)
    assert len(pacing.plan()) == 1


def test_bad_reports_and_settings_are_refused() -> None:
    pacing, _ = engine("progressive")
    with pytest.raises(PacingError):
        pacing.answered(99)
    with pytest.raises(PacingError):
        pacing.finished("a0")
    with pytest.raises(ValueError, match="dialing mode"):
        PacingSettings(mode="turbo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="abandon_cap"):
        PacingSettings(abandon_cap=3)


@pytest.mark.parametrize("seed", [1, 2])
def test_simulated_campaign_predictive_under_the_cap_and_busier_than_progressive(seed: int) -> None:
    scenario = CampaignScenario(contacts=10_000, agents=20, answer_rate=0.3, handle_seconds=90, seed=seed)
    progressive = simulate(scenario, PacingSettings(mode="progressive"))
    predictive = simulate(scenario, PacingSettings(mode="predictive"))
    assert progressive.abandoned == 0 and progressive.dialed == predictive.dialed == 10_000
    assert 0 < predictive.abandon_rate < 0.03
    assert predictive.window_abandon_max < 0.04  # the hour's rate may overshoot the cap a little, briefly
    assert predictive.occupancy > progressive.occupancy + 0.15
    assert predictive.duration < progressive.duration


def test_simulated_campaign_adapts_to_long_handle_times() -> None:
    """The prior says 120 s; the agents take 300 s: the engine measures it rather than abandon."""
    result = simulate(CampaignScenario(contacts=3000, handle_seconds=300), PacingSettings(mode="predictive"))
    assert result.abandon_rate < 0.03 and result.occupancy > 0.8
