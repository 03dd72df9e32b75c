import os
import sys

from controller.main import main


def _profile_main_thread(path: str) -> None:
    """A deterministic profile of the main thread (call counts, not samples: README "Benchmarks"), written at exit."""
    import atexit
    import cProfile

    profiler = cProfile.Profile()

    def write() -> None:
        profiler.disable()
        profiler.dump_stats(path)

    atexit.register(write)
    profiler.enable()


if profile_path := os.environ.get("CCC_CPROFILE"):
    _profile_main_thread(profile_path)

sys.exit(main())
