"""Route descriptions: one decorator gives a route its OpenAPI entry and its input checks.

    @operation("Set an agent ready", tag="agents", body=READY_BODY, responses={200: AGENT})
    @roles("agent", "supervisor")
    async def ready(request): ...

The request body is validated against the JSON Schema before the handler runs, so bad input is
refused with a clear 400 and never changes state. `/openapi.json` is generated from the routes
actually registered, so the description cannot drift from the server (a test checks both ways).
"""

from __future__ import annotations

import math
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
    body_required: bool = True
    path: dict[str, dict[str, Any]] = field(default_factory=dict)  # path parameter -> schema (default: string)
    errors: dict[int, str] = field(default_factory=dict)  # further error statuses -> when they happen
    required_query: tuple[str, ...] = ()  # query parameters a request must give


ERROR_SCHEMA = {"type": "object", "required": ["error", "status"],
                "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}
#: The error statuses every authenticated operation may answer.
COMMON_ERRORS = {400: "bad input (body, path or query parameter)", 401: "missing or invalid token",
                 403: "the token's role (or agent) may not do this", 404: "unknown id"}
#: Largest integer SQLite stores: ids and sequence numbers above it can exist nowhere.
MAX_ID = 2**63 - 1
#: A telephone number as the API takes it (click-to-dial, history, transfer and conference targets).
NUMBER_PATTERN = "^\\+?[0-9]{3,20}(?!\\n)$"
#: Call commands on a call that is live but not in a state for them (not with an agent, on hold, …).
CALL_CONFLICT = {409: "the call is live but not in a state for this command (the message says why)"}


def validation_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema: `nullable: true` (which JSON Schema does not know) becomes
    "this, or null"."""
    if isinstance(schema, list):
        return [validation_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: validation_schema(value) if key != "properties" else
                 {name: validation_schema(item) for name, item in value.items()}
                 for key, value in schema.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if schema.get("nullable") else converted


def _parameter_value(text: str, schema: dict[str, Any]) -> Any:
    """A path or query parameter's text as the JSON type its schema declares (ValueError when it is not one)."""
    kind = schema.get("type", "string")
    if kind == "integer":
        if not re.fullmatch(r"[+-]?[0-9]{1,30}", text):
            raise ValueError("must be an integer")
        return int(text)
    if kind == "number":
        try:
            value = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    if kind == "boolean":
        if text not in ("true", "false"):
            raise ValueError("must be true or false")
        return text == "true"
    return text


def _parameter_error(request: web.Request, spec: Operation,
                     validators: dict[tuple[str, str], Any]) -> str | None:
    """The first path or query parameter that breaks its schema, as an error message (None: all fine)."""
    for (where, name), validator in validators.items():
        source = request.match_info if where == "path" else request.query
        if name not in source:
            if where == "query" and name in spec.required_query:
                return f"query parameter {name} is required"
            continue
        schema = (spec.path if where == "path" else spec.query)[name]
        try:
            value = _parameter_value(source[name], schema)
        except ValueError as exc:
            return f"{where} parameter {name}: {exc}"
        error = next(iter(validator.iter_errors(value)), None)
        if error is not None:
            return f"{where} parameter {name}: {error.message}"
    return None


def operation(
    summary: str,
    *,
    tag: str,
    body: dict[str, Any] | None = None,
    query: dict[str, dict[str, Any]] | None = None,
    responses: dict[int, dict[str, Any]] | None = None,
    description: str = "",
    body_required: bool = True,
    path: dict[str, dict[str, Any]] | None = None,
    errors: dict[int, str] | None = None,
    checked_body: dict[str, Any] | None = None,
    required_query: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    """Describe a route and check its input against the description before the handler runs.

    `path`/`query`: parameter schemas (checked: a value that breaks one is a 400, never reaches the
    handler); `body`: the JSON body's schema (`body_required=False`: the body may be left out);
    `errors`: the error statuses the route answers beyond 400/401/403/404, with when; `checked_body`: a looser
    schema than `body` to check requests against, when the handler's own checks give better messages (422);
    `required_query`: the query parameters that must be given (a 400 names the missing one).
    """
    spec = Operation(summary, tag, body, query or {}, responses or {200: {"type": "object"}}, description,
                     body_required, path or {}, errors or {}, required_query)
    validator = (jsonschema.Draft202012Validator(validation_schema(checked_body or body))
                 if body is not None else None)
    parameter_validators = {(where, name): jsonschema.Draft202012Validator(schema)
                            for where, schemas in (("path", spec.path), ("query", spec.query))
                            for name, schema in schemas.items()}

    def decorate(handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            problem = _parameter_error(request, spec, parameter_validators)
            if problem is not None:
                return json_error(400, problem)
            if validator is not None:
                if not request.body_exists and not body_required:
                    request["body"] = None
                    return await handler(request)
                try:
                    payload = await request.json() if request.body_exists else None
                except ValueError:  # not JSON, or not UTF-8 at all
                    return json_error(400, "the request body is not valid JSON (UTF-8)")
                if payload is None and not request.body_exists:
                    return json_error(400, "this operation needs a JSON body")
                problems = sorted(validator.iter_errors(payload), key=lambda e: list(e.path))
                if problems:
                    first = problems[0]
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
        path_schemas = spec.path if spec else {}
        parameters = [{"name": name, "in": "path", "required": True,
                       "schema": path_schemas.get(name, {"type": "string"})}
                      for name in _PATH_PARAM.findall(route.path)]
        errors: dict[int, str] = {}
        if spec:
            parameters += [{"name": name, "in": "query", "required": name in spec.required_query, "schema": schema}
                           for name, schema in spec.query.items()]
            if spec.body is not None:
                entry["requestBody"] = {"required": spec.body_required,
                                        "content": {"application/json": {"schema": spec.body}}}
            for status, schema in spec.responses.items():
                entry["responses"][str(status)] = {"description": "OK" if status < 300 else "error",
                                                   "content": {"application/json": {"schema": schema}}}
            errors.update(spec.errors)
        else:
            entry["responses"]["200"] = {"description": "OK"}
        if parameters:
            entry["parameters"] = parameters
        if not getattr(handler, "__ccc_public__", False):
            entry["security"] = [{"bearer": []}]
            errors = {**COMMON_ERRORS, **errors}
        for status, text in sorted(errors.items()):
            entry["responses"].setdefault(str(status), {
                "description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}})
        paths.setdefault(route.path, {})[method] = entry
    return {
        "openapi": "3.0.3",
        "info": {"title": "Asterisk call-center controller API", "version": __version__,
                 "description": "Every route but /healthz and /api/auth/login needs `Authorization: Bearer "
                                "<token>` (API tokens: /api/tokens) or a user's session cookie from "
                                "/api/auth/login, whose state-changing requests repeat its CSRF token in "
                                "`X-CSRF-Token`."},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }
