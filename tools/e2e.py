#!/usr/bin/env python3
"""Run the end-to-end tests in N parallel groups, each in its own network namespace and Asterisk copy.

    python tools/e2e.py                      all of tests/e2e in CCC_E2E_GROUPS groups (default 3)
    python tools/e2e.py --groups 4           the same in 4 groups
    python tools/e2e.py --list               the plan only: which files go to which group, estimated times
    python tools/e2e.py --group 2            run only group 2 of the plan (in its own namespace)
    python tools/e2e.py --update-durations   run, then write each file's measured time to the durations file
    python tools/e2e.py tests/e2e/test_x.py  these files only (split in groups the same way)
    python tools/e2e.py -- -k name -x        anything after `--` goes to each group's pytest

Why groups of whole files, one pytest each, started through `tools/ccc-ns`: most of an e2e test's time is
waiting (SIPp hold times, timers), so several groups finish much sooner than one, even on 2 cores. Each
group needs its own 127.0.0.1 (Asterisk listens on fixed ports 5060/8088/5038) and its own Asterisk root,
and a process can only be put into a network namespace from outside, when it starts. A plain pytest per
namespace keeps every fixture as it is (one Asterisk per session, module fixtures, a test file's own order)
and a crash of one group cannot take the others down. Files are given to groups by their recorded
durations (tests/e2e/durations.json, longest first to the least loaded group); a file not recorded yet
counts as the mean. Each group writes a JUnit XML and a log under var/e2e/; its whole output is printed
when it ends (every failure in full), then one summary of all groups, merged into var/e2e/junit.xml.
The exit status is non-zero when any test failed or any group crashed or timed out.

A failed test gets one more chance, alone, after the groups (`--reruns`, default up to 5 tests): 3 Asterisks
on 2 cores make timing waits miss now and then. A test that passes alone is reported as FLAKY (in the summary
and var/e2e/flaky.txt, to be looked at: a flake may be a race in the controller) and does not fail the run; one
that fails again fails it. More failures than that, or a crashed group, are never rerun.

Without network namespaces (not root, no `ip`, or `ip netns add` refused) the tests run serially in one
pytest, as before, with a message saying so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.e2e import strays  # noqa: E402

E2E_DIR = REPO / "tests" / "e2e"
DURATIONS = E2E_DIR / "durations.json"
OUT = REPO / "var" / "e2e"
CCC_NS = REPO / "tools" / "ccc-ns"
DEFAULT_GROUPS = 3  # measured on a 2-core machine: README "Tests"
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "e2e", "-rfE"]
HEARTBEAT_S = 60


def log(message: str) -> None:
    print(f"[e2e] {message}", flush=True)


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


@dataclass
class Group:
    number: int
    files: list[Path] = field(default_factory=list)
    estimate: float = 0.0
    namespace: str = ""
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    ended: float = 0.0
    returncode: int | None = None
    timed_out: bool = False

    @property
    def log_path(self) -> Path:
        return OUT / f"group-{self.number}.log"

    @property
    def junit_path(self) -> Path:
        return OUT / f"group-{self.number}.xml"


def load_durations() -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except FileNotFoundError:
        return {}


def plan(files: list[Path], count: int, durations: dict[str, float]) -> list[Group]:
    """Longest file first, each to the group with the least estimated time so far (LPT scheduling)."""
    known = [durations[rel(f)] for f in files if rel(f) in durations]
    default = sum(known) / len(known) if known else 30.0
    groups = [Group(n + 1) for n in range(max(1, min(count, len(files))))]
    for path in sorted(files, key=lambda f: (-durations.get(rel(f), default), rel(f))):
        group = min(groups, key=lambda g: (g.estimate, g.number))
        group.files.append(path)
        group.estimate += durations.get(rel(path), default)
    for group in groups:
        group.files.sort()
    return groups


def rel(path: Path) -> str:
    return str(path.resolve().relative_to(REPO))


def namespaces_usable(probe: str) -> str | None:
    """None when `tools/ccc-ns` can work here, else why not."""
    if os.geteuid() != 0:
        return "not running as root"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0 and "File exists" not in result.stderr:
        return f"`ip netns add` failed: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def start(group: Group, extra: list[str]) -> None:
    command = [*PYTEST, f"--junitxml={group.junit_path}", f"--basetemp={OUT / f'tmp-{group.number}'}",
               *extra, *(rel(f) for f in group.files)]
    if group.namespace:
        command = [str(CCC_NS), group.namespace, *command]
    group.junit_path.unlink(missing_ok=True)
    with group.log_path.open("wb") as out:
        group.process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
    group.started = time.monotonic()


def stop(group: Group) -> None:
    """A group past its time limit: its whole process group, SIGTERM then SIGKILL."""
    assert group.process is not None
    group.timed_out = True
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            group.process.wait(20)
            return
        except subprocess.TimeoutExpired:
            continue


def kill_left_behind(namespace: str, who: str) -> None:
    """`who` (a group's pytest, a rerun's) has ended: no controller, guard, `make run` or node-b Asterisk of it
    runs on in its namespace (its teardown did not run when it crashed or was stopped; `make run` and node b have
    sessions of their own, out of reach of `stop`). A pytest kills what a test leaves; this, what a pytest leaves."""
    if not namespace:
        return
    sandboxes = Path(os.environ.get("CCC_NS_SANDBOXES", "/var/tmp/ccc-sandboxes"))  # as tools/ccc-ns
    node_b = strays.node_b_root(sandboxes / namespace)
    try:
        netns = strays.named_namespace(namespace)
    except OSError as exc:  # removed meanwhile (`ip netns del`): nothing of it to look at
        log(f"{who}: cannot look into namespace {namespace} ({exc})")
        return
    left = strays.harness_processes([node_b], namespace=netns)
    if left:
        log(f"{who} left {'; '.join(f'pid {p.pid} ({p.command})' for p in left)} running: killed")
        strays.kill([p.pid for p in left])


def wait_all(groups: list[Group], timeout_s: float) -> None:
    running = [g for g in groups if g.process is not None]
    last_beat = time.monotonic()
    began = time.monotonic()
    while running:
        for group in list(running):
            assert group.process is not None
            if group.process.poll() is None and time.monotonic() - group.started > timeout_s:
                log(f"group {group.number} ran past {minutes(timeout_s)}: stopping it")
                stop(group)
            if group.process.poll() is not None:
                kill_left_behind(group.namespace, f"group {group.number}")
                group.returncode = group.process.returncode
                group.ended = time.monotonic()
                running.remove(group)
                show(group)
        if running and time.monotonic() - last_beat >= HEARTBEAT_S:
            last_beat = time.monotonic()
            log(f"{minutes(time.monotonic() - began)}: groups still running: "
                + ", ".join(str(g.number) for g in running))
        time.sleep(0.5)


def show(group: Group) -> None:
    """A finished group's whole output (pytest -q: progress, every failure in full, its summary)."""
    where = f" in namespace {group.namespace}" if group.namespace else ""
    print(f"\n{'=' * 30} group {group.number}{where}: {len(group.files)} files, "
          f"exit {group.returncode}, {minutes(group.ended - group.started)} {'=' * 30}", flush=True)
    sys.stdout.write(group.log_path.read_text(errors="replace"))
    print(f"{'=' * 30} end of group {group.number} {'=' * 30}", flush=True)


