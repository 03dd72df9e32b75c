"""API contract: every operation of /openapi.json against a live controller, with bad input.

For each operation: no token → 401; a role it does not allow → 403; a body of the wrong type →
400; unknown ids → 4xx, never 5xx. Then the agents, queues and calls are exactly as before: bad
input never changes state.
"""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ControllerProcess

pytestmark = pytest.mark.e2e
TOKENS = {"agent": "demo-agent-1001-token", "supervisor": "demo-supervisor-token",
          "integration": "demo-integration-token"}


def concrete(path: str) -> str:
    """Path parameters filled with ids that exist nowhere."""
    return re.sub(r"\{[^}]+\}", lambda m: "999999" if "recording" in m.group(0) else "nope-id", path)


async def state(process: ControllerProcess) -> dict[str, Any]:
    _, agents = await process.api("GET", "/api/agents")
    _, queues = await process.api("GET", "/api/queues")
    _, calls = await process.api("GET", "/api/calls")
    return {"agents": agents, "queues": queues, "active": calls["active"]}


async def test_every_operation_refuses_bad_input_and_changes_nothing(controller: ControllerProcess) -> None:
    _, document = await controller.api("GET", "/openapi.json")
    before = await state(controller)
    checked = 0
    async with aiohttp.ClientSession() as http:
        async def call(method: str, path: str, token: str | None, body: Any = None) -> int:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            kwargs: dict[str, Any] = {"headers": headers}
            if body is not None:
                kwargs["json"] = body
            async with http.request(method.upper(), controller.url + path, **kwargs) as response:
                await response.read()
                return response.status

        for template, item in document["paths"].items():
            for method, operation in item.items():
                description = operation.get("description", "")
                if "public" in description.split("\n")[-1]:
                    continue
                path = concrete(template)
                if template in ("/ws",):
                    continue
                assert await call(method, path, None) == 401, f"{method} {template} without a token"
                allowed = set(re.findall(r"[a-z]+", description.split("roles:")[-1]))
                for role, token in TOKENS.items():
                    if role not in allowed:
                        status = await call(method, path, token, {} if "requestBody" in operation else None)
                        assert status == 403, f"{method} {template} as {role}: {status}"
                if "requestBody" in operation:
                    status = await call(method, path, "demo-admin-token", ["not", "an", "object"])
                    assert status == 400, f"{method} {template} with a list body: {status}"
                    status = await call(method, path, "demo-admin-token", {"unexpected": 1})
                    assert status == 400, f"{method} {template} with an unknown field: {status}"
                elif method == "post" and "{" in template:
                    status = await call(method, path, "demo-admin-token")
                    assert 400 <= status < 500, f"{method} {template} on unknown ids: {status}"
                checked += 1
    assert checked >= 30
    assert await state(controller) == before
