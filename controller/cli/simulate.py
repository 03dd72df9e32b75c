"""`ccctl simulate-day`: a day of the routing engine, simulated offline, per routing strategy (README
"Routing"). The day comes from a scenario file (demo/day-scenario.yaml is an example) or from the
built-in day, changed by options."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field, replace
from typing import Any, get_args

from controller.acd.model import AgentSettings, Strategy
from controller.acd.simulation import (
    Scenario,
    Shift,
    default_scenario,
    estimate_lines,
    results_table,
    simulate,
)
from controller.cli.main import emit
from controller.config import AcdQueueConfig
from controller.settings import SettingsError, load_file_as

STRATEGIES: tuple[str, ...] = get_args(Strategy)
DEFAULT_STRATEGIES = ("longest_idle", "fewest_calls", "weighted_idle", "skills")
_TIME = re.compile(r"([01]\d|2[0-4]):([0-5]\d)")


def minutes_of(text: str) -> int:
    """"08:30" -> 510 (ValueError for anything else)."""
    match = _TIME.fullmatch(text.strip())
    if match is None or (match.group(1) == "24" and match.group(2) != "00"):
        raise ValueError(f"expected a time HH:MM, got {text!r}")
    return int(match.group(1)) * 60 + int(match.group(2))


def span_of(text: str) -> tuple[int, int]:
    """"08:00-16:00" -> (480, 960) minutes (ValueError unless the end is after the start)."""
    start, _, end = text.partition("-")
    first, last = minutes_of(start), minutes_of(end)
    if last <= first:
        raise ValueError(f"expected HH:MM-HH:MM with the end after the start, got {text!r}")
    return first, last


@dataclass(frozen=True)
class AgentGroupConfig:
    """`count` agents alike: skills, shift, queue penalty, and talk times against the mean."""

    count: int
    shift: str  # HH:MM-HH:MM
    name: str = "agent"
    skills: dict[str, int] = field(default_factory=dict)
    penalty: int = 0
    talk_factor: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 10_000:
            raise ValueError(f"count: expected 1 to 10000 agents, got {self.count!r}")
        span_of(self.shift)
        if not self.talk_factor > 0:
            raise ValueError(f"talk_factor: expected a number above 0, got {self.talk_factor!r}")


@dataclass(frozen=True)
class DayScenarioConfig:
    """A scenario file (README "Routing": the day's simulation)."""

    queue: AcdQueueConfig
    agents: list[AgentGroupConfig]
    calls: list[float]  # expected calls per interval, from `start`
    start: str = "08:00"
    interval_minutes: int = 30
    talk_seconds: float = 180.0
    talk_cv: float = 0.8
    patience_seconds: float = 150.0  # 0: callers never hang up while waiting
    answer_seconds: float = 3.0
    seed: int = 1
    days: int = 1
    strategies: list[str] = field(default_factory=list)  # empty: the queue's own strategy

    def __post_init__(self) -> None:
        minutes_of(self.start)
        if not self.calls or any(c < 0 for c in self.calls if c is not None):
            raise ValueError("calls: expected a list of expected calls per interval (0 or more each)")
        if self.interval_minutes not in (15, 30, 60):
            raise ValueError(f"interval_minutes: expected 15, 30 or 60, got {self.interval_minutes!r}")
        if not self.talk_seconds > 0 or not self.answer_seconds >= 0 or not self.patience_seconds >= 0:
            raise ValueError("talk_seconds: expected above 0 (answer_seconds, patience_seconds: 0 or more)")
        if not 1 <= self.days <= 100:
            raise ValueError(f"days: expected 1 to 100, got {self.days!r}")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"strategies: unknown {unknown[0]!r} (one of: {', '.join(STRATEGIES)})")


def scenario_from_file(config: DayScenarioConfig) -> Scenario:
    from controller.plugins.acd.services import queue_settings  # the production mapping of a queue's settings

    queue = queue_settings(config.queue)
    start = minutes_of(config.start)
    shifts = []
    for group in config.agents:
        first, last = span_of(group.shift)
        for n in range(group.count):
            agent_id = f"{group.name}{n + 1}"
            agent = AgentSettings(agent_id, agent_id, agent_id, f"sim-{agent_id}", skills=dict(group.skills),
                                  queues={queue.name: group.penalty})
            shifts.append(Shift(agent, 60.0 * (first - start), 60.0 * (last - start), group.talk_factor))
    return Scenario(queue, shifts, list(config.calls), interval_seconds=60.0 * config.interval_minutes,
                    talk_seconds=config.talk_seconds, talk_cv=config.talk_cv,
                    patience_seconds=config.patience_seconds, answer_seconds=config.answer_seconds, seed=config.seed)


