"""A simulated day of the real routing engine (pure, fake clock) per routing setting, and the wait
estimates callers heard against the waits that followed.

The day (`controller.acd.simulation.default_scenario`): ~1,600 calls 08:00-20:00 with two peaks,
18 agents of three skill levels on two shifts, log-normal talk times (experts quicker), callers who
hang up after an exponential patience. Printed per setting: service level, ASA, abandon rate,
occupancy (all agents; the least and most occupied agent: how evenly the work is spread). Then the
wait-estimate error (median, 90th percentile) of the engine's estimate and of the former formula.
Seeds are fixed: the figures are repeatable. `CCC_BENCH_DAYS` runs more days (seeds) per setting.
"""

from __future__ import annotations

import os
import time

from controller.acd.model import EscalationStep, Strategy
from controller.acd.simulation import default_scenario, estimate_lines, results_table, simulate

DAYS = int(os.environ.get("CCC_BENCH_DAYS", "3"))
STRATEGIES: tuple[Strategy, ...] = ("longest_idle", "fewest_calls", "weighted_idle", "skills", "round_robin")
#: Regular agents and experts (level >= 5) first, juniors too after 10 s (as in demo/day-scenario.yaml).
ESCALATION = (EscalationStep(0, min_level=5), EscalationStep(10))


def main() -> None:
    started = time.perf_counter()
    variants = [(strategy, strategy, ()) for strategy in STRATEGIES]
    variants.append(("longest_idle + escalation", "longest_idle", ESCALATION))
    results = []
    for label, strategy, escalation in variants:
        results.append(simulate(default_scenario(strategy=strategy, escalation=escalation), days=DAYS, label=label))
    scenario = default_scenario()
    print(f"{DAYS} simulated day(s) per setting, {len(scenario.shifts)} agents,"
          f" ~{sum(scenario.calls_per_interval):.0f} calls a day")
    print(results_table(results, scenario.queue.service_level_seconds))
    for result in results:
        print(f"-- {result.strategy}\n{estimate_lines(result)}")
    print(f"simulated {DAYS * len(variants)} days in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
