"""`ccctl doctor`: check that an Asterisk is set up the way the controller needs it.

Each check prints PASS or FAIL with what to fix. Exit status 0 only when every check passes.
It reads the controller's configuration (--config) for addresses and credentials, and talks to
Asterisk directly (ARI and AMI), so it works before the controller is even started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from controller.ari.client import AriClient
from controller.ari.errors import AriError, AriNotFound, AriUnavailable
from controller.config import Config, load_config
from controller.instance import sessions_of
from controller.plugins.ami.services import AmiService, AmiUnavailable
from controller.settings import SettingsError

REQUIRED_MODULES = (
    "res_ari.so", "res_stasis.so", "app_stasis.so", "res_stasis_snoop.so", "res_stasis_recording.so",
    "res_stasis_playback.so", "res_musiconhold.so", "chan_pjsip.so", "bridge_holding.so", "bridge_softmix.so",
)
RECORDING_MODULES = ("app_mixmonitor.so", "res_stasis_recording.so")  # either records bridges
STATIC_SOUNDS = ("ccc/fallback-notice",)
MAX_SKEW_SECONDS = 2.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


async def run_checks(config: Config, inbound_contexts: list[str], sounds: list[str]) -> list[Check]:
    checks: list[Check] = []
    url = urlparse(config.ari.url)
    async with AriClient(config.ari.url, config.ari.user, config.ari.password, request_timeout=3) as ari:
        try:
            info = await ari.info()
            version = info.get("system", {}).get("version", "?")
            checks.append(Check("ARI reachable with the credentials", True, f"Asterisk {version} at {config.ari.url}"))
        except AriUnavailable as exc:
            checks.append(Check("ARI reachable with the credentials", False, str(exc),
                                f"start Asterisk, and make http.conf bindaddr/bindport match {url.hostname}:{url.port}"
                                " (enabled = yes)"))
            return [*checks, Check("remaining checks", False, "skipped: ARI is not reachable", "fix the above")]
        except AriError as exc:
            fix = ("ari.conf: a user with the controller's ari.user and ari.password (password_format = plain)"
                   if exc.status == 401 else "check ARI is enabled in ari.conf")
            checks.append(Check("ARI reachable with the credentials", False, f"HTTP {exc.status}: {exc.message}", fix))
            return [*checks, Check("remaining checks", False, "skipped: ARI refused the credentials", "fix the above")]
        checks.append(Check("http.conf bound where the controller expects", True, f"{url.hostname}:{url.port}"))

        # GET /applications also lists an application whose WebSocket is gone (while its channels are
        # left): only a guess, replaced below by AMI's list of live WebSocket sessions when AMI works.
        apps = {app.get("name") for app in await ari.applications()}
        app_check = len(checks)
        checks.append(_app_check(config.ari.app, config.ari.app in apps, "listed by ARI"))

        modules = {m.get("name"): m.get("status") for m in await ari.modules()}
        missing = [name for name in REQUIRED_MODULES if modules.get(name) != "Running"]
        if not any(modules.get(name) == "Running" for name in RECORDING_MODULES):
            missing.append(" or ".join(RECORDING_MODULES))
        checks.append(Check("needed modules loaded", not missing,
                            "all loaded" if not missing else "not running: " + ", ".join(missing),
                            "load them: asterisk -rx 'module load NAME' (and remove noload lines in modules.conf)"))

        absent = []
        for sound in sounds:
            if sound_file_exists(Path(config.asterisk.sounds_dir), sound):
                continue
            try:  # not in the shared directory: Asterisk may still have it in a language folder
                await ari.request("sounds.get", {"soundId": sound})
            except AriNotFound:
                absent.append(sound)
        checks.append(Check("sound files the flows need are present", not absent,
                            f"{len(sounds)} checked" if not absent else "missing: " + ", ".join(absent),
                            "render them: ccctl prompts render, or copy the recordings into Asterisk's sounds dir"))

        ping = await ari.ping()
        skew = _skew(ping.get("timestamp", ""))
        checks.append(Check("clock skew between controller and Asterisk", skew is not None and skew <= MAX_SKEW_SECONDS,
                            f"{skew:.2f} s" if skew is not None else "Asterisk sent no timestamp",
                            "run NTP (chrony/systemd-timesyncd) on both hosts"))

        ami = AmiService(config.ami, action_timeout=3)
        try:
            await ami.connect()
            if not ami.connected:
                raise AmiUnavailable("login failed or AMI not reachable")
            await ami.action({"Action": "CoreStatus"})
            checks.append(Check("AMI login working", True, f"{config.ami.host}:{config.ami.port} as {config.ami.user}"))
            sessions = sessions_of(config.ari.app, await ami.command("ari show websocket sessions"))
            checks[app_check] = _app_check(config.ari.app, bool(sessions), "a live WebSocket session")
            checks.extend(await _check_contexts(ami, ari, config.ari.app, inbound_contexts))
        except AmiUnavailable as exc:
            checks.append(Check("AMI login working", False, str(exc),
                                "manager.conf: enabled = yes, bindaddr/port as configured, a user with the"
                                " controller's ami.user/ami.secret, read = system,call,agent,reporting,command,"
                                " write = system,command,reporting"))
        finally:
            ami.close()
    return checks


def _app_check(app: str, connected: bool, how: str) -> Check:
    return Check("Stasis application registered", connected,
                 f"application {app!r} {'is' if connected else 'is not'} connected ({how})",
                 "start the controller (ccc-controller); it registers the application when it connects to ARI")


async def _check_contexts(ami: AmiService, ari: AriClient, app: str, contexts: list[str]) -> list[Check]:
    checks = []
    app_variable = await ari.request("asterisk.get_global_var", None, {"variable": "CCC_APP"})
    global_app = (app_variable or {}).get("value", "")
    for context in contexts:
        lines = " ".join(await ami.command(f"dialplan show {context}"))
        ok = f"Stasis({app}," in lines or ("Stasis(${CCC_APP}," in lines and global_app == app)
        checks.append(Check(f"context {context} hands calls to Stasis({app})", ok,
                            "found" if ok else "no Stasis() call for the application in that context",
                            f"include the controller's dialplan (ccctl asterisk-conf render) so {context} runs "
                            f"Stasis({app},${{EXTEN}}) with its fallback"))
    return checks


SOUND_EXTENSIONS = (".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".sln16", ".g722", ".mp3")


def sound_file_exists(sounds_dir: Path, name: str) -> bool:
    """Asterisk's lookup: <dir>/<lang>/<name>.<ext> for any language, or <dir>/<name>.<ext>."""
    folders = [sounds_dir, *(p for p in sounds_dir.glob("*") if p.is_dir())] if sounds_dir.is_dir() else []
    return any((folder / name).with_suffix(ext).exists() for folder in folders for ext in SOUND_EXTENSIONS)


