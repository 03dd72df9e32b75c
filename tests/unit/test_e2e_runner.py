"""tools/e2e.py: how the e2e files are split into groups, and what is read back from the groups' reports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import e2e  # noqa: E402

from tests.e2e import strays  # noqa: E402


def files(*names: str) -> list[Path]:
    return [REPO / "tests" / "e2e" / name for name in names]


def test_longest_files_first_to_the_least_loaded_group() -> None:
    durations = {f"tests/e2e/{n}": s for n, s in (("a.py", 100), ("b.py", 60), ("c.py", 50), ("d.py", 40),
                                                  ("e.py", 10))}
    groups = e2e.plan(files("a.py", "b.py", "c.py", "d.py", "e.py"), 2, durations)
    assert [[f.name for f in g.files] for g in groups] == [["a.py", "d.py"], ["b.py", "c.py", "e.py"]]
    assert [g.estimate for g in groups] == [140, 120]


def test_a_file_not_recorded_counts_as_the_mean_and_no_group_is_empty() -> None:
    durations = {"tests/e2e/a.py": 100.0, "tests/e2e/b.py": 20.0}
    groups = e2e.plan(files("a.py", "b.py", "new.py"), 2, durations)
    assert {f.name: g.number for g in groups for f in g.files} == {"a.py": 1, "new.py": 2, "b.py": 2}
    assert groups[1].estimate == 80.0
    assert len(e2e.plan(files("a.py"), 3, durations)) == 1  # more groups than files: one per file


def test_failures_errors_and_seconds_per_file_from_the_groups_reports(tmp_path: Path) -> None:
    report = tmp_path / "group-1.xml"
    report.write_text("""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.e2e.test_x" name="test_ok" time="2.5"/>
<testcase classname="tests.e2e.test_x" name="test_bad[sqlite]" time="1.0"><failure message="boom"/></testcase>
<testcase classname="tests.e2e.test_y.TestThing" name="test_setup" time="3.0"><error message="fixture"/></testcase>
<testcase classname="tests.e2e.test_y.TestThing" name="test_skip" time="0.5"><skipped message="no"/></testcase>
</testsuite></testsuites>""")
    outcome, merged = e2e.read_junit([report, tmp_path / "group-2.xml"])  # group 2 crashed: no report
    assert outcome.tests == 4 and outcome.skipped == 1
    assert outcome.failed == ["tests.e2e.test_x::test_bad[sqlite]", "tests.e2e.test_y.TestThing::test_setup"]
    assert outcome.seconds_by_file == {"tests/e2e/test_x.py": 3.5, "tests/e2e/test_y.py": 3.5}
    assert len(merged.findall("testsuite")) == 1


def test_a_failed_test_is_named_for_its_rerun_as_pytest_names_it() -> None:
    assert e2e.node_id("tests.e2e.test_x::test_bad[sqlite]") == "tests/e2e/test_x.py::test_bad[sqlite]"
    assert e2e.node_id("tests.e2e.test_y.TestThing::test_setup") == "tests/e2e/test_y.py::TestThing::test_setup"


def test_a_test_that_passes_alone_is_flaky_one_that_fails_again_is_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []

    def fake_run(command: list[str], **_: object) -> subprocess.CompletedProcess[bytes]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 0 if command[-1].endswith("test_flaky") else 1)

    monkeypatch.setattr(e2e, "OUT", tmp_path)
    monkeypatch.setattr(e2e.subprocess, "run", fake_run)
    flaky, failed = e2e.rerun_alone(["tests.e2e.test_x::test_flaky", "tests.e2e.test_x::test_broken"], "ns-1", [])
    assert flaky == ["tests.e2e.test_x::test_flaky"] and failed == ["tests.e2e.test_x::test_broken"]
    assert [c[:2] for c in ran] == [[str(e2e.CCC_NS), "ns-1"]] * 2  # in a namespace, one test per pytest
    assert [c[-1] for c in ran] == ["tests/e2e/test_x.py::test_flaky", "tests/e2e/test_x.py::test_broken"]


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and iproute2 (ip netns)")
def test_what_a_group_s_pytest_left_running_in_its_namespace_is_killed_and_only_there() -> None:
    """A group whose pytest crashed or was stopped (no teardown ran) leaves no phone, controller or `make run`
    in its namespace for the rerun or the next run; the same program elsewhere (another group) is left alone."""
    namespace = f"ccc-unit-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    phones: list[subprocess.Popen[bytes]] = []
    try:
        for where in (["ip", "netns", "exec", namespace], []):  # named sipp (argv[0]), as tests/sipp.py runs it
            phones.append(subprocess.Popen([*where, "bash", "-c", "exec -a sipp sleep 60"]))
        inside, outside = phones
        deadline = time.monotonic() + 5
        while not strays.harness_processes(namespace=strays.named_namespace(namespace)):
            assert time.monotonic() < deadline, "the phone did not start"
            time.sleep(0.02)
        e2e.kill_left_behind(namespace, "group 1")
        assert inside.wait(5) == -signal.SIGKILL
        assert outside.poll() is None
    finally:
        for phone in phones:
            phone.kill()
            phone.wait()
        subprocess.run(["ip", "netns", "del", namespace], check=False)
