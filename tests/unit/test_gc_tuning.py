"""The garbage collector (controller/collector.py): its set-up after start, and its passes held back while an offer
rings (README "Benchmarks")."""

from __future__ import annotations

import asyncio
import gc

from controller.collector import GC_YOUNGEST_THRESHOLD, CollectorPause, tune_gc_after_start_up


def test_start_up_objects_are_frozen_and_the_youngest_generation_waits_longer() -> None:
    before = gc.get_threshold()
    start_up = [{"kept": n} for n in range(100)]  # stands for the configuration built at start
    try:
        tune_gc_after_start_up()
        assert gc.get_freeze_count() >= len(start_up)
        assert not any(item is start_up for item in gc.get_objects())  # frozen: no pass walks it
        assert gc.get_threshold() == (GC_YOUNGEST_THRESHOLD, *before[1:]) and before[0] < GC_YOUNGEST_THRESHOLD
        later = [{"call": 1}]
        assert any(item is later for item in gc.get_objects())  # what comes after is collected as before
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_a_pause_holds_the_collector_back_until_its_last_holder_releases_or_its_limit() -> None:
    """`CollectorPause` (controller/collector.py): the offers of agents made ready together hold the collector back
    until every one of their phones is dialled, never longer than the limit; a release after the limit does nothing."""
    pause = CollectorPause(limit=0.05)
    first, second = pause.hold(), pause.hold()
    assert not gc.isenabled() and pause.holding and pause.pauses == 1
    pause.release(first)
    assert not gc.isenabled()  # the second offer is not dialled yet
    pause.release(second)
    assert gc.isenabled() and not pause.holding
    late = pause.hold()
    assert not gc.isenabled() and pause.pauses == 2
    await asyncio.sleep(0.1)
    assert gc.isenabled() and not pause.holding  # the limit: the collector runs, however many hold it
    again = pause.hold()
    pause.release(late)  # stale: it does not end the new pause
    assert not gc.isenabled()
    pause.release(again)
    assert gc.isenabled()


async def test_a_pause_leaves_a_collector_disabled_by_someone_else_as_it_is() -> None:
    gc.disable()
    try:
        pause = CollectorPause()
        token = pause.hold()
        pause.release(token)
        assert not gc.isenabled() and pause.pauses == 0  # not enabled behind its owner's back
    finally:
        gc.enable()
