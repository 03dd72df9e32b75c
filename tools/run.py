#!/usr/bin/env python3
"""`make run`: start Asterisk, the demo backend, the controller and the guard; stop them all on Ctrl-C.

Stays in the foreground and prints where everything listens. `make stop` (this script's `stop`
command) ends a run started in the background, using the pid file in var/.

It supervises like systemd's `Restart=on-failure`: a process that dies (the controller crashed,
was killed) is started again after a back-off, while Asterisk and the others stay up, so calls in
Asterisk survive. More than `CRASH_LOOP_LIMIT` restarts of one process within `CRASH_LOOP_WINDOW`
seconds is a crash loop: that process is left down (the guard then sends waiting callers to the
fallback route) until Ctrl-C. A process that exits with status 2 (configuration errors) or 3
(another controller owns the data directory or the ARI application) is not restarted either.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
import sandbox  # noqa: E402

VAR = REPO / "var"
PID_FILE = VAR / "run.pid"
PYTHON = sys.executable
#: Restart back-off: 1 s, doubling up to 30 s, back to 1 s after a process ran RESTART_RESET seconds.
BACKOFF_INITIAL, BACKOFF_MAX, RESTART_RESET = 1.0, 30.0, 60.0
CRASH_LOOP_LIMIT, CRASH_LOOP_WINDOW = 5, 60.0
#: Exit statuses a restart cannot fix (controller/main.py, controller/guard/main.py, controller/instance.py).
NOT_RESTARTED = {2: "its configuration has errors (see its message above)",
                 3: "another controller owns its data directory or ARI application (see its message above)"}


class Supervised:
    """One child process, started again when it dies (`Restart=on-failure` with a back-off)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts: list[float] = []  # when each restart happened (monotonic)
        self.backoff = BACKOFF_INITIAL
        self.restart_at: float | None = None
        self.given_up = False

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=REPO)
        self.started_at = time.monotonic()
        self.restart_at = None
        print(f"[run] {self.name} started (pid {self.process.pid})", flush=True)

    def tend(self) -> None:
        """Called every few hundred ms: notice a death, schedule and do the restart."""
        now = time.monotonic()
        if self.given_up or self.process is None:
            return
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restarts.append(now)
                self.start()
            return
        code = self.process.poll()
        if code is None:
            return
        if code in NOT_RESTARTED:
            print(f"[run] {self.name} refused to run: {NOT_RESTARTED[code]}; not restarting it", flush=True)
            self.given_up = True
            return
        if now - self.started_at >= RESTART_RESET:
            self.backoff = BACKOFF_INITIAL  # it ran a good while: a fresh crash, not a loop
        recent = [t for t in self.restarts if now - t < CRASH_LOOP_WINDOW]
        if len(recent) >= CRASH_LOOP_LIMIT:
            print(f"[run] {self.name} died {len(recent) + 1} times within {CRASH_LOOP_WINDOW:.0f} s (exit status "
                  f"{code}): crash loop, not restarting it. Asterisk stays up; Ctrl-C stops everything.", flush=True)
            self.given_up = True
            return
        print(f"[run] {self.name} exited (status {code}); starting it again in {self.backoff:.0f} s "
              "(Asterisk and live calls stay up)", flush=True)
        self.restart_at = now + self.backoff
        self.backoff = min(BACKOFF_MAX, self.backoff * 2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _wait_http(url: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError as exc:
            if getattr(exc, "code", None) == 503:  # answering, not yet connected to ARI
                time.sleep(0.2)
                continue
            time.sleep(0.2)
    return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def run() -> int:
    VAR.mkdir(exist_ok=True)
    PID_FILE.write_text(str(os.getpid()))
    env = {**os.environ, "CCC_SANDBOX_ROOT": str(sandbox.ROOT), "CCC_DATA_DIR": str(VAR / "demo"), "CCC_DEMO": "true",
           "CCC_WEBRTC_PJSIP_CONF": str(sandbox.ROOT / "etc/asterisk/pjsip_webrtc.conf")}
    children: list[Supervised] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        sandbox.start()
        if _listening(8090):
            print("[run] a demo back-end already answers on 127.0.0.1:8090; using it", flush=True)
        else:
            children.append(Supervised("demo back-end", [PYTHON, "-m", "controller.demo.backend"], env))
        children.append(Supervised("controller", [PYTHON, "-m", "controller", "--config", "demo/controller.yaml"],
                                   env))
        children.append(Supervised("guard", [PYTHON, "-m", "controller.guard", "--config", "demo/controller.yaml"],
                                   env))
        for child in children:
            child.start()
        ok = _wait_http("http://127.0.0.1:8080/healthz")
        takeover = os.environ.get("CCC_TAKEOVER_TIMEOUT", "30")
        print(f"""
  Asterisk 22 (sandbox)   ARI http://127.0.0.1:8088/ari   AMI 127.0.0.1:5038   SIP udp 127.0.0.1:5060
  Controller              http://127.0.0.1:8080  (health: /healthz{'' if ok else ' — NOT HEALTHY, see above'})
  Demo backend            http://127.0.0.1:8090  (bill / customer look-ups for the IVR)
  Demo hotline            DID 4008001234 — try: sipp -sn uac -s 4008001234 -m 1 127.0.0.1:5060 -p 5070
  Admin token (demo)      demo-admin-token     e.g.  .venv/bin/ccctl status
  Agent softphone (demo)  register user 8001, password ccc-demo-8001, at 127.0.0.1:5060 (udp), then
                          .venv/bin/ccctl agent login 1001 --phone 8001, or the toolbar /toolbar?agent=1001
  Guard                   callers waiting with no controller for {takeover} s go to the fallback route
  A crashed controller is started again (Asterisk and live calls stay up).
  Ctrl-C (or `make stop` from another shell) stops everything.
""", flush=True)
        while not stopping:
            for child in children:
                child.tend()
            time.sleep(0.3)
    finally:
        for child in children:
            child.stop()
        for child in children:
            child.wait()
        sandbox.stop()
        PID_FILE.unlink(missing_ok=True)
        print("[run] stopped", flush=True)
    return 0


def _alive(pid: int) -> bool:
    """Whether the process still runs; one that exited and waits for its parent to reap it (a zombie)
    has stopped."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def stop_background_run() -> int:
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        print("[stop] no run in progress (no var/run.pid); stopping the sandbox if it runs")
        sandbox.stop()
        return 0
    for _ in range(150):
        if not _alive(pid):
            print("[stop] stopped")
            return 0
        time.sleep(0.2)
    print("[stop] the run did not stop in 30 s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(stop_background_run() if sys.argv[1:] == ["stop"] else run())
