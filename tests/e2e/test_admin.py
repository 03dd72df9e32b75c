"""Live administration on the real controller (README "Administration (live configuration)"): a change made
through /api/config takes effect at once and survives a restart (the database wins over the file); a bad
change is refused with the configuration file's messages and changes nothing; the audit log says who."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import ControllerProcess

pytestmark = pytest.mark.e2e
SUPERVISOR = "demo-supervisor-token"
AGENT_1001 = "demo-agent-1001-token"


async def config_events(process: ControllerProcess) -> list[dict[str, Any]]:
    status, page = await process.api("GET", "/api/events?since=0&limit=1000")
    assert status == 200, page
    return [event["data"] for event in page["events"] if event["type"] == "config.changed"]


async def test_a_not_ready_reason_added_live_is_usable_at_once_and_after_a_restart(
        controller: ControllerProcess) -> None:
    status, body = await controller.api("POST", "/api/agents/1001/login", AGENT_1001, json={"ready": True})
    assert status == 200, body
    status, body = await controller.api("POST", "/api/agents/1001/not_ready", AGENT_1001, json={"reason": "coaching"})
    assert status == 409 and "unknown not-ready reason 'coaching'" in body["error"]  # not yet

    status, body = await controller.api("PUT", "/api/config/not_ready_reasons/coaching", SUPERVISOR)
    assert status == 200, body
    assert body["changes"] == [{"op": "add", "kind": "not_ready_reason", "key": "coaching", "before": None,
                                "after": "coaching"}]
    status, body = await controller.api("POST", "/api/agents/1001/not_ready", AGENT_1001, json={"reason": "coaching"})
    assert status == 200 and (body["state"], body["reason"]) == ("not_ready", "coaching"), body

    status, entries = await controller.api("GET", "/api/audit?action=config.put")
    assert status == 200, entries
    (entry,) = entries["entries"]
    assert (entry["actor"], entry["role"], entry["target"], entry["before"], entry["after"]) == (
        "token:wallboard", "supervisor", "not_ready_reason:coaching", None, "coaching")
    assert {"kind": "not_ready_reason", "key": "coaching", "op": "add"} in await config_events(controller)
    status, body = await controller.api("PUT", "/api/config/acd_settings", json={"center_name": "新热线"})
    assert status == 200, body
    status, entries = await controller.api("GET", "/api/audit?target=acd_setting:center_name")
    (entry,) = entries["entries"]
    assert (entry["actor"], entry["action"], entry["before"], entry["after"]) == (
        "token:ops", "config.put", "演示热线", "新热线")
    status, document = await controller.api("GET", "/api/config", SUPERVISOR)
    assert status == 200 and "coaching" in document["acd"]["not_ready_reasons"]

    controller.terminate()  # the file does not have it: the database wins at the next start
    await controller.start()
    status, reasons = await controller.api("GET", "/api/config/not_ready_reasons")
    assert status == 200 and "coaching" in [item["key"] for item in reasons["items"]], reasons
    status, body = await controller.api("GET", "/api/agents/1001", AGENT_1001)
    assert (body["state"], body["reason"]) == ("not_ready", "coaching"), body  # as the agent was
    status, body = await controller.api("POST", "/api/agents/1001/ready", AGENT_1001)
    assert status == 200, body
    status, body = await controller.api("POST", "/api/agents/1001/not_ready", AGENT_1001, json={"reason": "coaching"})
    assert status == 200 and body["reason"] == "coaching", body
    assert "differ from the database" in controller.log.read_text()  # the start said the file is not used


async def test_a_bad_change_gets_422_with_the_field_path_and_changes_nothing(controller: ControllerProcess) -> None:
    _, before = await controller.api("GET", "/api/config")
    _, audit_before = await controller.api("GET", "/api/audit?action=config.")
    bad_agent = {"name": "赵六", "number": "1006", "endpoint": "8006", "skills": {"billing": "x"},
                 "queues": {"nope": 0}}
    status, body = await controller.api("PUT", "/api/config/agents/1006", SUPERVISOR, json=bad_agent)
    assert status == 422, body
    assert body["problems"] == ["agents[1006].skills.billing: expected an integer, got 'x'"]
    status, body = await controller.api("PUT", "/api/config/agents/1006", SUPERVISOR,
                                        json={**bad_agent, "skills": {"billing": 3}})
    assert status == 422 and body["problems"][0].startswith("agents[1006].queues.nope: no queue 'nope'"), body
    status, body = await controller.api("POST", "/api/config/apply", json={
        "yaml": "acd:\n  agents:\n    - id: '1006'\n      name: x\n", "source": "new.yaml"})
    assert status == 422 and body["problems"][0] == "new.yaml:3:7: acd.agents[0]: missing required key 'number'"
    assert (await controller.api("GET", "/api/config"))[1] == before
    assert (await controller.api("GET", "/api/audit?action=config."))[1] == audit_before
    assert (await controller.api("GET", "/api/agents/1006"))[0] == 404
    # the same agent, valid: it is made (the refusals above were not blind)
    status, body = await controller.api("PUT", "/api/config/agents/1006", SUPERVISOR,
                                        json={**bad_agent, "skills": {"billing": 3}, "queues": {"general": 0}})
    assert status == 200 and body["value"]["skills"] == {"billing": 3}, body
    assert (await controller.api("GET", "/api/config"))[1] != before
