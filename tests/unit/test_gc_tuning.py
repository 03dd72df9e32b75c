"""The garbage collector's set-up after start (controller/app.py `tune_gc_after_start_up`, README "Benchmarks")."""

from __future__ import annotations

import gc

from controller.app import GC_YOUNGEST_THRESHOLD, tune_gc_after_start_up


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
