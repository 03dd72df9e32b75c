"""The long-lived processes the e2e tests start (controllers, guards, `make run`, the demo back-end, node b's
Asterisk, SIPp), found through /proc in this network namespace, so that none outlives its test or test file.

Every test's own teardown stops what it started; this is the net under it (tests/e2e/conftest.py):
- after each test, a controller-like process started during it and still running is killed (with a warning
  naming it): a test that failed before handing its controller to its teardown, a teardown that stopped early,
  a killed wrapper (`sh`, `nsenter`, `tools/run.py`) whose Python child lives on;
- after each test file, the same for what its module fixtures started;
- before each test file, any such process left in the namespace by an earlier run, or anything holding the
  fixed ports (FastAGI 4573, `make run`'s 8080, the demo back-end's 8090), fails that file's first test with
  its pid and command line, and is killed, so the rest of the run is not affected: in a namespace of the tests'
  own (tools/ccc-ns), whatever it is; on the host's network, only when an e2e pytest started it (it carries
  `HARNESS_MARK`): a developer's own `make run` there is only named.
Processes of another e2e pytest still running (`HARNESS_MARK` names it) are never touched.

No sleeps: one pass over /proc; a kill waits only until the killed processes are gone.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

HARNESS_MARK = "CCC_E2E_RUN"  # "pid:start" of the e2e pytest that started a process, in its environment
FIXED_PORTS = {4573: "FastAGI", 8080: "the demo controller's HTTP (make run)", 8090: "the demo back-end"}
_CONTROLLER_SCRIPTS = {"ccc-controller", "ccc-guard"}  # the console scripts (pyproject.toml)


@dataclass(frozen=True)
class Found:
    pid: int
    started: int  # clock ticks after boot (/proc/PID/stat field 22): with the pid, one process, never reused
    ppid: int
    argv: tuple[str, ...]

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.started

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    @property
    def is_sipp(self) -> bool:
        return bool(self.argv) and Path(self.argv[0]).name == "sipp"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError:  # gone meanwhile, or not ours to read
        return None


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) of a process; None once it is gone."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    fields = raw[raw.rindex(b")") + 2:].split()  # after "pid (comm) ": the command may hold spaces
    return fields[0].decode(), int(fields[1]), int(fields[19])


def alive(pid: int) -> bool:
    """Running: not gone, not a zombie (a zombie holds no port; its parent reaps it when it looks)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _network_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _is_harness_program(argv: list[str], pid: int, chroots: Iterable[Path]) -> bool:
    """A controller, a guard, the demo back-end (`python -m controller[.x]`, not the short-lived CLI), `make run`
    (tools/run.py), SIPp, or an Asterisk chrooted into one of `chroots` (node b)."""
    if not argv:
        return False
    for flag, module in itertools.pairwise(argv):
        if flag == "-m" and (module == "controller" or module.startswith("controller.")):
            return not module.startswith("controller.cli")
    if Path(argv[0]).name == "sipp" or any(Path(arg).name in _CONTROLLER_SCRIPTS for arg in argv[:2]):
        return True
    if any(arg.endswith("tools/run.py") for arg in argv[:2]):
        return True
    if Path(argv[0]).name == "asterisk":
        with contextlib.suppress(OSError):
            return Path(os.readlink(f"/proc/{pid}/root")) in {Path(root).resolve() for root in chroots}
    return False


def node_b_root(sandbox_dir: Path) -> Path:
    """Node b's Asterisk root beside a sandbox (tests/e2e/nodes.py makes it there): `<sandbox>-node-b/root`."""
    return sandbox_dir.parent / f"{sandbox_dir.name}-node-b" / "root"


def named_namespace(name: str) -> str:
    """The network namespace `ip netns add NAME` made, as /proc/PID/ns/net names it."""
    return f"net:[{os.stat(f'/run/netns/{name}').st_ino}]"


def run_mark() -> str:
    """This process as `HARNESS_MARK` names the run that started a process: its pid and start time."""
    stat = _stat(os.getpid())
    assert stat is not None
    return f"{os.getpid()}:{stat[2]}"


def _mark_of(pid: int) -> str | None:
    environ = _read(f"/proc/{pid}/environ") or b""
    prefix = HARNESS_MARK.encode() + b"="
    return next((item[len(prefix):].decode() for item in environ.split(b"\0") if item.startswith(prefix)), None)


def of_another_live_run(pid: int) -> bool:
    """Started by another e2e pytest that still runs (in this namespace, it waits for the sandbox's lock; on the
    host's network, another checkout's): its own, never a stray of ours."""
    mark = _mark_of(pid)
    if mark is None or mark == os.environ.get(HARNESS_MARK):
        return False
    run_pid, _, started = mark.partition(":")
    stat = _stat(int(run_pid)) if run_pid.isdigit() else None
    return stat is not None and stat[0] not in ("Z", "X") and str(stat[2]) == started


