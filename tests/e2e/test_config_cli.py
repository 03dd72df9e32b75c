"""Configuration as code and reloading, with ccctl against one real controller (shared by these tests):
`ccctl config export|apply|reload`, `ccctl agents|queues add|edit|list`, SIGHUP."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import ControllerProcess, demo_config, running_controller
from tests.e2e.test_cli import ccctl

pytestmark = pytest.mark.e2e
NEWLY_DENIED = "13900139000"


@pytest.fixture(scope="module")
def shared(asterisk: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    """One controller for the module: each test works from what the previous ones left (it exports first)."""
    folder = tmp_path_factory.mktemp("config-cli")
    with running_controller(folder, demo_config(folder)) as process:
        yield process


def run(process: ControllerProcess, *args: str) -> Any:
    return ccctl(*args, url=process.url)


async def document(process: ControllerProcess) -> dict[str, Any]:
    status, body = await process.api("GET", "/api/config")
    assert status == 200, body
    return dict(body)


async def test_export_then_apply_on_an_unchanged_system_is_a_no_op(shared: ControllerProcess, tmp_path: Path) -> None:
    secret = "webhook-secret-0123456789"
    status, body = await shared.api("PUT", "/api/config/webhooks/crm", json={
        "url": "http://127.0.0.1:9/hook", "secret": secret, "types": ["agent.*"]})
    assert status == 200, body
    exported = tmp_path / "managed.yaml"
    result = await asyncio.to_thread(run, shared, "config", "export", "--output", str(exported))
    assert result.returncode == 0, result.stderr
    text = exported.read_text(encoding="utf-8")
    assert "name: 王芳" in text and "title: 业务咨询" in text and "\\u" not in text  # Chinese as it is
    assert "secret: '***'" in text and secret not in text  # and the secret kept when applied back (below)
    data = yaml.safe_load(text)
    assert {agent["id"] for agent in data["acd"]["agents"]} >= {"1001", "1005"} and data["dids"]
    stdout = await asyncio.to_thread(run, shared, "config", "export")
    assert stdout.returncode == 0 and yaml.safe_load(stdout.stdout) == data
    before = await document(shared)
    applied = await asyncio.to_thread(run, shared, "config", "apply", str(exported))
    assert applied.returncode == 0, applied.stderr
    assert "no change: the controller already has this configuration" in applied.stdout
    assert await document(shared) == before
    _, audit = await shared.api("GET", "/api/audit", params={"action": "config."})
    assert [e["actor"] for e in audit["entries"]] == ["token:ops", "config-file"]  # the webhook's PUT and the seed
    # A whole controller.yaml applies too (its other sections are ignored, with a note).
    whole = await asyncio.to_thread(run, shared, "config", "apply", str(shared.config), "--json")
    assert whole.returncode == 0, whole.stderr
    assert json.loads(whole.stdout)["changes"] == [] and json.loads(whole.stdout)["notes"]


async def test_a_changed_file_shows_its_difference_with_dry_run_and_then_applies(
        shared: ControllerProcess, tmp_path: Path) -> None:
    exported = tmp_path / "managed.yaml"
    assert (await asyncio.to_thread(run, shared, "config", "export", "-o", str(exported))).returncode == 0
    data = yaml.safe_load(exported.read_text(encoding="utf-8"))
    general = next(queue for queue in data["acd"]["queues"] if queue["name"] == "general")
    general["wrapup_seconds"] = 45
    data["acd"]["agents"].append({"id": "1006", "name": "赵敏", "number": "1006", "endpoint": "8006",
                                  "skills": {"general": 7}, "queues": {"general": 0}})
    data["acd"]["not_ready_reasons"].remove("training")
    exported.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    before = await document(shared)

    dry = await asyncio.to_thread(run, shared, "config", "apply", str(exported), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert "+ agent 1006" in lines and "    name: 赵敏" in lines and '    queues: {"general": 0}' in lines
    assert "~ queue general" in lines and "    wrapup_seconds: 10.0 -> 45.0" in lines
    assert "- not_ready_reason training" in lines
    assert lines[-1] == "dry run: 1 added, 1 changed, 1 removed; nothing was changed (apply without --dry-run)"
    assert await document(shared) == before  # the dry run changed nothing

    applied = await asyncio.to_thread(run, shared, "config", "apply", str(exported))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[-1] == "applied: 1 added, 1 changed, 1 removed"
    status, agent = await shared.api("GET", "/api/config/agents/1006")
    assert status == 200 and agent["value"]["name"] == "赵敏"
    _, queue = await shared.api("GET", "/api/config/queues/general")
    assert queue["value"]["wrapup_seconds"] == 45
    again = await asyncio.to_thread(run, shared, "config", "apply", str(exported))
    assert "no change" in again.stdout


async def test_a_bad_file_is_refused_with_file_line_column_and_changes_nothing(
        shared: ControllerProcess, tmp_path: Path) -> None:
    exported = tmp_path / "managed.yaml"
    assert (await asyncio.to_thread(run, shared, "config", "export", "-o", str(exported))).returncode == 0
    text = exported.read_text(encoding="utf-8")
    lines = text.splitlines()
    line = next(number for number, content in enumerate(lines, 1) if re.match(r"\s+wrapup_seconds:", content))
    bad = tmp_path / "bad.yaml"
    lines[line - 1] = re.sub(r"wrapup_seconds: .*", "wrapup_seconds: soon", lines[line - 1])
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = await document(shared)
    for dry_run in ((), ("--dry-run",)):
        refused = await asyncio.to_thread(run, shared, "config", "apply", str(bad), *dry_run)
        assert refused.returncode != 0 and refused.stdout == ""
        column = lines[line - 1].index("soon") + 1
        assert f"  {bad}:{line}:{column}: " in refused.stderr and "expected a number, got 'soon'" in refused.stderr
    assert await document(shared) == before


async def test_sighup_applies_logging_and_dialing_and_names_the_http_port_as_needing_a_restart(
        shared: ControllerProcess) -> None:
    dial = {"agent_id": "1001", "number": NEWLY_DENIED}
    status, body = await shared.api("POST", "/api/calls", json=dial)
    assert status == 409 and "may not be dialled" not in body["error"]  # allowed; agent 1001 is not logged in
    original = shared.config.read_text(encoding="utf-8")
    changed = yaml.safe_load(original)
    changed["logging"] = {"level": "warning", "format": "json"}
    changed["dialing"]["denied_prefixes"] = ["00", "+", "139"]
    changed["http"]["port"] = shared.port + 1
    shared.config.write_text(yaml.safe_dump(changed, allow_unicode=True, sort_keys=False), encoding="utf-8")
    log_size = shared.log.stat().st_size
    try:
        assert shared.process is not None
        shared.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while (status := (await shared.api("POST", "/api/calls", json=dial))[0]) != 403:
            assert time.monotonic() < deadline, f"the dialing prefixes were not reloaded ({status})"
            await asyncio.sleep(0.2)
        _, body = await shared.api("POST", "/api/calls", json=dial)
        assert "may not be dialled" in body["error"]
        assert (await shared.api("POST", "/api/calls", json={**dial, "number": "13800138000"}))[0] == 409
        await asyncio.sleep(0.5)
        after = shared.log.read_bytes()[log_size:].decode(errors="replace").splitlines()
        records = [json.loads(line) for line in after if line.startswith("{")]
        assert records and len(records) == len(after), after  # JSON from the reload on
        assert not [r for r in records if r["level"] in ("debug", "info")]  # level warning
        assert any("http.port" in r["msg"] and r["level"] == "warning" for r in records), records
        # The API answers the same (and the managed sections the earlier tests changed are ignored).
        answer = await asyncio.to_thread(run, shared, "config", "reload", "--json")
        assert answer.returncode == 0, answer.stderr
        report = json.loads(answer.stdout)["configuration"]
        assert report["applied"] == [] and report["restart_required"] == ["http.port"] and not report["problems"]
        assert "acd.agents" in report["managed_in_database"]
        text = await asyncio.to_thread(run, shared, "flows", "reload")
        assert "needs a restart: http.port" in text.stdout and "flows: " in text.stdout
        # A bad file changes nothing and says where.
        shared.config.write_text(original.replace("format: text", "format: fancy"), encoding="utf-8")
        refused = await asyncio.to_thread(run, shared, "config", "reload")
        assert refused.returncode == 1 and f"{shared.config}:" in refused.stderr and "fancy" in refused.stderr
        assert (await shared.api("POST", "/api/calls", json=dial))[0] == 403  # still the reloaded prefixes
    finally:
        shared.config.write_text(original, encoding="utf-8")
        status, restored = await shared.api("POST", "/api/config/reload")
    assert status == 200 and "dialing.denied_prefixes" in restored["configuration"]["applied"]
    assert (await shared.api("POST", "/api/calls", json=dial))[0] == 409


async def test_ccctl_agents_add_then_list_and_queues_edit(shared: ControllerProcess) -> None:
    added = await asyncio.to_thread(run, shared, "agents", "add", "1007", "--name", "王芳", "--number", "1007",
                                    "--phone", "8007", "--skill", "billing=7", "--queue", "general=0")
    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines()[0] == "+ agent 1007" and "    name: 王芳" in added.stdout
    listing = await asyncio.to_thread(run, shared, "agents", "list")
    row = next(line for line in listing.stdout.splitlines() if line.startswith("1007"))
    assert "王芳" in row and "8007" in row and "billing=7" in row and "general=0" in row
    listed = json.loads((await asyncio.to_thread(run, shared, "agents", "list", "--json")).stdout)
    assert {"key": "1007", "value": {"id": "1007", "name": "王芳", "number": "1007", "endpoint": "8007",
                                     "skills": {"billing": 7}, "queues": {"general": 0}}} in [
        {"key": item["key"], "value": {k: v for k, v in item["value"].items() if k not in ("caller_id", "enabled")}}
        for item in listed["items"]]
    again = await asyncio.to_thread(run, shared, "agents", "add", "1007", "--name", "x", "--number", "1",
                                    "--phone", "1")
    assert again.returncode != 0 and "exists already" in again.stderr
    wrong = await asyncio.to_thread(run, shared, "agents", "add", "1008", "--name", "周杰", "--number", "1008",
                                    "--phone", "8008", "--queue", "nowhere=0")
    assert wrong.returncode == 1 and "agents[1008].queues.nowhere: no queue 'nowhere'" in wrong.stderr
    assert (await shared.api("GET", "/api/config/agents/1008"))[0] == 404  # nothing changed
    _, general = await shared.api("GET", "/api/config/queues/general")
    edited = await asyncio.to_thread(run, shared, "queues", "edit", "general", "--wrapup", "33")
    assert edited.returncode == 0, edited.stderr
    assert edited.stdout.splitlines() == ["~ queue general",
                                          f"    wrapup_seconds: {general['value']['wrapup_seconds']} -> 33.0"]
    disabled = await asyncio.to_thread(run, shared, "agents", "disable", "1007")
    assert disabled.stdout.splitlines() == ["~ agent 1007", "    enabled: true -> false"], disabled.stderr
    listing = await asyncio.to_thread(run, shared, "agents", "list")
    assert next(line for line in listing.stdout.splitlines() if line.startswith("1007")).endswith("NO")
    enabled = await asyncio.to_thread(run, shared, "agents", "enable", "1007")
    assert enabled.stdout.splitlines() == ["~ agent 1007", "    enabled: false -> true"], enabled.stderr
    removed = await asyncio.to_thread(run, shared, "agents", "remove", "1007")
    assert removed.returncode == 0 and removed.stdout.strip() == "- agent 1007"
    states = await asyncio.to_thread(run, shared, "agents")  # without an action: the agents' states, as before
    assert states.returncode == 0 and "state" in states.stdout.splitlines()[0]
