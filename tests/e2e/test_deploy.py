"""Deploying next to an existing Asterisk: FastAGI, AMI, ccctl doctor/trunks, the systemd unit."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ADMIN_TOKEN, REPO, ControllerProcess, ari_get
from tests.e2e.test_foundation import wait_until
from tests.sipp import Caller, Pause

sys.path.insert(0, str(REPO / "tools"))
import sandbox

pytestmark = pytest.mark.e2e
CCCTL = [sys.executable, "-m", "controller.cli.main"]


async def global_var(name: str) -> str:
    return str((await ari_get(f"/asterisk/variable?variable={name}")).get("value", ""))


async def reset_globals() -> None:
    for name in ("CCC_LAST_ROUTE", "CCC_LAST_LOOKUP", "CCC_LAST_BAD", "CCC_LAST_BAD_CONTINUED"):
        sandbox.cli(f"dialplan set global {name} \"\"")


async def test_agi_route_then_handover_to_the_flow(controller: ControllerProcess) -> None:
    await reset_globals()
    caller = Caller("4008009001", caller="13800138000", steps=[Pause(3000)])
    result = await caller.run()
    assert result.ok, result.output
    assert await global_var("CCC_LAST_ROUTE") == "OK|flow|hotline|4008001234"
    # The hand-over took the call into Stasis: the controller has a record for it, with the flow's DID.
    (record,) = await controller.wait_for_records(1)
    assert record["did"] == "4008001234"


async def test_agi_lookup_sets_region_and_tier(controller: ControllerProcess, demo_backend: str) -> None:
    await reset_globals()
    result = await Caller("4008009002", caller="13912345678", steps=[Pause(2000)]).run()
    assert result.ok, result.output
    # 139 1234 5678 is a China Mobile number from Changzhou, Jiangsu; the demo CRM says numbers
    # ending in 8 are VIPs.
    assert await global_var("CCC_LAST_LOOKUP") == "OK|江苏省|常州市|中国移动|vip"


async def test_bad_agi_request_fails_clearly_and_the_call_continues(controller: ControllerProcess) -> None:
    await reset_globals()
    result = await Caller("4008009003", steps=[Pause(2500)]).run()
    assert result.ok, result.output
    assert await global_var("CCC_LAST_BAD") == "FAILED|missing flow: use agi://HOST/ivr?flow=FLOW_ID"
    assert await global_var("CCC_LAST_BAD_CONTINUED") == "yes"
    assert "AGI ivr failed: missing flow" in controller.log.read_text()


async def _agi_lookup_over_raw_tcp(number: str) -> list[str]:
    """Play Asterisk's side of a FastAGI session and return the commands the controller sent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", 4573)
    writer.write(f"agi_network: yes\nagi_network_script: lookup?number={number}\nagi_callerid: {number}\n\n"
                 .encode())
    await writer.drain()
    commands = []
    async with asyncio.timeout(5):
        while True:
            line = await reader.readline()
            if not line:
                break
            commands.append(line.decode().strip())
            writer.write(b"200 result=1\n")
            await writer.drain()
    writer.close()
    return commands


async def test_half_sent_agi_header_does_not_stall_the_controller(controller: ControllerProcess) -> None:
    for _ in range(3):
        _, writer = await asyncio.open_connection("127.0.0.1", 4573)
        writer.write(b"agi_network: yes\nagi_network_scr")  # half a header, then gone
        await writer.drain()
        writer.close()
    commands = await _agi_lookup_over_raw_tcp("02088881234")
    assert 'SET VARIABLE CCC_PROVINCE "广东省"' in commands
    assert 'SET VARIABLE CCC_STATUS "OK"' in commands
    health = await controller.health()
    assert health and health["ari_connected"]


def doctor(*extra: str, env: dict[str, str] | None = None) -> tuple[int, list[dict]]:  # type: ignore[type-arg]
    run_env = {**os.environ, "CCC_SANDBOX_ROOT": str(sandbox.ROOT), **(env or {})}
    process = subprocess.run([*CCCTL, "doctor", "--config", str(REPO / "demo/controller.yaml"), "--json", *extra],
                             capture_output=True, text=True, env=run_env, timeout=60)
    return process.returncode, json.loads(process.stdout)