def scenario_from_options(args: argparse.Namespace) -> Scenario:
    """The built-in day, with what the options change."""
    scenario = default_scenario()
    if args.calls_per_hour is not None:
        first, last = span_of(args.hours)
        halves = max(1, (last - first) // 30)
        scenario = replace(scenario, calls_per_interval=[args.calls_per_hour / 2] * halves)
    if args.agents is not None:
        length = len(scenario.calls_per_interval) * scenario.interval_seconds
        levels = (9, 6, 3)
        shifts = [Shift(AgentSettings(f"a{n + 1}", f"a{n + 1}", f"a{n + 1}", f"sim-{n}",
                                      skills={"support": levels[n % 3]}, queues={scenario.queue.name: 0}),
                        0.0, length) for n in range(args.agents)]
        scenario = replace(scenario, shifts=shifts)
    queue = scenario.queue
    if args.wrapup is not None:
        queue = replace(queue, wrapup_seconds=args.wrapup)
    return replace(scenario, queue=queue, seed=args.seed if args.seed is not None else scenario.seed,
                   talk_seconds=args.talk if args.talk is not None else scenario.talk_seconds,
                   patience_seconds=args.patience if args.patience is not None else scenario.patience_seconds)


def cmd_simulate_day(args: argparse.Namespace) -> int:
    days = args.days
    strategies: list[str] = list(args.strategy or [])
    try:
        if args.scenario:
            config = load_file_as(DayScenarioConfig, args.scenario)
            scenario = scenario_from_file(config)
            days = days or config.days
            strategies = strategies or list(config.strategies)
        else:
            scenario = scenario_from_options(args)
    except SettingsError as exc:
        print("ccctl simulate-day: the scenario has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"ccctl simulate-day: {exc}", file=sys.stderr)
        return 2
    strategies = strategies or (list(DEFAULT_STRATEGIES) if not args.scenario else [scenario.queue.strategy])
    results = [simulate(scenario, strategy, days=days or 1) for strategy in strategies]
    data = {"days": days or 1, "agents": len(scenario.shifts),
            "expected_calls_per_day": sum(scenario.calls_per_interval),
            "service_level_seconds": scenario.queue.service_level_seconds,
            "results": [result.as_dict() for result in results]}

    def text(_: Any) -> str:
        head = (f"{data['days']} simulated day(s), {data['agents']} agents,"
                f" ~{data['expected_calls_per_day']:.0f} calls a day, queue {scenario.queue.name!r}"
                f"{' with escalation' if scenario.queue.escalation else ''}")
        estimates = "\n".join(f"-- {r.strategy}\n{estimate_lines(r)}" for r in results)
        return f"{head}\n{results_table(results, scenario.queue.service_level_seconds)}\n{estimates}"

    return emit(args, data, text)


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def register(sub: Any) -> None:
    command = sub.add_parser(
        "simulate-day", help="simulate a day of the routing engine per strategy (offline)",
        description="Runs offline: the real routing engine on a fake clock, random callers (Poisson by interval,"
                    " log-normal talk times, exponential patience) and agents' shifts. Prints service level, ASA,"
                    " abandon rate and occupancy per strategy, and the wait estimates' error.")
    command.add_argument("--scenario", help="a scenario file (YAML, see demo/day-scenario.yaml)")
    command.add_argument("--strategy", action="append", choices=STRATEGIES,
                         help="a strategy to simulate (repeat for several; default: the scenario's, or"
                              f" {', '.join(DEFAULT_STRATEGIES)})")
    command.add_argument("--days", type=int, choices=range(1, 101), metavar="N", help="days (seeds) per strategy")
    command.add_argument("--seed", type=int, help="the first day's random seed (built-in day)")
    command.add_argument("--calls-per-hour", type=positive, help="a flat volume instead of the built-in day's curve")
    command.add_argument("--hours", default="08:00-20:00", help="the day's span with --calls-per-hour")
    command.add_argument("--agents", type=int, choices=range(1, 10_001), metavar="N",
                         help="N agents (levels 9, 6, 3 in turn) all day instead of the built-in teams and shifts")
    command.add_argument("--talk", type=positive, help="mean talk time, seconds")
    command.add_argument("--wrapup", type=float, help="wrap-up after each call, seconds")
    command.add_argument("--patience", type=float, help="callers' mean patience, seconds (0: nobody hangs up)")
    command.add_argument("--json", action="store_true", help="machine-readable output")
    command.set_defaults(func=cmd_simulate_day)
