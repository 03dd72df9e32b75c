"""CCC_TRACEMALLOC's allocation reports (controller/memtrace.py): what grew between two reports, by site."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.memtrace import MemoryTrace, frames_from_environment

KEPT: list[object] = []  # what the "leaking" code below keeps


class Leaked:
    """A kind of object the test leaks, to be found by name in the report."""


def keep_first_batch() -> None:
    KEPT.extend(bytearray(1000) for _ in range(500))  # the first batch's allocation site


def keep_second_batch() -> None:
    KEPT.extend(Leaked() for _ in range(2000))  # the second batch's allocation site


@pytest.fixture
def trace(tmp_path: Path) -> Iterator[MemoryTrace]:
    was_tracing = tracemalloc.is_tracing()
    memory_trace = MemoryTrace(5, tmp_path)
    memory_trace.start()
    yield memory_trace
    KEPT.clear()
    if not was_tracing:
        tracemalloc.stop()


def grown_sites(report: str) -> str:
    """The lines of the report's allocation sites that grew."""
    sites = report.split("== the 25 allocation sites that grew most ==")[1].split("== the 25 tracebacks")[0]
    return "\n".join(line for line in sites.splitlines() if line.startswith("+") and not line.startswith("+0.0 "))


def test_each_report_names_what_grew_since_the_previous_one(trace: MemoryTrace, tmp_path: Path) -> None:
    keep_first_batch()
    first = trace.report()
    assert first.parent == tmp_path and first.name.startswith("tracemalloc-") and first.name.endswith("-1.txt")
    text = first.read_text()
    assert "traced now" in text and "RSS" in text
    assert f"{__file__}:{keep_first_batch.__code__.co_firstlineno + 1}" in grown_sites(text)
    keep_second_batch()
    second = trace.report().read_text()
    sites = grown_sites(second)
    # The second batch's site grew, with its tracebacks and its objects counted by type; the first batch, kept but
    # no longer growing, is not among the growth.
    assert f"{__file__}:{keep_second_batch.__code__.co_firstlineno + 1}" in sites
    assert f"{__file__}:{keep_first_batch.__code__.co_firstlineno + 1}" not in sites
    assert "keep_second_batch()" in second.split("tracebacks that grew most")[1]
    assert "+2000  now" in second and f"{__name__}.Leaked" in second


def test_ccc_tracemalloc_takes_a_number_of_frames_and_refuses_anything_else() -> None:
    assert frames_from_environment({}) == 0 and frames_from_environment({"CCC_TRACEMALLOC": ""}) == 0
    assert frames_from_environment({"CCC_TRACEMALLOC": "10"}) == 10
    for wrong in ("yes", "0", "-3", "1000"):
        with pytest.raises(ValueError, match="CCC_TRACEMALLOC must be a number of frames from 1 to 100"):
            frames_from_environment({"CCC_TRACEMALLOC": wrong})


def test_the_controller_refuses_to_start_with_a_wrong_ccc_tracemalloc(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from controller.main import main

    config = tmp_path / "controller.yaml"
    config.write_text(f"data_dir: {tmp_path}\n"
                      "tokens:\n  - {name: ops, role: admin, token: '0123456789abcdef0123456789abcdef'}\n")
    monkeypatch.setenv("CCC_TRACEMALLOC", "all")
    assert main(["--config", str(config)]) == 2
    assert "CCC_TRACEMALLOC must be a number of frames from 1 to 100, not 'all'" in capsys.readouterr().err
    assert not tracemalloc.is_tracing() and not list(tmp_path.glob("tracemalloc-*"))
