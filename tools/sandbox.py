#!/usr/bin/env python3
"""The Asterisk 22 sandbox: a Debian sid root built with debootstrap, run with chroot.

    python tools/sandbox.py ensure     build the root if it is missing (about a minute, ~500 MB)
    python tools/sandbox.py install    copy asterisk-conf/ and dialplans/ in, render prompts and MoH
    python tools/sandbox.py start      install, then start Asterisk in the background and wait for it
    python tools/sandbox.py stop       stop Asterisk (gracefully, then by signal)
    python tools/sandbox.py status     print whether it runs, and its version

Everything is idempotent. The root lives outside the git tree (CCC_SANDBOX_DIR, default
~/.cache/ccc-sandbox/root) so fresh clones and CI runs on the same machine reuse it. Nothing is
ever mounted into it: debootstrap creates the /dev nodes Asterisk needs, and the chroot shares
the host's network, so ARI (8088), AMI (5038) and SIP (5060) on 127.0.0.1 are reachable from
outside. Asterisk runs as root inside without -U: the root's directories belong to a user that
does not exist outside it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from controller.config import load_config
from controller.media.static import render_static_prompts
from controller.plugins.desk.services import phone_agents, render_pjsip, seeded_supervisors

REPO = Path(__file__).resolve().parent.parent
SANDBOX_DIR = Path(os.environ.get("CCC_SANDBOX_DIR", Path.home() / ".cache" / "ccc-sandbox"))
ROOT = SANDBOX_DIR / "root"
MIRROR = os.environ.get("CCC_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = "asterisk,asterisk-modules,asterisk-core-sounds-en-gsm"
ARI_URL = "http://127.0.0.1:8088/ari"
ARI_USER = os.environ.get("CCC_ARI_USER", "ccc")
ARI_PASSWORD = os.environ.get("CCC_ARI_PASSWORD", "ccc-demo-ari")
LOG = SANDBOX_DIR / "asterisk.console.log"
SOUNDS_SUBDIR = "usr/share/asterisk/sounds"


def log(message: str) -> None:
    print(f"[sandbox] {message}", flush=True)


def ensure_root() -> Path:
    """Build the root once; a half-built one (interrupted run) is built again."""
    if (ROOT / "usr/sbin/asterisk").exists():
        return ROOT
    if os.geteuid() != 0:
        sys.exit("[sandbox] building the Asterisk root needs root (debootstrap, chroot)")
    if shutil.which("debootstrap") is None:
        sys.exit("[sandbox] debootstrap is missing: run `make deps` (apt-get install debootstrap)")
    partial = SANDBOX_DIR / "root.partial"
    SANDBOX_DIR.mkdir(parents=True, exist_ok=True)
    if partial.exists():
        shutil.rmtree(partial)  # never mounted anything into it, so this is safe
    log(f"building the Asterisk root in {ROOT} (debootstrap sid, about a minute)")
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "sid", str(partial), MIRROR],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    partial.rename(ROOT)
    return ROOT


def render_prompts(sounds_dir: Path) -> None:
    """The static prompts (what `ccctl prompts render` does), in a thread of its own: callers such as the
    e2e fixtures may already run an event loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, render_static_prompts(sounds_dir)).result()


def render_music_on_hold(moh_dir: Path) -> None:
    """A gentle 16-second arpeggio, so callers on hold hear music (no MoH package needed)."""
    moh_dir.mkdir(parents=True, exist_ok=True)
    out = moh_dir / "ccc-tune.wav"
    if out.exists():
        return
    notes = [262, 330, 392, 523, 392, 330] * 4 + [294, 370, 440, 587, 440, 370] * 4
    args = ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out)]
    for index, freq in enumerate(notes):
        if index:
            args.append(":")
        args += ["synth", "0.33", "pluck", str(freq)]
    args += ["vol", "0.4"]
    subprocess.run(args, check=True)


def _self_signed(name: str, subject: str, days: int, *extra: str) -> tuple[Path, Path]:
    """An EC P-256 self-signed certificate and its key, made once with openssl and kept beside the root."""
    keys = SANDBOX_DIR / "keys"
    cert, key = keys / f"{name}.crt", keys / f"{name}.key"
    if not (cert.exists() and key.exists()):
        keys.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", str(days), "-subj", subject, *extra,
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        key.chmod(0o600)
    return cert, key


def ensure_dtls_certificate() -> tuple[Path, Path]:
    """The WebRTC endpoints' DTLS-SRTP certificate (browsers check its fingerprint from the SDP, not a CA:
    README "Browser phone")."""
    return _self_signed("webrtc", "/CN=ccc-asterisk-webrtc", 3650)


