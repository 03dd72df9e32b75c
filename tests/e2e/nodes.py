"""Two Asterisk nodes in one network namespace, for tests of several Asterisk servers under one controller.

Node a is the session's sandbox (127.0.0.1: ARI 8088, AMI 5038, SIP 5060); node b is a copy of its root
(CCC_SANDBOX_DIR + "-node-b") on 127.0.0.2 with the same ports, its own `systemname` (channel ids stay
unique across nodes) and RTP range. Each gets the trunk to the other and the `ccc-from-nodes` context as
`ccctl asterisk-conf nodes` renders them. Use the `two_nodes` fixture (tests/e2e/conftest.py imports it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sandbox  # tools/sandbox.py (conftest puts tools/ on the path)

from controller.config import AmiSettings, AriSettings, Config, NodeSettings
from controller.deploy.render import render_node_trunks
from tests.e2e import strays

REPO = Path(__file__).resolve().parents[2]
B_ADDRESS = "127.0.0.2"
B_ROOT = strays.node_b_root(sandbox.SANDBOX_DIR)


@dataclass(frozen=True)
class TwoNodes:
    a_root: Path
    b_root: Path

    def nodes_config(self) -> list[dict[str, Any]]:
        """The controller's `nodes:` section for the two."""
        def node(name: str, address: str) -> dict[str, Any]:
            return {"name": name, "sip_address": f"{address}:5060",
                    "ari": {"url": f"http://{address}:8088/ari", "user": "ccc", "password": "ccc-demo-ari",
                            "app": "ccc"},
                    "ami": {"host": address, "port": 5038, "user": "ccc", "secret": "ccc-demo-ami"}}
        return [node("a", "127.0.0.1"), node("b", B_ADDRESS)]

    def sync_prompts(self) -> None:
        """The controller renders prompts into node a's sounds directory; node b plays the same files (a real
        site shares the directory or syncs it: README "Several Asterisk servers")."""
        source = self.a_root / sandbox.SOUNDS_SUBDIR / "ccc"
        if not source.exists():
            return
        try:  # (renders in progress are left out: their files come and go while the copy runs)
            shutil.copytree(source, self.b_root / sandbox.SOUNDS_SUBDIR / "ccc", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.partial.wav", "*.raw.wav"))
        except shutil.Error as exc:  # the other files are copied; a file gone meanwhile was a render's, not a prompt
            missing = [error for error in exc.args[0] if not Path(error[0]).exists()]
            if len(missing) < len(exc.args[0]):
                raise

    def b_cli(self, command: str, timeout: float = 10) -> str:
        return subprocess.run(["chroot", str(self.b_root), "asterisk", "-rx", command], capture_output=True,
                              text=True, timeout=timeout).stdout

    def stop_b(self) -> None:
        stop_root(self.b_root)

    def kill_b(self) -> None:
        """Node b crashes (SIGKILL): no hang-up reaches anyone, its event stream just drops."""
        pid_file = self.b_root / "run/asterisk/asterisk.pid"
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)

    def start_b(self) -> None:
        start_root(self.b_root, f"http://{B_ADDRESS}:8088/ari")


def _config() -> Config:
    nodes = TwoNodes(sandbox.ROOT, B_ROOT).nodes_config()
    return Config(nodes=[NodeSettings(n["name"], AriSettings(**n["ari"]), AmiSettings(**n["ami"]), n["sip_address"])
                         for n in nodes])


def _add_trunks(root: Path, node: str) -> None:
    parts = render_node_trunks(_config(), node)
    etc = root / "etc/asterisk"
    pjsip = etc / "pjsip.conf"
    pjsip.write_text(pjsip.read_text() + "\n" + parts["pjsip.conf"])
    (etc / "dialplans" / "ccc-nodes.conf").write_text(parts["ccc-nodes.conf"])


def install_b() -> None:
    """Node b's root (copied once from node a's) with the sandbox's configuration moved to 127.0.0.2."""
    if not (B_ROOT / "usr/sbin/asterisk").exists():
        B_ROOT.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(sandbox.ROOT), str(B_ROOT)], check=True)
    etc = B_ROOT / "etc/asterisk"
    shutil.rmtree(etc)
    shutil.copytree(sandbox.ROOT / "etc/asterisk", etc)
    for name in ("pjsip.conf", "http.conf", "manager.conf"):
        text = (etc / name).read_text().replace("127.0.0.1/255.255.255.255", "127.0.0.0/255.0.0.0")
        (etc / name).write_text(text.replace("127.0.0.1", B_ADDRESS))
    asterisk_conf = etc / "asterisk.conf"
    asterisk_conf.write_text(asterisk_conf.read_text().replace("systemname = ccc-sandbox", "systemname = ccc-node-b"))
    (etc / "rtp.conf").write_text((etc / "rtp.conf").read_text().replace("rtpstart = 10000", "rtpstart = 20000")
                                  .replace("rtpend = 14999", "rtpend = 24999"))
    (etc / "dialplans" / "ccc-nodes.conf").unlink(missing_ok=True)
    pjsip = etc / "pjsip.conf"
    pjsip.write_text(pjsip.read_text().split("; Trunks from node a")[0])
    _add_trunks(B_ROOT, "b")
    (B_ROOT / "run/asterisk/asterisk.pid").unlink(missing_ok=True)


def start_root(root: Path, ari_url: str, timeout: float = 60) -> None:
    if sandbox._ari_ready(ari_url):
        return
    with (root.parent / "asterisk.console.log").open("ab") as console:
        subprocess.Popen(["chroot", str(root), "asterisk", "-f", "-n"], stdin=subprocess.DEVNULL, stdout=console,
                         stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sandbox._ari_ready(ari_url):
            subprocess.run(["chroot", str(root), "asterisk", "-rx", "core waitfullybooted"], capture_output=True,
                           timeout=30)
            return
        time.sleep(0.2)
    raise AssertionError(f"node b's Asterisk did not come up; see {root.parent / 'asterisk.console.log'}")


def stop_root(root: Path, timeout: float = 20) -> None:
    subprocess.run(["chroot", str(root), "asterisk", "-rx", "core stop now"], capture_output=True, timeout=timeout)
    deadline = time.monotonic() + timeout
    pid_file = root / "run/asterisk/asterisk.pid"
    while time.monotonic() < deadline and pid_file.exists():
        time.sleep(0.1)


def set_up_two_nodes() -> TwoNodes:
    """Node a (the running sandbox) gets the trunk to b; node b is installed and started (also for benches)."""
    etc = sandbox.ROOT / "etc/asterisk"
    pjsip = etc / "pjsip.conf"
    pjsip.write_text(pjsip.read_text().split("; Trunks from node a")[0])
    _add_trunks(sandbox.ROOT, "a")
    sandbox.cli("core reload")
    sandbox.cli("dialplan reload")
    install_b()
    nodes = TwoNodes(sandbox.ROOT, B_ROOT)
    nodes.start_b()
    nodes.b_cli("database deltree registrar")
    return nodes


def tear_down_two_nodes(nodes: TwoNodes) -> None:
    nodes.stop_b()
    sandbox.install()  # node a back to the sandbox's own configuration for the next tests
    sandbox.cli("core reload")


@pytest.fixture
def two_nodes(fresh_asterisk: Path) -> Iterator[TwoNodes]:
    """Node a (the session's sandbox, with the trunk to b) and node b on 127.0.0.2, both running."""
    nodes = set_up_two_nodes()
    yield nodes
    tear_down_two_nodes(nodes)
