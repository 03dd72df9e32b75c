"""API contract, checked from the outside: who may call what, and bad input changes nothing.

`ACCESS` is written by hand from the product's rules (README "Security defaults", "Call control",
"Supervisor monitoring", …), NOT derived from the server's `@roles` decorators or its OpenAPI
document: a wrong decorator must disagree with it. Every operation of `/openapi.json` needs a row
(a new route without one fails, naming it), and every row an operation (a removed route fails too).

Adding a route: add one line `"METHOD /path/{param}": "roles allowed"` (PUBLIC for no token).
`admin` is written out where it is allowed, so each row reads on its own. Ownership (an agent's
token on another agent's id or call) is checked in test_access.py.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ControllerProcess

pytestmark = pytest.mark.e2e
PUBLIC = "public"
ALL = "admin supervisor integration agent"
STAFF = "admin supervisor integration"  # everyone but agents

ACCESS: dict[str, str] = {
    "GET /healthz": PUBLIC,
    "GET /api/status": STAFF,
    "GET /metrics": STAFF,
    "GET /api/asterisk/trunks": STAFF,
    # agents: each agent its own
    "GET /api/agents": ALL,
    "GET /api/directory": ALL,
    "GET /api/desk/options": ALL,
    "GET /api/agents/{agent_id}": ALL,
    "POST /api/agents/{agent_id}/login": ALL,
    "POST /api/agents/{agent_id}/ready": ALL,
    "POST /api/agents/{agent_id}/not_ready": ALL,
    "POST /api/agents/{agent_id}/end_acw": ALL,
    "POST /api/agents/{agent_id}/logout": ALL,
    # queues: an agent sees the list, not the waiting callers
    "GET /api/queues": ALL,
    "GET /api/queues/{queue}": STAFF,
    # callbacks: an agent sees its queues' and its own personal ones (README "Callbacks")
    "GET /api/callbacks": ALL,
    "POST /api/callbacks": ALL,
    "POST /api/callbacks/{callback_id}/done": ALL,
    # calls
    "GET /api/calls": STAFF,
    "GET /api/calls/{call_id}": STAFF,
    "POST /api/calls": ALL,
    "GET /api/numbers/{number}/calls": ALL,
    "GET /api/agents/{agent_id}/calls": ALL,  # an agent: its own (test_toolbar_history.py)
    "POST /api/calls/{call_id}/disposition": ALL,
    "POST /api/calls/{call_id}/hold": ALL,
    "POST /api/calls/{call_id}/resume": ALL,
    "POST /api/calls/{call_id}/hangup": ALL,
    "POST /api/calls/{call_id}/transfer": ALL,
    "POST /api/calls/{call_id}/conference": ALL,
    "POST /api/calls/{call_id}/conference/remove": ALL,
    "POST /api/calls/{call_id}/consult": ALL,
    "POST /api/calls/{call_id}/consult/complete": ALL,
    "POST /api/calls/{call_id}/consult/cancel": ALL,
    "POST /api/calls/{call_id}/consult/conference": ALL,
    "POST /api/calls/{call_id}/play": ALL,
    "POST /api/calls/{call_id}/pickup": ALL,
    "POST /api/calls/{call_id}/monitor": "admin supervisor",  # listen/whisper/barge: supervisors only
    # recordings
    "POST /api/calls/{call_id}/recording": ALL,
    "POST /api/calls/{call_id}/recording/pause": ALL,
    "POST /api/calls/{call_id}/recording/resume": ALL,
    "POST /api/calls/{call_id}/recording/stop": ALL,
    "GET /api/recordings": ALL,
    "GET /api/recordings/{recording_id}": ALL,
    "GET /api/recordings/{recording_id}/audio": ALL,
    # quality assurance (README "Quality assurance"): supervisors score; agents read their own scores
    "GET /api/qa/forms": ALL,
    "GET /api/qa/forms/{form}": ALL,
    "PUT /api/qa/forms/{form}": "admin supervisor",
    "DELETE /api/qa/forms/{form}": "admin supervisor",
    "POST /api/qa/scores": "admin supervisor",
    "GET /api/qa/scores": ALL,
    "GET /api/qa/scores/{score_id}": ALL,
    "GET /api/qa/report": STAFF,
    # the inbox (voicemail as work) and follow-up tasks: agents see their own and their queues'
    "GET /api/inbox": ALL,
    "GET /api/inbox/report": STAFF,
    "GET /api/inbox/{item_id}": ALL,
    "GET /api/inbox/{item_id}/audio": ALL,
    "GET /api/inbox/{item_id}/document": ALL,
    # faxes sent from the API (an agent sees its own)
    "POST /api/faxes": ALL,
    "GET /api/faxes/{fax_id}": ALL,
    "POST /api/inbox/{item_id}/assign": ALL,
    "POST /api/inbox/{item_id}/callback": ALL,
    "POST /api/inbox/{item_id}/done": ALL,
    "GET /api/tasks": ALL,
    "POST /api/tasks": ALL,
    "GET /api/tasks/counts": ALL,
    "GET /api/tasks/{task_id}": ALL,
    "POST /api/tasks/{task_id}/close": ALL,
    # IVR, reports
    "GET /api/flows": STAFF,
    "POST /api/flows/reload": "admin",
    "POST /api/config/reload": "admin",
    "GET /api/reports": STAFF,
    "GET /api/reports/campaigns": STAFF,
    # workforce management (README "Forecasting and staffing", "Schedules and adherence"): supervisors
    "GET /api/forecast": "admin supervisor",
    "GET /api/intraday": "admin supervisor",
    "GET /api/shifts": "admin supervisor",
    "POST /api/shifts": "admin supervisor",
    "DELETE /api/shifts/{shift_id}": "admin supervisor",
    "GET /api/adherence": "admin supervisor",
    "GET /api/reports/adherence": "admin supervisor",
    # outbound campaigns (README "Outbound campaigns"): supervisors; agents give their contacts' dispositions
    "GET /api/campaigns": "admin supervisor",
    "POST /api/campaigns": "admin supervisor",
    "GET /api/campaigns/{name}": "admin supervisor",
    "POST /api/campaigns/{name}/contacts": "admin supervisor",
    "GET /api/campaigns/{name}/contacts": "admin supervisor",
    "POST /api/campaigns/{name}/start": "admin supervisor",
    "POST /api/campaigns/{name}/pause": "admin supervisor",
    "POST /api/campaigns/{name}/stop": "admin supervisor",
    "POST /api/campaigns/{name}/contacts/{contact_no}/disposition": "admin supervisor agent",
    "GET /api/agents/{agent_id}/preview": "admin supervisor agent",
    "POST /api/agents/{agent_id}/preview/dial": "admin supervisor agent",
    "POST /api/agents/{agent_id}/preview/skip": "admin supervisor agent",
    "GET /api/dnc": "admin supervisor",
    "POST /api/dnc": "admin supervisor",
    # CTI
    "GET /ws": ALL,
    "GET /api/events": ALL,
    "GET /api/events/schemas": ALL,
    "GET /api/webhooks": "admin integration",
    "POST /api/webhooks/{name}/replay": "admin integration",
    "GET /api/webhooks/{name}/dead-letters": "admin integration",
    "POST /api/webhooks/{name}/dead-letters/replay": "admin integration",
    # people and integrations (README "Users and roles", "API tokens", "Audit log")
    "POST /api/auth/login": PUBLIC,
    "POST /api/auth/logout": ALL,  # a token has no session to end: 409
    "GET /api/auth/me": ALL,
    "GET /api/users": "admin supervisor",
    "POST /api/users": "admin",
    "DELETE /api/users/{name}": "admin",
    "POST /api/users/{name}/password": "admin supervisor agent",  # one's own; an admin anyone's
    "GET /api/tokens": "admin",
    "POST /api/tokens": "admin",
    "DELETE /api/tokens/{token_id}": "admin",
    "GET /api/audit": "admin supervisor",
    # the browser phone (README "Browser phone (WebRTC)"): an agent's own SIP credentials; Asterisk's sections
    "GET /api/me/phone": "admin supervisor agent",  # a token other than an agent's is refused: no phone
    # README "Supervisor console": internal messages between users (a token is refused after the role check),
    # alerts acknowledged, a waiting call moved
    "GET /api/messages": "admin supervisor agent",
    "POST /api/messages": "admin supervisor agent",
    "GET /api/messages/contacts": "admin supervisor agent",
    "POST /api/messages/{message_id}/read": "admin supervisor agent",
    "GET /api/alerts": "admin supervisor",
    "POST /api/alerts/{alert_id}/acknowledge": "admin supervisor",
    "POST /api/calls/{call_id}/move": "admin supervisor",
    "GET /api/softphone/pjsip": "admin",
    # the managed configuration (README "Administration (live configuration)"): supervisors run the floor
    # (agents, queues, reasons, prompts, standards); DIDs, webhooks, ACD settings and whole documents are admins'
    "GET /api/config": "admin supervisor integration",
    "POST /api/config/apply": "admin",
    **{f"{method} /api/config/{plural}{item}": allowed
       for plural, writers in (("queues", "admin supervisor"), ("agents", "admin supervisor"),
                               ("not_ready_reasons", "admin supervisor"), ("standard_prompts", "admin supervisor"),
                               ("dids", "admin"), ("webhooks", "admin"))
       for method, item, allowed in (("GET", "", "admin supervisor integration"),
                                     ("GET", "/{key}", "admin supervisor integration"),
                                     ("PUT", "/{key}", writers), ("DELETE", "/{key}", writers))},
    "GET /api/config/standards": "admin supervisor integration",
    "PUT /api/config/standards": "admin supervisor",
    "GET /api/config/acd_settings": "admin supervisor integration",
    "PUT /api/config/acd_settings": "admin",
}

TOKENS = {"admin": "demo-admin-token", "supervisor": "demo-supervisor-token",
          "integration": "demo-integration-token", "agent": "demo-agent-1001-token"}
#: Path parameters: the agent's own id (so an allowed agent is not refused for ownership), ids that
#: exist nowhere for the rest.
PARAMETERS = {"agent_id": "1001", "call_id": "nope-call", "number": "13800138000", "queue": "general",
              "recording_id": "999999", "name": "nope-hook", "token_id": "999999", "key": "nope-key",
              "shift_id": "999999", "item_id": "0" * 32, "task_id": "0" * 32, "callback_id": "999999",
              "contact_no": "999999", "fax_id": "0" * 32, "message_id": "0" * 32, "alert_id": "999999",
              "form": "nope-form", "score_id": "0" * 32}


def concrete(template: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: PARAMETERS[m.group(1)], template)


def role_refusal(status: int, body: Any) -> bool:
    """The middleware's refusal of a role (not an ownership refusal, which an allowed role may get)."""
    return status == 403 and isinstance(body, dict) and str(body.get("error", "")).startswith("role ")


