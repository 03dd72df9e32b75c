#!/usr/bin/env python3
"""`make run`: start Asterisk, the demo backend and the controller; stop them all on Ctrl-C.

Stays in the foreground and prints where everything listens. `make stop` (this script's `stop`
command) ends a run started in the background, using the pid file in var/.
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
    env = {**os.environ, "CCC_SANDBOX_ROOT": str(sandbox.ROOT), "CCC_DATA_DIR": str(VAR / "demo"), "CCC_DEMO": "true"}
    children: list[subprocess.Popen[bytes]] = []
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
            children.append(subprocess.Popen([PYTHON, "-m", "controller.demo.backend"], env=env, cwd=REPO))
        children.append(subprocess.Popen([PYTHON, "-m", "controller", "--config", "demo/controller.yaml"],
                                         env=env, cwd=REPO))
        ok = _wait_http("http://127.0.0.1:8080/healthz")
        print(f"""
  Asterisk 22 (sandbox)   ARI http://127.0.0.1:8088/ari   AMI 127.0.0.1:5038   SIP udp 127.0.0.1:5060
  Controller              http://127.0.0.1:8080  (health: /healthz{'' if ok else ' — NOT HEALTHY, see above'})
  Demo backend            http://127.0.0.1:8090  (bill / customer look-ups for the IVR)
  Demo hotline            DID 4008001234 — try: sipp -sn uac -s 4008001234 -m 1 127.0.0.1:5060 -p 5070
  Admin token (demo)      demo-admin-token     e.g.  .venv/bin/ccctl status
  Agent softphone (demo)  register user 8001, password ccc-demo-8001, at 127.0.0.1:5060 (udp), then
                          .venv/bin/ccctl agent login 1001 --phone 8001, or the toolbar /toolbar?agent=1001
  Ctrl-C (or `make stop` from another shell) stops everything.
""", flush=True)
        while not stopping:
            for child in children:
                if child.poll() is not None:
                    print(f"[run] a process exited ({child.args}); stopping", flush=True)
                    stopping = True
            time.sleep(0.3)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
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