def failed(checks: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {check["name"]: check for check in checks if not check["ok"]}


async def test_doctor_passes_against_the_sandbox(controller: ControllerProcess) -> None:
    code, checks = await asyncio.to_thread(doctor)
    assert failed(checks) == {}
    assert code == 0
    names = " ".join(check["name"] for check in checks)
    for expected in ("ARI reachable", "Stasis application registered", "modules", "AMI login", "clock skew",
                     "context ccc-inbound", "sound files"):
        assert expected in names


async def test_doctor_fails_when_the_app_is_not_registered(fresh_asterisk: Path) -> None:
    code, checks = await asyncio.to_thread(doctor)
    assert code == 1
    assert list(failed(checks)) == ["Stasis application registered"]
    assert "start the controller" in failed(checks)["Stasis application registered"]["fix"]


async def test_doctor_sees_the_application_disconnected_when_its_controller_died_with_calls_left(
        controller: ControllerProcess) -> None:
    caller = Caller("4008000001", steps=[Pause(15000)])
    await caller.start()
    await wait_until(lambda: _in_stasis())
    controller.kill()  # the call stays in Stasis: GET /applications still lists the application
    assert "ccc" in [app["name"] for app in await ari_get("/applications")]
    code, checks = await asyncio.to_thread(doctor)
    assert code == 1 and list(failed(checks)) == ["Stasis application registered"], checks
    assert "is not connected" in failed(checks)["Stasis application registered"]["detail"]
    caller.kill()


async def _in_stasis() -> bool:
    return any(c["dialplan"]["app_name"] == "Stasis" for c in await ari_get("/channels"))


async def test_doctor_fails_on_a_wrong_ari_password(fresh_asterisk: Path) -> None:
    code, checks = await asyncio.to_thread(doctor, env={"CCC_ARI_PASSWORD": "wrong"})
    assert code == 1
    check = failed(checks)["ARI reachable with the credentials"]
    assert "401" in check["detail"] and "ari.conf" in check["fix"]


async def test_doctor_fails_when_a_needed_module_is_unloaded(controller: ControllerProcess) -> None:
    # Asterisk refuses to unload a module in use (a holding bridge of a call still ending): try until it is out.
    deadline = time.monotonic() + 20
    while "bridge_holding.so" in sandbox.cli("module show like bridge_holding") and time.monotonic() < deadline:
        sandbox.cli("module unload bridge_holding.so")
        await asyncio.sleep(0.5)
    try:
        code, checks = await asyncio.to_thread(doctor)
    finally:
        sandbox.cli("module load bridge_holding.so")
    assert code == 1
    check = failed(checks)["needed modules loaded"]
    assert "bridge_holding.so" in check["detail"] and "module load" in check["fix"]


async def test_ami_survives_an_asterisk_restart_and_trunks_show(controller: ControllerProcess) -> None:
    status, body = await controller.api("GET", "/api/asterisk/trunks")
    assert status == 200, body
    sandbox.stop()
    sandbox.start()
    await controller.wait_healthy(30)

    async def trunks_answer() -> dict | None:  # type: ignore[type-arg]
        status, body = await controller.api("GET", "/api/asterisk/trunks")
        return body if status == 200 else None

    body = await wait_until(trunks_answer, timeout=20, interval=0.5)
    assert [t["name"] for t in body["pjsip"]] == ["loopback-trunk"]
    assert body["dahdi_loaded"] is False
    process = await asyncio.to_thread(
        subprocess.run, [*CCCTL, "--url", controller.url, "--token", ADMIN_TOKEN, "trunks"],
        capture_output=True, text=True, timeout=30)
    assert process.returncode == 0, process.stderr
    assert "loopback-trunk" in process.stdout and "chan_dahdi is not loaded" in process.stdout


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert shutil.which("systemd-analyze"), "make deps installs systemd"
    unit = tmp_path / "ccc-controller.service"
    process = subprocess.run([*CCCTL, "service", "unit", "--venv", str(Path(sys.executable).parent.parent),
                              "--config", str(REPO / "demo/controller.yaml")], capture_output=True, text=True)
    unit.write_text(process.stdout)
    assert "Restart=on-failure" in process.stdout and "User=ccc" in process.stdout
    assert "ExecReload=/bin/kill -HUP $MAINPID" in process.stdout
    assert "RestartPreventExitStatus=2 3" in process.stdout and "KillMode=mixed" in process.stdout
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr


def test_guard_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "ccc-guard.service"
    process = subprocess.run([*CCCTL, "service", "unit", "--unit", "ccc-guard", "--venv",
                              str(Path(sys.executable).parent.parent), "--config", str(REPO / "demo/controller.yaml")],
                             capture_output=True, text=True)
    unit.write_text(process.stdout)
    assert "bin/ccc-guard --config" in process.stdout and "Restart=on-failure" in process.stdout
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
