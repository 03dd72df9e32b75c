"""HTTP: the managed configuration under /api/config (README "Administration (live configuration)").

    GET  /api/config                          the managed document (secrets as "***")
    POST /api/config/apply?dry_run=true       a controller.yaml text: its differences, applied in one transaction
    GET  /api/config/{plural}                 agents, queues, not_ready_reasons, standard_prompts, dids, webhooks
    GET|PUT|DELETE /api/config/{plural}/{key} one item (PUT: create or replace)
    GET|PUT /api/config/standards, /api/config/acd_settings
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from controller.config import Role
from controller.http.openapi import body_of, operation
from controller.http.server import caller_of, json_problems, roles
from controller.plugins.admin.kinds import KINDS, Change, Kind
from controller.plugins.admin.schemas import KEY, body_schema, checked_body_schema, item_schema
from controller.plugins.admin.services import AdminRefused, AdminService

TAG = "configuration"
READERS: tuple[Role, ...] = ("supervisor", "integration")  # and admin
CHANGE = {"type": "object", "required": ["op", "kind", "key", "before", "after"],
          "properties": {"op": {"enum": ["add", "change", "remove"]}, "kind": {"type": "string"},
                         "key": {"type": "string"}}}
CHANGES = {"type": "array", "items": CHANGE}
ERRORS = {409: "refused now by the live state (e.g. a queue with callers waiting)",
          422: "invalid: `problems` lists each as `field.path: message`; nothing was changed"}
APPLY_BODY = {"type": "object", "additionalProperties": False, "required": ["yaml"],
              "properties": {"yaml": {"type": "string", "maxLength": 4_000_000,
                                      "description": "a controller.yaml (or the managed sections of one)"},
                             "source": {"type": "string", "maxLength": 256,
                                        "description": "its file name, for the messages (file:line:column)"}}}
DOCUMENT = {"type": "object", "properties": {"acd": {"type": "object"}, "standards": {"type": "object"},
                                             "dids": {"type": "object"}, "webhooks": {"type": "array"}}}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refusal(exc: AdminRefused) -> web.Response:
    return json_problems(exc.status, exc.message, exc.problems)


def answered(request: web.Request, changes: list[Change], body: dict[str, Any]) -> web.Response:
    if changes:
        request["audited"] = True  # the service wrote the audit rows, in the change's own transaction
    return web.json_response({**body, "changes": [change.public() for change in changes]})


def routes(admin: AdminService) -> list[web.RouteDef]:
    @operation("The managed configuration document: the sections of controller.yaml that are managed live "
               "(secrets as \"***\")", tag=TAG, responses={200: DOCUMENT})
    @roles(*READERS)
    async def get_document(request: web.Request) -> web.Response:
        return web.json_response(admin.document())

    @operation("Apply a controller.yaml's managed sections: every difference, validated as one configuration, in "
               "one transaction (dry_run=true: only the differences). A managed section it leaves out is kept; "
               "other sections are ignored (named in notes)", tag=TAG, body=APPLY_BODY,
               query={"dry_run": {"type": "boolean"}},
               responses={200: {"type": "object", "required": ["changes", "applied", "notes"],
                                "properties": {"changes": CHANGES, "applied": {"type": "boolean"},
                                               "notes": {"type": "array", "items": {"type": "string"}}}}},
               errors=ERRORS)
    @roles("admin")
    async def apply(request: web.Request) -> web.Response:
        body = body_of(request)
        # What the HTTP layer audits of a dry run, a refused or an unchanged apply: not the text, which may hold
        # webhook secrets (an applied change's items have their own rows, secrets masked).
        request["body"] = {**body, "yaml": f"({len(body['yaml'])} characters, not kept: may hold secrets)"}
        dry_run = request.query.get("dry_run") == "true"
        identity = caller_of(request)
        notes: list[str] = []
        try:
            changes = await admin.apply(identity.actor, body["yaml"], dry_run=dry_run, role=identity.role,
                                        source_name=body.get("source") or "document", notes=notes)
        except AdminRefused as exc:
            return refusal(exc)
        if dry_run:
            return web.json_response({"changes": [c.public() for c in changes], "applied": False, "notes": notes})
        return answered(request, changes, {"applied": bool(changes), "notes": notes})

    result = [web.get("/api/config", get_document), web.post("/api/config/apply", apply)]
    for kind in KINDS:
        result += _kind_routes(admin, kind)
    return result


def _kind_routes(admin: AdminService, kind: Kind) -> list[web.RouteDef]:
    item = item_schema(kind)
    one = {"type": "object", "required": ["kind", "key", "value"],
           "properties": {"kind": {"type": "string"}, "key": {"type": "string"}, "value": item}}
    changed: dict[str, Any] = {"type": "object", "required": ["kind", "key", "changes"],
               "properties": {"kind": {"type": "string"}, "key": {"type": "string"}, "changes": CHANGES}}
    base = f"/api/config/{kind.plural}"

    async def run(request: web.Request, key: str, change: Callable[[str, str], Awaitable[list[Change]]], *,
                  with_value: bool = False) -> web.Response:
        identity = caller_of(request)
        try:
            changes = await change(identity.actor, identity.role)
        except AdminRefused as exc:
            return refusal(exc)  # the HTTP layer audits the refused attempt
        value = {"value": admin.item(kind.name, key)["value"]} if with_value else {}
        return answered(request, changes, {"kind": kind.name, "key": key, **value})

    if not kind.removable:  # one object: standards, acd_settings
        @operation(f"The {kind.summary}", tag=TAG, responses={200: item})
        @roles(*READERS)
        async def get_whole(request: web.Request) -> web.Response:
            return web.json_response(_whole(admin, kind))

        @operation(f"Change the {kind.summary}" + (" (the fields given; the others keep their values)"
                                                   if kind.shape == "fields" else " (all of them: a field left out "
                                                   "gets its default)"),
                   tag=TAG, body=body_schema(kind), checked_body=checked_body_schema(kind), responses={200: changed},
                   errors=ERRORS)
        @roles(*kind.writers)
        async def put_whole(request: web.Request) -> web.Response:
            body = body_of(request)
            items = body if kind.shape == "fields" else {kind.name: body}
            return await run(request, kind.name,
                             lambda actor, role: admin.put_items(actor, kind.name, items, role=role))

        return [web.get(base, get_whole), web.put(base, put_whole)]

    @operation(f"The {kind.summary}, in the document's order", tag=TAG,
               responses={200: {"type": "object", "required": ["kind", "items"],
                                "properties": {"kind": {"type": "string"}, "items": {"type": "array", "items": {
                                    "type": "object", "required": ["key", "value"],
                                    "properties": {"key": {"type": "string"}, "value": item}}}}}})
    @roles(*READERS)
    async def list_items(request: web.Request) -> web.Response:
        return web.json_response({"kind": kind.name, "items": admin.items(kind.name)})

    @operation(f"One of the {kind.summary}", tag=TAG, path={"key": KEY}, responses={200: one})
    @roles(*READERS)
    async def get_item(request: web.Request) -> web.Response:
        try:
            return web.json_response(admin.item(kind.name, request.match_info["key"]))
        except AdminRefused as exc:
            return refusal(exc)

    @operation(f"Create or replace one of the {kind.summary}: the body is the item as the document holds it "
               "(the key is the path's)" + (" or nothing" if kind.shape == "values" else ""), tag=TAG,
               path={"key": KEY}, body=body_schema(kind), checked_body=checked_body_schema(kind),
               body_required=kind.shape != "values",
               responses={200: {**changed, "properties": {**changed["properties"], "value": item}}}, errors=ERRORS)
    @roles(*kind.writers)
    async def put_item(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        return await run(request, key, lambda actor, role: admin.put(actor, kind.name, key, body_of(request),
                                                                     role=role), with_value=True)

    @operation(f"Remove one of the {kind.summary}", tag=TAG, path={"key": KEY}, responses={200: changed},
               errors=ERRORS)
    @roles(*kind.writers)
    async def delete_item(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        return await run(request, key, lambda actor, role: admin.delete(actor, kind.name, key, role=role))

    return [web.get(base, list_items), web.get(f"{base}/{{key}}", get_item), web.put(f"{base}/{{key}}", put_item),
            web.delete(f"{base}/{{key}}", delete_item)]


def _whole(admin: AdminService, kind: Kind) -> Any:
    values = {entry["key"]: entry["value"] for entry in admin.items(kind.name)}
    return values if kind.shape == "fields" else values[kind.name]

