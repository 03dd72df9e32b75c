"""Where a running controller's memory goes: opt-in allocation tracing (README "Memory growth: tracemalloc").

`CCC_TRACEMALLOC=<frames>` starts `tracemalloc` when the process starts, keeping that many frames of each
allocation's traceback. Each SIGUSR2 then takes a snapshot and writes, to `<data_dir>/tracemalloc-<UTC time>.txt`,
what grew since the previous SIGUSR2 (the first one: since start-up): the allocation sites and the tracebacks with
the largest growth, and the kinds of objects whose number grew, with a one-line summary in the log. Unset (the
default) nothing is traced and the process costs nothing more; SIGUSR2 only logs how to turn it on.
"""

from __future__ import annotations

import asyncio
import gc
import linecache
import logging
import os
import time
import tracemalloc
from collections import Counter
from pathlib import Path

ENVIRONMENT = "CCC_TRACEMALLOC"
TOP = 25  # entries per table in the report
MAX_FRAMES = 100
log = logging.getLogger("controller.memtrace")

# Allocations of the tracing itself, of its reports (the source lines they quote) and of imports are noise in a
# report about what the running code keeps.
_NOISE = (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, linecache.__file__),
          tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
          tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"), tracemalloc.Filter(False, "<unknown>"))


def frames_from_environment(environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """The frames asked for by CCC_TRACEMALLOC; 0 when unset or empty. Raises ValueError on anything else."""
    text = environ.get(ENVIRONMENT, "").strip()
    if not text:
        return 0
    if not text.isdigit() or not 1 <= int(text) <= MAX_FRAMES:
        raise ValueError(f"{ENVIRONMENT} must be a number of frames from 1 to {MAX_FRAMES}, not {text!r}")
    return int(text)


def rss_bytes() -> int:
    """This process's resident set (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _kib(size: int) -> str:
    return f"{size / 1024:+,.1f} KiB"


def _object_counts() -> Counter[str]:
    """Live objects tracked by the garbage collector, by type name (module-qualified)."""
    return Counter(f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.get_objects())


class MemoryTrace:
    """The snapshots between two SIGUSR2s; `report()` compares the newest to the previous one."""

    def __init__(self, frames: int, data_dir: Path) -> None:
        self.frames = frames
        self.data_dir = data_dir
        self._previous: tracemalloc.Snapshot | None = None
        self._previous_objects: Counter[str] = Counter()
        self._previous_rss = 0
        self._previous_at = time.monotonic()
        self._running: asyncio.Task[Path] | None = None
        self._reports = 0

    def start(self) -> None:
        """Trace from now on; the baseline the first report compares to is taken here."""
        if not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)
        self._previous = tracemalloc.take_snapshot().filter_traces(_NOISE)
        self._previous_objects = _object_counts()
        self._previous_rss = rss_bytes()
        self._previous_at = time.monotonic()

    def report(self) -> Path:
        """Take a snapshot, write its differences against the previous one to a file (returned); blocking."""
        snapshot = tracemalloc.take_snapshot().filter_traces(_NOISE)
        objects, rss, now = _object_counts(), rss_bytes(), time.monotonic()
        previous = self._previous if self._previous is not None else snapshot
        by_line = snapshot.compare_to(previous, "lineno")
        by_traceback = snapshot.compare_to(previous, "traceback")
        traced, peak = tracemalloc.get_traced_memory()
        growth = sum(stat.size_diff for stat in by_line)
        grown_types = [(name, count - self._previous_objects.get(name, 0)) for name, count in objects.items()]
        grown_types = sorted((item for item in grown_types if item[1] > 0), key=lambda item: -item[1])[:TOP]
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        lines = [f"tracemalloc report {stamp}: {now - self._previous_at:.0f} s since the previous snapshot "
                 f"({self.frames} frames per traceback)",
                 f"traced now {traced / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB), {_kib(growth)} since the "
                 f"previous snapshot; RSS {rss / 2**20:.1f} MiB ({_kib(rss - self._previous_rss)}); tracing itself "
                 f"{tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MiB",
                 "(RSS growing while the traced memory does not: memory freed in Python but not returned by malloc)",
                 "", f"== the {TOP} allocation sites that grew most =="]
        lines += [f"{_kib(stat.size_diff)} ({stat.count_diff:+d} blocks), now {stat.size / 1024:,.1f} KiB in "
                  f"{stat.count} blocks: {stat.traceback[0].filename}:{stat.traceback[0].lineno}"
                  for stat in by_line[:TOP]]
        lines += ["", f"== the {TOP} tracebacks that grew most (most recent call last) =="]
        for stat in by_traceback[:TOP]:
            lines.append(f"{_kib(stat.size_diff)} ({stat.count_diff:+d} blocks), now {stat.size / 1024:,.1f} KiB "
                         f"in {stat.count} blocks")
            lines += [f"    {line}" for line in stat.traceback.format()]
        lines += ["", f"== the {TOP} kinds of objects (tracked by the garbage collector) that grew most =="]
        lines += [f"{count:+8d}  now {objects[name]:8d}  {name}" for name, count in grown_types]
        self._reports += 1
        path = self.data_dir / f"tracemalloc-{stamp}-{self._reports}.txt"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        top = by_line[0] if by_line else None
        log.warning("tracemalloc: traced %.1f MiB, %s since the previous snapshot, RSS %.1f MiB; most grown: %s; "
                    "written to %s", traced / 2**20, _kib(growth), rss / 2**20,
                    f"{top.traceback[0].filename}:{top.traceback[0].lineno} {_kib(top.size_diff)}" if top else "-",
                    path)
        self._previous, self._previous_objects, self._previous_rss, self._previous_at = snapshot, objects, rss, now
        return path

    def on_signal(self) -> None:
        """SIGUSR2: the report in a worker thread (the event loop keeps serving between its GIL slices); a
        signal while one is being written is ignored."""
        if self._running is not None and not self._running.done():
            log.warning("tracemalloc: a report is still being written; SIGUSR2 ignored")
            return
        self._running = asyncio.get_running_loop().create_task(asyncio.to_thread(self.report))
        self._running.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Path]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("tracemalloc: the report could not be written: %s", exc)


def not_tracing() -> None:
    """SIGUSR2 without CCC_TRACEMALLOC (whose default action would end the process)."""
    log.warning("SIGUSR2: allocation tracing is off; start the controller with %s=<frames> (e.g. 10) to have "
                "SIGUSR2 write allocation reports (README \"Memory growth: tracemalloc\")", ENVIRONMENT)