def harness_processes(chroots: Iterable[Path] = (), namespace: str | None = None) -> list[Found]:
    """The running harness programs in this process's network namespace, or in `namespace` (other namespaces run
    other e2e groups and other checkouts' tests), but those of another e2e pytest still running."""
    ours = namespace or _network_namespace("self")
    chroots = tuple(chroots)
    found: list[Found] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        raw = _read(f"/proc/{pid}/cmdline")
        if not raw:
            continue  # a kernel thread, or gone
        argv = [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")]
        if not _is_harness_program(argv, pid, chroots) or _network_namespace(pid) != ours or of_another_live_run(pid):
            continue
        stat = _stat(pid)
        if stat is not None and stat[0] not in ("Z", "X"):
            found.append(Found(pid, stat[2], stat[1], tuple(argv)))
    return found


def ours_to_kill(pid: int) -> bool:
    """An e2e pytest started it (it carries `HARNESS_MARK`), or this is a network namespace of the tests' own
    (tools/ccc-ns, tools/e2e.py), not the host's, where a developer's `make run` may be running."""
    return _mark_of(pid) is not None or _network_namespace("self") != _network_namespace(1)


def descendants(pids: Iterable[int]) -> set[int]:
    """`pids` and every process below them."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append(int(entry.name))
    found: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def kill(pids: Iterable[int], timeout: float = 10) -> list[int]:
    """SIGKILL `pids` and everything below them (never this process or its ancestors); wait until they are gone.
    The ones still running after `timeout` are returned."""
    spared = {os.getpid(), *_ancestors()}
    targets = descendants(pids) - spared
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    left = [pid for pid in targets if alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = [pid for pid in left if alive(pid)]
    return left


def _ancestors() -> list[int]:
    pids, pid = [], os.getppid()
    while pid > 1 and (stat := _stat(pid)) is not None:
        pids.append(pid)
        pid = stat[1]
    return pids


def port_in_use(port: int) -> bool:
    """Whether a listener holds 127.0.0.1:`port` (bound as the controller binds: SO_REUSEADDR, so a closed
    connection's TIME_WAIT does not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def listeners(port: int) -> list[int]:
    """The pids holding a listening TCP socket on `port` in this network namespace (/proc/net/tcp, tcp6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in (_read(table) or b"").decode().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    pids: list[int] = []
    if not inodes:
        return pids
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd.path) in inodes for fd in os.scandir(f"/proc/{entry.name}/fd")):
                pids.append(int(entry.name))
    return pids


def describe(pid: int) -> str:
    """`pid 123 (its command line)`."""
    command = (_read(f"/proc/{pid}/cmdline") or b"").rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    return f"pid {pid} ({command or '?'})"


def check_namespace(where: str, chroots: Iterable[Path] = ()) -> str | None:
    """Before `where` (a test file) starts: None when no harness program runs in this namespace and the fixed
    ports are free; else what was found, after killing the ones the harness started."""
    problems: list[str] = []
    to_kill: list[int] = []
    for process in harness_processes(chroots):
        if process.is_sipp and process.ppid == os.getpid():
            continue  # this pytest's own phone, killed by tests/sipp.py's kill_leftovers and not yet reaped
        problems.append(describe(process.pid))
        to_kill.append(process.pid)
    for port, what in FIXED_PORTS.items():
        if port_in_use(port):
            holders = listeners(port)
            if holders and all(of_another_live_run(pid) for pid in holders):
                continue  # that run's: this one waits for the sandbox's lock (conftest's `asterisk` fixture)
            problems.append(f"port {port} ({what}) is held by "
                            + (", ".join(describe(pid) for pid in holders) or "an unknown process"))
            to_kill += holders
    if not problems:
        return None
    killed = [pid for pid in dict.fromkeys(to_kill) if ours_to_kill(pid)]
    left = kill(killed)
    others = [pid for pid in dict.fromkeys(to_kill) if pid not in killed]
    return (f"before {where}, stray processes from an earlier test file or e2e run were running in this network "
            f"namespace: {'; '.join(problems)}. "
            + (f"Killed {', '.join(map(str, killed))}. " if killed else "")
            + (f"Still running after SIGKILL: {left}. " if left else "")
            + (f"Not the e2e harness's, on the host's network, left alone (stop them): {others}. " if others else "")
            + "A test or fixture did not stop what it started: see tests/e2e/strays.py.")
