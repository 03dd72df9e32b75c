"""The day's simulation (the real engine on a fake clock) and `ccctl simulate-day`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from controller.acd.model import AgentSettings, EscalationStep, QueueSettings
from controller.acd.simulation import Scenario, Shift, default_scenario, simulate
from controller.cli.main import main

REPO = Path(__file__).resolve().parents[2]


def test_every_call_offered_leaves_once_and_the_day_repeats_with_its_seed() -> None:
    scenario = default_scenario(seed=4)
    first, again = simulate(scenario), simulate(scenario)
    assert first.offered == first.answered + first.abandoned + first.overflowed == len(first.waits) + \
        first.abandoned + first.overflowed
    assert sum(first.calls_by_agent.values()) == first.answered
    assert first.as_dict() == again.as_dict()
    assert simulate(default_scenario(seed=5)).offered != first.offered


def test_arrivals_follow_the_interval_volumes() -> None:
    """Poisson by interval: over ten days the count is within 3 % of the expected volume."""
    scenario = default_scenario()
    offered = simulate(scenario, days=10).offered
    expected = 10 * sum(scenario.calls_per_interval)
    assert abs(offered - expected) < 0.03 * expected


def test_the_skills_strategy_loads_the_experts_and_weighted_idle_spreads_the_work() -> None:
    def expert_share(strategy: str) -> float:
        result = simulate(default_scenario(), strategy, days=2)
        experts = [a for a in result.busy_seconds if a.startswith("expert")]
        return result.occupancy(experts) or 0.0

    skills, weighted, idle = (expert_share(s) for s in ("skills", "weighted_idle", "longest_idle"))
    assert skills > weighted > idle * 1.02  # the best agents take more calls, but under skills most of all
    assert skills > 0.75


def test_a_tiny_day_by_hand_service_level_and_occupancy() -> None:
    """One agent, a few calls an hour: each is answered once the phone is picked up (2 s) unless the agent
    is on another call; occupancy is the ring + talk + wrap-up share of the agent's logged-in time."""
    queue = QueueSettings("q", wrapup_seconds=10, announce_interval=0, no_agents="wait")
    agent = AgentSettings("a1", "", "", "", queues={"q": 0})
    scenario = Scenario(queue, [Shift(agent, 0, 4 * 3600)], [2.0] * 4, interval_seconds=3600, talk_seconds=60,
                        talk_cv=0.01, patience_seconds=0, answer_seconds=2, seed=3)
    result = simulate(scenario)
    assert result.offered == result.answered > 0 and result.abandoned == 0
    assert min(result.waits) == pytest.approx(2.0) and result.asa is not None and result.asa >= 2.0
    assert result.answered_within_sl == sum(1 for wait in result.waits if wait <= 20)
    busy = result.answered * (2 + 60 + 10)
    assert result.occupancy() == pytest.approx(busy / (4 * 3600), rel=0.05)


def test_escalation_in_the_day_delays_the_juniors_calls() -> None:
    plain = simulate(default_scenario())
    strict = simulate(default_scenario(escalation=(EscalationStep(0, min_level=7), EscalationStep(60))))
    juniors = [a for a in plain.calls_by_agent if a.startswith("junior")]
    assert sum(strict.calls_by_agent.get(a, 0) for a in juniors) < sum(plain.calls_by_agent[a] for a in juniors)
    assert (strict.asa or 0) > (plain.asa or 0)


def test_ccctl_simulate_day_from_the_demo_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-day", "--scenario", str(REPO / "demo" / "day-scenario.yaml"), "--days", "1"]) == 0
    out = capsys.readouterr().out
    assert "queue 'support' with escalation" in out
    for strategy in ("longest_idle", "weighted_idle", "skills"):
        assert f"\n{strategy} " in out
    assert "wait estimate: error median" in out


def test_ccctl_simulate_day_from_options_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate-day", "--agents", "12", "--calls-per-hour", "120", "--hours", "09:00-12:00",
                 "--strategy", "fewest_calls", "--strategy", "skills", "--talk", "200", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["agents"] == 12 and data["expected_calls_per_day"] == 360
    assert [r["strategy"] for r in data["results"]] == ["fewest_calls", "skills"]
    assert all(0 < r["service_level"] <= 1 and r["offered"] > 0 for r in data["results"])


@pytest.mark.parametrize(("text", "message"), [
    ("queue: {name: q}\nagents: []\ncalls: []\n", "calls: expected a list of expected calls per interval"),
    ("queue: {name: q}\nagents: [{count: 2, shift: '16:00-08:00'}]\ncalls: [1]\n",
     "expected HH:MM-HH:MM with the end after the start"),
    ("queue: {name: q}\nagents: [{count: 1, shift: '08:00-09:00'}]\ncalls: [1]\nstrategies: [fastest]\n",
     "strategies: unknown 'fastest'"),
    ("queue: {name: q, escalation: [{after: 5}]}\nagents: [{count: 1, shift: '08:00-09:00'}]\ncalls: [1]\n",
     "the first step is the rule from the start"),
])
def test_a_bad_scenario_file_says_where_and_what(text: str, message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "day.yaml"
    path.write_text(text)
    assert main(["simulate-day", "--scenario", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:" in err and message in err, err


def test_shift_ends_during_a_call_the_agent_leaves_after_it() -> None:
    queue = QueueSettings("q", wrapup_seconds=0, announce_interval=0, no_agents="wait")
    agent = AgentSettings("a1", "", "", "", queues={"q": 0})
    scenario = Scenario(queue, [Shift(agent, 0, 1800)], [30.0], interval_seconds=1800, talk_seconds=300,
                        patience_seconds=60, seed=2)
    result = simulate(replace(scenario))
    assert result.offered == result.answered + result.abandoned + result.overflowed
    assert result.busy_seconds["a1"] + result.ready_seconds["a1"] >= 1800 - 1  # worked the whole shift