async def state(process: ControllerProcess) -> dict[str, Any]:
    _, agents = await process.api("GET", "/api/agents")
    _, queues = await process.api("GET", "/api/queues")
    _, calls = await process.api("GET", "/api/calls")
    return {"agents": agents, "queues": queues, "active": calls["active"], "recent": calls["recent"]}


async def not_utf8(process: ControllerProcess, method: str, path: str) -> int:
    headers = {"Authorization": f"Bearer {TOKENS['admin']}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.request(method, process.url + path, headers=headers,
                                                             data=b'{"x": "\xff\xfe"}') as response:
        return response.status


def test_the_table_has_no_unknown_role() -> None:
    for route, allowed in ACCESS.items():
        assert allowed == PUBLIC or set(allowed.split()) <= set(TOKENS), f"{route}: {allowed!r}"


async def test_every_route_answers_every_role_as_the_table_says(controller: ControllerProcess) -> None:
    _, document = await controller.api("GET", "/openapi.json")
    operations = {f"{method.upper()} {path}": operation for path, item in document["paths"].items()
                  for method, operation in item.items()}
    missing = sorted(set(operations) - set(ACCESS))
    assert not missing, "no row in tests/e2e/test_contract.py ACCESS for: " + ", ".join(missing)
    stale = sorted(set(ACCESS) - set(operations))
    assert not stale, "ACCESS rows for routes /openapi.json does not describe: " + ", ".join(stale)

    wrong: list[str] = []
    async with aiohttp.ClientSession() as http:
        async def call(route: str, token: str | None) -> tuple[int, Any]:
            method, template = route.split(" ", 1)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            # An empty object: never a valid body here, so allowed roles are stopped by validation (400).
            body = {} if "requestBody" in operations[route] else None
            async with http.request(method, controller.url + concrete(template), headers=headers,
                                    json=body) as response:
                try:
                    return response.status, await response.json(content_type=None)
                except ValueError:
                    return response.status, None

        for route, allowed in ACCESS.items():
            status, body = await call(route, None)
            if allowed == PUBLIC:
                if status in (401, 403):
                    wrong.append(f"{route} without a token: {status}, but it is public")
                continue
            if status != 401:
                wrong.append(f"{route} without a token: {status}, expected 401")
            for role, token in TOKENS.items():
                status, body = await call(route, token)
                if role in allowed.split():
                    if status == 401 or role_refusal(status, body) or status >= 500:
                        wrong.append(f"{route} as {role}: {status} {body}, but the role is allowed")
                elif not role_refusal(status, body):
                    wrong.append(f"{route} as {role}: {status} {body}, expected 403 (role refused)")
    assert not wrong, "\n".join(wrong)