@dataclass
class Outcome:
    tests: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: int = 0
    seconds_by_file: dict[str, float] = field(default_factory=dict)


def read_junit(paths: list[Path]) -> tuple[Outcome, ET.Element]:
    """The groups' JUnit reports: totals, failed test ids, seconds per file, and one merged document."""
    outcome = Outcome()
    merged = ET.Element("testsuites")
    for path in paths:
        if not path.exists():
            continue
        root = ET.parse(path).getroot()
        for suite in [root] if root.tag == "testsuite" else list(root):
            merged.append(suite)
            for case in suite.iter("testcase"):
                outcome.tests += 1
                name = f"{case.get('classname', '')}::{case.get('name', '')}"
                if case.find("failure") is not None or case.find("error") is not None:
                    outcome.failed.append(name)
                elif case.find("skipped") is not None:
                    outcome.skipped += 1
                module = case.get("classname", "").split(".")
                # classname is tests.e2e.test_x or tests.e2e.test_x.TestClass
                while module and not module[-1].startswith("test_"):
                    module.pop()
                file = "/".join(module) + ".py"
                outcome.seconds_by_file[file] = outcome.seconds_by_file.get(file, 0.0) + float(case.get("time", 0))
    return outcome, merged


def node_id(name: str) -> str:
    """`tests.e2e.test_x::test_y` or `tests.e2e.test_x.TestC::test_y` (JUnit) as a pytest node id."""
    classname, _, test = name.partition("::")
    parts = classname.split(".")
    module = parts[:]
    while module and not module[-1].startswith("test_"):
        module.pop()
    return "::".join(["/".join(module) + ".py", *parts[len(module):], test])


def rerun_alone(failed: list[str], namespace: str, extra: list[str]) -> tuple[list[str], list[str]]:
    """Each failed test once more, alone (one pytest each): (passed now = flaky, failed again)."""
    flaky: list[str] = []
    failed_again: list[str] = []
    for name in failed:
        command = [*PYTEST, f"--junitxml={OUT / 'rerun.xml'}", f"--basetemp={OUT / 'tmp-rerun'}", *extra,
                   node_id(name)]
        if namespace:
            command = [str(CCC_NS), namespace, *command]
        log(f"rerunning alone: {node_id(name)}")
        with (OUT / "rerun.log").open("ab") as out:
            result = subprocess.run(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, timeout=15 * 60)
        kill_left_behind(namespace, f"the rerun of {node_id(name)}")
        (flaky if result.returncode == 0 else failed_again).append(name)
        log(f"{'passed' if result.returncode == 0 else 'FAILED again'}: {node_id(name)}")
    return flaky, failed_again