def ensure_tls_certificate() -> tuple[Path, Path]:
    """The demo's TLS certificate for 127.0.0.1 and localhost (Asterisk's https/wss on 8089, and the controller's
    HTTPS in the tests). Browsers trust it only when told to (the tests: Chromium's
    --ignore-certificate-errors-spki-list with this key's hash): README "Browser phone (WebRTC)" says what
    production uses instead."""
    return _self_signed("tls", "/CN=ccc-demo-asterisk", 825, "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")


def render_webrtc_endpoints(etc: Path) -> None:
    """pjsip_webrtc.conf: the demo agents' and supervisors' browser phones, with the passwords the demo
    controller derives."""
    config = load_config(REPO / "demo" / "controller.yaml")
    cert, key = ensure_dtls_certificate()
    (etc / "keys").mkdir(exist_ok=True)
    shutil.copy2(cert, etc / "keys" / "webrtc.crt")
    shutil.copy2(key, etc / "keys" / "webrtc.key")
    tls_cert, tls_key = ensure_tls_certificate()  # http.conf's TLS server: the browser phones' wss://
    shutil.copy2(tls_cert, etc / "keys" / "asterisk.crt")
    shutil.copy2(tls_key, etc / "keys" / "asterisk.key")
    (etc / "pjsip_webrtc.conf").write_text(render_pjsip(config.softphone, phone_agents(config),
                                                        seeded_supervisors(config)))


def install() -> None:
    """Put our configuration, dialplans, prompts and MoH into the root."""
    root = ensure_root()
    etc = root / "etc/asterisk"
    if etc.exists():
        shutil.rmtree(etc)
    etc.mkdir(parents=True)
    for conf in (REPO / "asterisk-conf").glob("*.conf"):
        shutil.copy2(conf, etc / conf.name)
    (etc / "dialplans").mkdir()
    for conf in (REPO / "dialplans").glob("*.conf"):
        shutil.copy2(conf, etc / "dialplans" / conf.name)
    render_webrtc_endpoints(etc)
    # Without the host's own name in /etc/hosts Asterisk falls back to DNS look-ups of root
    # servers that time out on a closed network, and calls stall (see ../shared/harness.md).
    shutil.copy2("/etc/hosts", root / "etc/hosts")
    (root / "run/asterisk").mkdir(parents=True, exist_ok=True)
    (root / "var/spool/asterisk/recording").mkdir(parents=True, exist_ok=True)  # ARI recordings (voicemail)
    render_prompts(root / SOUNDS_SUBDIR)
    render_music_on_hold(root / "var/lib/asterisk/moh")


def _pid() -> int | None:
    pid_file = ROOT / "run/asterisk/asterisk.pid"
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _ari_ready(url: str = ARI_URL) -> bool:
    token = base64.b64encode(f"{ARI_USER}:{ARI_PASSWORD}".encode()).decode()
    request = urllib.request.Request(f"{url}/asterisk/info", headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def cli(command: str, timeout: float = 10) -> str:
    """Run an Asterisk CLI command on the running sandbox and return its output."""
    result = subprocess.run(
        ["chroot", str(ROOT), "asterisk", "-rx", command],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return result.stdout


def running() -> bool:
    return _pid() is not None


def start(timeout: float = 60) -> None:
    install()
    if running() and _ari_ready():
        cli("core reload")  # pick up the configuration just installed
        log("Asterisk already running; configuration reloaded")
        return
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("ab") as console:
        subprocess.Popen(
            ["chroot", str(ROOT), "asterisk", "-f", "-n"],
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _ari_ready():
            cli("core waitfullybooted", timeout=30)
            log(f"Asterisk up: ARI {ARI_URL}, AMI 127.0.0.1:5038, SIP udp 127.0.0.1:5060 (log {LOG})")
            return
        time.sleep(0.2)
    sys.exit(f"[sandbox] Asterisk did not come up within {timeout:.0f} s; see {LOG}")


def stop(timeout: float = 20) -> None:
    pid = _pid()
    if pid is None:
        log("Asterisk not running")
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        cli("core stop now", timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid() is not None:
        time.sleep(0.1)
    if _pid() is not None:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
    log("Asterisk stopped")


def status() -> int:
    if not running():
        print("Asterisk: not running")
        return 1
    print(cli("core show version").strip() or "Asterisk: running (no CLI answer)")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["ensure", "install", "start", "stop", "restart", "status", "root"])
    args = parser.parse_args()
    if args.command == "ensure":
        ensure_root()
    elif args.command == "install":
        install()
    elif args.command == "start":
        start()
    elif args.command == "stop":
        stop()
    elif args.command == "restart":
        stop()
        start()
    elif args.command == "status":
        return status()
    elif args.command == "root":
        print(ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
