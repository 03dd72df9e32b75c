"""Route descriptions: one decorator gives a route its OpenAPI entry and its input checks.

    @operation("Set an agent ready", tag="agents", body=READY_BODY, responses={200: AGENT})
    @roles("agent", "supervisor")
    async def ready(request): ...

The request body is validated against the JSON Schema before the handler runs, so bad input is
refused with a clear 400 and never changes state. `/openapi.json` is generated from the routes
actually registered, so the description cannot drift from the server (a test checks both ways).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
from aiohttp import web

from controller import __version__
from controller.http.server import Handler, json_error

_PATH_PARAM = re.compile(r"\{(\w+)\}")


@dataclass
class Operation:
    summary: str
    tag: str
    body: dict[str, Any] | None = None
    query: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> schema
    responses: dict[int, dict[str, Any]] = field(default_factory=dict)  # status -> schema
    description: str = ""


ERROR_SCHEMA = {"type": "object", "required": ["error", "status"],
                "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}


def operation(
    summary: str,
    *,
    tag: str,
    body: dict[str, Any] | None = None,
    query: dict[str, dict[str, Any]] | None = None,
    responses: dict[int, dict[str, Any]] | None = None,
    description: str = "",
) -> Callable[[Handler], Handler]:
    spec = Operation(summary, tag, body, query or {}, responses or {200: {"type": "object"}}, description)
    validator = jsonschema.Draft202012Validator(body) if body is not None else None

    def decorate(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            if validator is not None:
                try:
                    payload = await request.json() if request.can_read_body else None
                except json.JSONDecodeError:
                    return json_error(400, "the request body is not valid JSON")
                errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.path))
                if errors:
                    first = errors[0]
                    where = "/".join(str(p) for p in first.path) or "body"
                    return json_error(400, f"{where}: {first.message}")
                request["body"] = payload
            return await handler(request)

        for attribute in ("__ccc_roles__", "__ccc_public__"):
            if hasattr(handler, attribute):
                setattr(checked, attribute, getattr(handler, attribute))
        checked.__ccc_operation__ = spec  # type: ignore[attr-defined]
        checked.__name__ = handler.__name__
        checked.__doc__ = handler.__doc__
        return checked

    return decorate


def body_of(request: web.Request) -> Any:
    """The validated JSON body of a request (set by @operation)."""
    return request.get("body")


def _roles_text(handler: Any) -> str:
    allowed = sorted(getattr(handler, "__ccc_roles__", {"admin"}))
    return "public" if getattr(handler, "__ccc_public__", False) else "roles: " + ", ".join(allowed)


def openapi_document(routes: Iterable[web.AbstractRouteDef]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, web.RouteDef):
            continue
        handler = route.handler
        if getattr(handler, "__ccc_page__", False):
            continue  # web pages are not API operations
        spec: Operation | None = getattr(handler, "__ccc_operation__", None)
        method = route.method.lower()
        entry: dict[str, Any] = {
            "operationId": f"{method}_{route.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "summary": spec.summary if spec else (handler.__doc__ or handler.__name__).strip().split("\n")[0],
            "tags": [spec.tag if spec else "misc"],
            "description": ((spec.description + "\n\n") if spec and spec.description else "") + _roles_text(handler),
            "responses": {},
        }
        parameters = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                      for name in _PATH_PARAM.findall(route.path)]
        if spec:
            parameters += [{"name": name, "in": "query", "required": False, "schema": schema}
                           for name, schema in spec.query.items()]
            if spec.body is not None:
                entry["requestBody"] = {"required": True,
                                        "content": {"application/json": {"schema": spec.body}}}
            for status, schema in spec.responses.items():
                entry["responses"][str(status)] = {"description": "OK" if status < 300 else "error",
                                                   "content": {"application/json": {"schema": schema}}}
        else:
            entry["responses"]["200"] = {"description": "OK"}
        if parameters:
            entry["parameters"] = parameters
        if not getattr(handler, "__ccc_public__", False):
            entry["security"] = [{"bearer": []}]
            for status, text in ((400, "bad input"), (401, "missing or invalid token"),
                                 (403, "the token's role may not do this"), (404, "unknown id")):
                entry["responses"].setdefault(str(status), {
                    "description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}})
        paths.setdefault(route.path, {})[method] = entry
    return {
        "openapi": "3.0.3",
        "info": {"title": "Asterisk call-center controller API", "version": __version__,
                 "description": "Every route but /healthz needs `Authorization: Bearer <token>`; "
                                "tokens and their roles come from the configuration."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
