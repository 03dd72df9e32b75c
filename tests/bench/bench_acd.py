"""The ACD engine alone (pure, fake clock): cost of a routing decision at a large center's size.

10,000 agents (each in 3 of 500 queues, with skills), 10,000 calls waiting. Printed: microseconds
per operation for the decisions that matter — a call arriving (enqueue: position, offers if an
agent is free), an agent going ready (which waiting call: priority, aging, skills across their
queues), an answer, a call's end (ACW), and the timer tick — and the engine's memory.
"""

from __future__ import annotations

import os
import random
import time
import tracemalloc

from controller.acd.engine import AcdEngine
from controller.acd.model import AgentSettings, Offer, QueueSettings
from controller.clock import FakeClock

AGENTS = int(os.environ.get("CCC_BENCH_AGENTS", "10000"))
QUEUES = int(os.environ.get("CCC_BENCH_QUEUES", "500"))
WAITING = int(os.environ.get("CCC_BENCH_WAITING", "10000"))
SAMPLES = int(os.environ.get("CCC_BENCH_SAMPLES", "2000"))


def build(rng: random.Random) -> tuple[AcdEngine, FakeClock]:
    clock = FakeClock(1_800_000_000.0)
    queues = [QueueSettings(name=f"q{i}", skills={"mandarin": 1} if i % 5 == 0 else {}, wrapup_seconds=30,
                            max_wait=86_400, announce_interval=0, no_agents="wait") for i in range(QUEUES)]
    agents = []
    for i in range(AGENTS):
        chosen = rng.sample(range(QUEUES), 3)
        agents.append(AgentSettings(id=f"a{i}", name="", number=str(i), endpoint=f"e{i}",
                                    skills={"mandarin": rng.randint(0, 10)},
                                    queues={f"q{q}": rng.randint(0, 2) for q in chosen}))
    return AcdEngine(queues, agents, clock), clock


def timed(label: str, operations: list[tuple[str, tuple[object, ...]]], engine: AcdEngine) -> list[object]:
    decisions: list[object] = []
    started = time.perf_counter()
    for name, args in operations:
        decisions.extend(getattr(engine, name)(*args))
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {len(operations):>7} ops {elapsed / max(1, len(operations)) * 1e6:>10.1f} µs/op")
    return decisions


def main() -> None:
    rng = random.Random(7)
    tracemalloc.start()
    engine, clock = build(rng)
    for i in range(AGENTS):
        engine.login(f"a{i}", ready=False)
    # 10,000 calls waiting, nobody ready: each enqueue computes a position, no offer.
    calls = [(f"c{i}", f"q{rng.randrange(QUEUES)}", rng.randint(0, 5)) for i in range(WAITING)]
    for n, (call_id, queue, priority) in enumerate(calls):
        clock.advance(0.01)
        engine.enqueue(call_id, queue, priority=priority)
        if n == WAITING - SAMPLES - 1:
            break
    rest = calls[WAITING - SAMPLES:]
    print(f"{AGENTS} agents in {QUEUES} queues, {WAITING} calls waiting")
    timed("enqueue (nobody ready)", [("enqueue", (c, q)) for c, q, _ in rest], engine)
    _, memory = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Agents go ready one by one: each picks the best waiting call across its queues.
    ready_agents = [f"a{i}" for i in rng.sample(range(AGENTS), SAMPLES)]
    offers = [d for d in timed("agent ready -> offer (routing decision)", [("ready", (a,)) for a in ready_agents],
                               engine) if isinstance(d, Offer)]
    timed("answered", [("answered", (o.call_id, o.agent_id)) for o in offers], engine)
    clock.advance(120)
    timed("call ended (-> ACW)", [("call_ended", (o.agent_id,)) for o in offers], engine)
    started = time.perf_counter()
    ticks = 200
    for _ in range(ticks):
        clock.advance(0.5)
        engine.tick()
    print(f"{'timer tick (ACW ends, ready agents offered)':<44} {ticks:>7} ops "
          f"{(time.perf_counter() - started) / ticks * 1e6:>10.1f} µs/op")
    print(f"offers made: {len(offers)} of {SAMPLES} ready agents; engine memory at {WAITING} waiting calls:"
          f" {memory / 1e6:.1f} MB")
    bench_arrivals()


def bench_arrivals() -> None:
    """The full-path bench's routing: a call arrives while the agents of its queue are ready (100 agents in 2
    queues, 500 in 20): the engine picks among the ready agents of the queue; each call is then abandoned, so
    the agents are all ready again for the next."""
    for agents, queues in ((100, 2), (500, 20)):
        clock = FakeClock(1_800_000_000.0)
        engine = AcdEngine([QueueSettings(name=f"q{i}", wrapup_seconds=0, max_wait=86_400, announce_interval=0)
                            for i in range(queues)],
                           [AgentSettings(id=f"a{i}", name="", number=str(i), endpoint=f"e{i}",
                                          queues={f"q{i % queues}": 0}) for i in range(agents)], clock)
        for i in range(agents):
            engine.login(f"a{i}")
            clock.advance(0.01)
        operations: list[tuple[str, tuple[object, ...]]] = []
        for n in range(SAMPLES):
            operations += [("enqueue", (f"arrival{n}", f"q{n % queues}")), ("abandon", (f"arrival{n}",))]
        offers = [d for d in timed(f"call arrives, {agents // queues} ready (+ abandon)", operations, engine)
                  if isinstance(d, Offer)]
        assert len(offers) == SAMPLES, len(offers)


if __name__ == "__main__":
    main()