def _skew(timestamp: str) -> float | None:
    try:
        return abs(datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() - time.time())
    except ValueError:
        return None


def cmd_doctor(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except SettingsError as exc:
        print("\n".join(exc.problems))
        return 2
    sounds = list(STATIC_SOUNDS) + _flow_sounds(config)
    checks = asyncio.run(run_checks(config, args.context or ["ccc-inbound"], sounds))
    if args.json:
        print(json.dumps([asdict(check) for check in checks], ensure_ascii=False, indent=2))
    else:
        for check in checks:
            print(f"{'PASS' if check.ok else 'FAIL'}  {check.name}: {check.detail}")
            if not check.ok and check.fix:
                print(f"      fix: {check.fix}")
    return 0 if all(check.ok for check in checks) else 1


def _flow_sounds(config: Config) -> list[str]:
    """Sound prompts the IVR flows reference (empty when the IVR package is not available)."""
    import importlib

    try:
        repository = importlib.import_module("controller.ivr.repository")
    except ImportError:
        return []
    names: list[str] = repository.sound_names_in(config.ivr.flows_dir)
    return names


def register(sub: Any) -> None:
    doctor = sub.add_parser("doctor", help="check that Asterisk is set up for the controller")
    doctor.add_argument("--config", default=os.environ.get("CCC_CONFIG", "/etc/ccc/controller.yaml"))
    doctor.add_argument("--context", action="append", help="inbound context to check (default ccc-inbound)")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=cmd_doctor)
