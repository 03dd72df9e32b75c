"""Outbound pacing (controller/outbound/pacing.py) on a simulated campaign: 10,000 contacts, 20 agents,
30 % answer rate, 90 s handle time (log-normal), the others busy / no answer (30 s ring limit) / failed.
Progressive against predictive (abandon cap 3 % over a rolling hour): abandon rate and agent occupancy."""

from __future__ import annotations

import time

from controller.outbound.pacing import PacingSettings
from controller.outbound.simulation import CampaignScenario, simulate


def main() -> None:
    for seed in (1, 2, 3):
        scenario = CampaignScenario(contacts=10_000, agents=20, answer_rate=0.30, handle_seconds=90.0, seed=seed)
        print(f"seed {seed}: {scenario.contacts} contacts, {scenario.agents} agents, "
              f"{100 * scenario.answer_rate:.0f}% answer, {scenario.handle_seconds:.0f} s handle")
        for mode in ("progressive", "predictive"):
            started = time.perf_counter()
            result = simulate(scenario, PacingSettings(mode=mode, abandon_cap=0.03))
            print(f"  {result.line()}  ({time.perf_counter() - started:.1f} s)")