async def test_every_operation_refuses_bad_input_and_changes_nothing(controller: ControllerProcess) -> None:
    _, document = await controller.api("GET", "/openapi.json")
    before = await state(controller)
    checked = 0
    for template, item in document["paths"].items():
        for method, operation in item.items():
            if ACCESS.get(f"{method.upper()} {template}") == PUBLIC or template == "/ws":
                continue
            path = re.sub(r"\{[^}]+\}", lambda m: "999999" if "recording" in m.group(0) else "nope-id", template)
            if "requestBody" in operation:
                status, _ = await controller.api(method.upper(), path, json=["not", "an", "object"])
                assert status == 400, f"{method} {template} with a list body: {status}"
                status, _ = await controller.api(method.upper(), path, json={"unexpected": 1})
                assert status == 400, f"{method} {template} with an unknown field: {status}"
                status = await not_utf8(controller, method.upper(), path)
                assert status == 400, f"{method} {template} with a body that is not UTF-8: {status}"
            elif method == "post" and "{call_id}" in template:
                status, body = await controller.api(method.upper(), path)
                assert status == 404, f"{method} {template} on an unknown call: {status} {body}"
            checked += 1
    assert checked >= 30
    for huge in ("/api/recordings/" + "9" * 30, "/api/recordings/" + "9" * 30 + "/audio"):
        status, _ = await controller.api("GET", huge)
        assert status in (400, 404), f"{huge}: {status}"  # beyond any integer the store holds
    status, _ = await controller.api("GET", "/api/recordings?limit=1001")
    assert status == 400  # above the documented maximum
    assert await state(controller) == before