def update_durations(seconds_by_file: dict[str, float]) -> None:
    durations = load_durations()
    durations.update({file: round(seconds, 1) for file, seconds in seconds_by_file.items()})
    existing = {rel(p) for p in E2E_DIR.glob("test_*.py")}
    durations = {k: v for k, v in sorted(durations.items()) if k in existing}
    DURATIONS.write_text(json.dumps(durations, indent=1) + "\n")
    log(f"durations of {len(seconds_by_file)} files written to {rel(DURATIONS)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="test files (default: tests/e2e/test_*.py)")
    parser.add_argument("--groups", type=int, default=int(os.environ.get("CCC_E2E_GROUPS", DEFAULT_GROUPS)),
                        help=f"parallel groups (env CCC_E2E_GROUPS, default {DEFAULT_GROUPS}; 1 = serial)")
    parser.add_argument("--group", type=int, help="run only this group of the plan (1-based)")
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--update-durations", action="store_true",
                        help=f"after the run, write each file's measured time to {rel(DURATIONS)}")
    parser.add_argument("--timeout-min", type=float, default=float(os.environ.get("CCC_E2E_TIMEOUT_MIN", 60)),
                        help="stop a group running longer than this (default 60)")
    parser.add_argument("--reruns", type=int, default=int(os.environ.get("CCC_E2E_RERUNS", 5)),
                        help="failed tests rerun once alone, at most this many (env CCC_E2E_RERUNS, default 5)")
    parser.add_argument("--prefix", default=os.environ.get("CCC_E2E_NS_PREFIX", "ccc-e2e-"),
                        help="namespace names: PREFIX1, PREFIX2, ... (env CCC_E2E_NS_PREFIX)")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.groups < 1:
        parser.error("--groups must be 1 or more")

    files = sorted(f.resolve() for f in args.files) if args.files else sorted(E2E_DIR.glob("test_*.py"))
    groups = plan(files, args.groups, load_durations())
    if args.list:
        for group in groups:
            print(f"group {group.number} (~{minutes(group.estimate)}): " + " ".join(f.name for f in group.files))
        return 0
    if args.group is not None:
        if not 1 <= args.group <= len(groups):
            parser.error(f"--group: the plan has groups 1 to {len(groups)}")
        groups = [g for g in groups if g.number == args.group]

    OUT.mkdir(parents=True, exist_ok=True)
    why_not = namespaces_usable(f"{args.prefix}probe")
    if why_not is None:
        for group in groups:
            group.namespace = f"{args.prefix}{group.number}"
        log(f"{len(files)} files in {len(groups)} parallel group(s), each in its own network namespace "
            f"({', '.join(g.namespace for g in groups)}) with its own Asterisk copy; logs in {rel(OUT)}/")
    else:
        log(f"network namespaces unavailable ({why_not}): running the e2e tests SERIALLY in one pytest "
            "on the host's network")
        groups = [Group(1, files=[f for g in groups for f in g.files])]

    began = time.monotonic()
    for group in groups:
        start(group, extra)
    try:
        wait_all(groups, args.timeout_min * 60)
    except KeyboardInterrupt:
        for group in groups:
            if group.process is not None and group.process.poll() is None:
                stop(group)
        raise

    outcome, merged = read_junit([g.junit_path for g in groups])
    ET.ElementTree(merged).write(OUT / "junit.xml", encoding="utf-8", xml_declaration=True)
    if args.update_durations:
        update_durations(outcome.seconds_by_file)

    crashed = [g for g in groups
               if g.timed_out or not g.junit_path.exists() or g.returncode not in (0, 1, 5)]
    flaky: list[str] = []
    failed = outcome.failed
    (OUT / "flaky.txt").unlink(missing_ok=True)
    (OUT / "rerun.log").unlink(missing_ok=True)
    if failed and not crashed and len(failed) <= args.reruns:
        flaky, failed = rerun_alone(failed, groups[0].namespace, extra)
        if flaky:
            (OUT / "flaky.txt").write_text("".join(f"{node_id(name)}\n" for name in flaky))

    print(f"\n{'=' * 30} e2e summary {'=' * 30}", flush=True)
    for group in groups:
        state = "passed" if group.returncode == 0 else "FAILED"
        if group.timed_out:
            state = "TIMED OUT"
        elif group in crashed:
            state = "CRASHED"
        print(f"group {group.number}: {state} (exit {group.returncode}) in {minutes(group.ended - group.started)}"
              f", estimated {minutes(group.estimate)}; log {rel(group.log_path)}")
    for name in flaky:
        print(f"FLAKY {name}: failed in its group, passed alone (log {rel(OUT)}/rerun.log): look into it")
    for name in failed:
        print(f"FAILED {name}")
    passed = outcome.tests - len(outcome.failed) - outcome.skipped
    print(f"e2e: {passed} passed, {len(failed)} failed, {len(flaky)} flaky (passed alone), {outcome.skipped} "
          f"skipped, {len(crashed)} group(s) crashed or timed out; wall {minutes(time.monotonic() - began)}; "
          f"merged JUnit {rel(OUT)}/junit.xml", flush=True)
    ok = not failed and not crashed  # exit 1 is failed tests (in `failed` unless flaky); any other code: crashed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
