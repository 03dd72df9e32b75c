import os
import sys

from controller.main import main


def _profile_main_thread(path: str, on_signal: bool) -> None:
    """A deterministic profile of the main thread (call counts, not samples: README "Benchmarks"), written at exit.
    `on_signal` (CCC_CPROFILE_WINDOW=1): only between a first and a second SIGUSR1, written at the second, so that
    a window of steady calls is profiled without the start-up and the stop."""
    import atexit
    import cProfile
    import signal

    profiler = cProfile.Profile()
    toggles = [0]

    def write() -> None:
        profiler.disable()
        profiler.dump_stats(path)

    def toggle(_signum: int, _frame: object) -> None:
        toggles[0] += 1
        if toggles[0] == 1:
            profiler.enable()
        elif toggles[0] == 2:
            write()

    if on_signal:
        signal.signal(signal.SIGUSR1, toggle)
        return
    atexit.register(write)
    profiler.enable()


if profile_path := os.environ.get("CCC_CPROFILE"):
    _profile_main_thread(profile_path, os.environ.get("CCC_CPROFILE_WINDOW") == "1")

sys.exit(main())
