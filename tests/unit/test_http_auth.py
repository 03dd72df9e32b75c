"""controller/http/server.py in process: who may call what, sessions and CSRF, errors as JSON, audit, sockets, TLS.

The real build_app and middlewares serve small routes declared with the real decorators; the expected
statuses and bodies are written out here by hand, not derived from the decorators.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.test_utils import TestClient, TestServer

from controller.config import AuthSettings, TokenSettings, UserSettings
from controller.http.openapi import operation
from controller.http.server import (
    ALL_ROLES,
    SESSION_COOKIE,
    Identity,
    QuietMalformedRequests,
    SocketRegistry,
    build_app,
    caller_of,
    identify,
    page,
    public,
    reload_tls,
    roles,
    start_http,
    tls_context,
    track_socket,
)
from controller.plugins.access.services import AccessService
from controller.plugins.access.state_persistor import AccessRecords, AuditLog
from controller.store.bounds import OutOfRange
from controller.store.db import Store, StoreUnavailable

Client = TestClient[Any, Any]

TOKENS = [
    TokenSettings("boss", "admin-token-000000000000000", "admin"),
    TokenSettings("lead", "supervisor-token-0000000000", "supervisor"),
    TokenSettings("desk-1001", "agent-token-1001-000000000", "agent", "1001"),
    TokenSettings("crm", "integration-token-00000000", "integration"),
]
BEARER = {settings.role: {"Authorization": f"Bearer {settings.token}"} for settings in TOKENS}
UNAUTHORIZED = {"error": "missing, invalid, expired or revoked token or session "
                         "(send Authorization: Bearer <token>, or log in)", "status": 401}
CSRF_REFUSED = {"error": "a request with a session cookie that changes something needs the X-CSRF-Token header "
                         "the login answered", "status": 403}
ORIGIN_REFUSED = {"error": "a WebSocket with a session cookie must come from this server's own pages", "status": 403}
INTERNAL = {"error": "internal error (see the controller's log)", "status": 500}


def forbidden(role: str, method: str, path: str) -> dict[str, Any]:
    return {"error": f"role {role!r} may not use {method} {path}", "status": 403}


def whoami(request: web.Request) -> web.Response:
    identity = caller_of(request)
    return web.json_response({"name": identity.name, "role": identity.role, "agent_id": identity.agent_id,
                              "actor": identity.actor, "session": identity.is_session})


routes = web.RouteTableDef()


@routes.get("/healthz")
@public
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "identity": request.get("identity") is not None})


@routes.get("/board")
@page
async def board(request: web.Request) -> web.Response:
    return web.Response(text="<html>board</html>", content_type="text/html")


@routes.get("/api/admin-only")
async def undecorated(request: web.Request) -> web.Response:
    return whoami(request)


@routes.get("/api/admin")
@roles("admin")
async def admin_route(request: web.Request) -> web.Response:
    return whoami(request)


@routes.get("/api/supervisors")
@routes.post("/api/supervisors")
@routes.options("/api/supervisors")
@roles("supervisor")
async def supervisors(request: web.Request) -> web.Response:
    return whoami(request)


@routes.get("/api/agents-desk")
@roles("agent")
async def agents_desk(request: web.Request) -> web.Response:
    return whoami(request)


@routes.get("/api/integrations")
@roles("integration")
async def integrations(request: web.Request) -> web.Response:
    return whoami(request)


@routes.get("/api/staff")
@roles("supervisor", "agent")
async def staff(request: web.Request) -> web.Response:
    return whoami(request)


@routes.get("/api/everyone")
@roles(*ALL_ROLES)
async def everyone(request: web.Request) -> web.Response:
    return whoami(request)


@routes.post("/api/notes")
@operation("Add a note", tag="test", body={"type": "object", "required": ["text"],
                                          "properties": {"text": {"type": "string"}}})
@roles("supervisor")
async def notes(request: web.Request) -> web.Response:
    return web.json_response({"note": request["body"]["text"], "by": caller_of(request).name}, status=201)


@routes.post("/api/marked")
@roles(*ALL_ROLES)
async def marked(request: web.Request) -> web.Response:
    request["audited"] = True  # the handler audited it itself
    return web.json_response({"ok": True})


@routes.get("/api/numbers/{number}")
@roles(*ALL_ROLES)
async def broken(request: web.Request) -> web.Response:
    raise RuntimeError(f"lookup failed for {request.match_info['number']}")


@routes.post("/api/broken")
@roles(*ALL_ROLES)
async def broken_post(request: web.Request) -> web.Response:
    raise RuntimeError("boom")


@routes.get("/api/store-down")
@roles(*ALL_ROLES)
async def store_down(request: web.Request) -> web.Response:
    raise StoreUnavailable("the store cannot write: disk full")


@routes.get("/api/too-big")
@roles(*ALL_ROLES)
async def too_big(request: web.Request) -> web.Response:
    raise OutOfRange("max_wait: 10**30 is out of range")


@routes.post("/api/raw-json")
@roles(*ALL_ROLES)
async def raw_json(request: web.Request) -> web.Response:
    return web.json_response(json.loads(await request.text()))


@routes.get("/api/bad-utf8")
@roles(*ALL_ROLES)
async def bad_utf8(request: web.Request) -> web.Response:
    raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")


@routes.post("/api/conflict")
@roles(*ALL_ROLES)
async def conflict(request: web.Request) -> web.Response:
    raise web.HTTPConflict(text=json.dumps({"error": "taken", "status": 409, "holder": "1002"}),
                           content_type="application/json")


@routes.get("/api/slow-down")
@roles(*ALL_ROLES)
async def slow_down(request: web.Request) -> web.Response:
    raise web.HTTPTooManyRequests(reason="too many requests, wait", headers={"Retry-After": "7", "X-Secret": "s"})


@routes.get("/api/gone")
@roles(*ALL_ROLES)
async def gone(request: web.Request) -> web.Response:
    raise web.HTTPGone(reason="")


@routes.get("/api/missing")
@roles(*ALL_ROLES)
async def missing(request: web.Request) -> web.Response:
    raise web.HTTPNotFound(reason="no such agent")


@routes.get("/ws")
@roles(*ALL_ROLES)
async def socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    track_socket(request, ws)
    await ws.send_json({"hello": caller_of(request).name})
    async for _ in ws:
        pass
    return ws


class Sessions:
    """An authenticator for cookie sessions and bearer tokens, as the access service answers them."""

    def __init__(self) -> None:
        self.cookies = {"cookie-ann": Identity("ann", "supervisor", None, "session:ann", csrf="csrf-of-ann"),
                        "cookie-bo": Identity("bo", "agent", "1002", "session:bo", csrf="csrf-of-bo"),
                        "cookie-cy": Identity("cy", "supervisor", None, "session:cy", csrf="XXXX")}

    def __call__(self, request: web.Request) -> Identity | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return identify(TOKENS, header[7:])
        cookie = request.cookies.get(SESSION_COOKIE)
        return self.cookies.get(cookie) if cookie else None


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple[str, str, str, int, Any]] = []

    def __call__(self, request: web.Request, identity: Identity, status: int) -> None:
        self.entries.append((request.method, request.path, identity.actor, status, request.get("audit_subject")))


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with TestClient(TestServer(build_app(TOKENS, routes))) as test_client:
        yield test_client


@pytest.fixture
async def sessions() -> AsyncIterator[Client]:
    app = build_app(Sessions(), routes)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}"}


# -- who may call what --

ROUTES = ["/api/admin-only", "/api/admin", "/api/supervisors", "/api/agents-desk", "/api/integrations",
          "/api/staff", "/api/everyone"]
ALLOWED = {  # written by hand: admin everywhere, an undecorated route is admin's only
    "admin": set(ROUTES),
    "supervisor": {"/api/supervisors", "/api/staff", "/api/everyone"},
    "agent": {"/api/agents-desk", "/api/staff", "/api/everyone"},
    "integration": {"/api/integrations", "/api/everyone"},
}
WHO = {"admin": ("boss", None), "supervisor": ("lead", None), "agent": ("desk-1001", "1001"),
       "integration": ("crm", None)}


@pytest.mark.parametrize("role", ["admin", "supervisor", "agent", "integration"])
async def test_each_role_reaches_exactly_its_routes(client: Client, role: str) -> None:
    name, agent_id = WHO[role]
    for path in ROUTES:
        response = await client.get(path, headers=BEARER[role])
        if path in ALLOWED[role]:
            assert response.status == 200, (role, path)
            assert await response.json() == {"name": name, "role": role, "agent_id": agent_id,
                                             "actor": f"token:{name}", "session": False}
        else:
            assert response.status == 403, (role, path)
            assert await response.json() == forbidden(role, "GET", path)
            assert response.content_type == "application/json"


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer not-a-token-of-anyone-0000"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer"},
    {"Authorization": "bearer admin-token-000000000000000"},
    {"Authorization": "Basic admin-token-000000000000000"},
    {"Authorization": "admin-token-000000000000000"},
    {"Authorization": "Bearer admin-token-00000000000000"},  # one character short
    {"Authorization": "Bearer admin-token-0000000000000000"},  # one too many
    {"Authorization": "Bearer xadmin-token-000000000000000"},
])
async def test_no_wrong_or_malformed_token_is_401_with_a_json_body(client: Client, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/api/everyone"), ("GET", "/api/admin-only"), ("POST", "/api/supervisors")):
        response = await client.request(method, path, headers=headers)
        assert response.status == 401, (headers, path)
        assert await response.json() == UNAUTHORIZED
        assert "WWW-Authenticate" not in response.headers


async def test_the_token_is_read_after_bearer_and_a_space_with_blanks_around_it_ignored(client: Client) -> None:
    response = await client.get("/api/everyone", headers={"Authorization": "Bearer  crm-no"})
    assert response.status == 401
    response = await client.get("/api/everyone", headers={"Authorization": "Bearer  integration-token-00000000  "})
    assert response.status == 200 and (await response.json())["name"] == "crm"


async def test_a_token_in_the_url_counts_only_for_the_websocket(client: Client) -> None:
    response = await client.get("/api/everyone", params={"token": "admin-token-000000000000000"})
    assert response.status == 401 and await response.json() == UNAUTHORIZED
    async with client.ws_connect("/ws", params={"token": "agent-token-1001-000000000"}) as ws:
        assert await ws.receive_json(timeout=5) == {"hello": "desk-1001"}
    response = await client.get("/ws", params={"token": "wrong-token-000000000000000"})
    assert response.status == 401 and await response.json() == UNAUTHORIZED
    # the header wins over the query
    async with client.ws_connect("/ws", params={"token": "wrong-token"}, headers=BEARER["supervisor"]) as ws:
        assert await ws.receive_json(timeout=5) == {"hello": "lead"}


async def test_public_routes_and_pages_need_no_token_and_carry_no_identity(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200 and await response.json() == {"ok": True, "identity": False}
    response = await client.get("/healthz", headers={"Authorization": "Bearer wrong"})
    assert response.status == 200 and await response.json() == {"ok": True, "identity": False}
    response = await client.get("/board")
    assert response.status == 200 and await response.text() == "<html>board</html>"
    assert getattr(board, "__ccc_page__", False) is True and getattr(board, "__ccc_public__", False) is True
    assert getattr(healthz, "__ccc_page__", False) is False
    assert not hasattr(board, "__ccc_roles__")


def test_roles_always_add_admin_and_nothing_else() -> None:
    assert supervisors.__ccc_roles__ == frozenset({"supervisor", "admin"})  # type: ignore[attr-defined]
    assert staff.__ccc_roles__ == frozenset({"supervisor", "agent", "admin"})  # type: ignore[attr-defined]
    assert admin_route.__ccc_roles__ == frozenset({"admin"})  # type: ignore[attr-defined]
    assert not hasattr(undecorated, "__ccc_roles__") and not hasattr(supervisors, "__ccc_public__")


async def test_an_unknown_route_or_method_is_answered_before_authentication(client: Client) -> None:
    response = await client.get("/api/nowhere")
    assert response.status == 404 and await response.json() == {"error": "Not Found", "status": 404}
    response = await client.delete("/api/supervisors")
    assert response.status == 405
    assert await response.json() == {"error": "Method Not Allowed", "status": 405}
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "POST", "OPTIONS"}
    assert [name for name, _ in response.raw_headers if name.lower() == b"allow"] == [b"Allow"]  # as spelled


async def test_operation_keeps_the_roles_and_checks_the_body_after_authentication(client: Client) -> None:
    response = await client.post("/api/notes", json={"text": "hi"}, headers=BEARER["supervisor"])
    assert response.status == 201 and await response.json() == {"note": "hi", "by": "lead"}
    response = await client.post("/api/notes", json={"text": "hi"}, headers=BEARER["agent"])
    assert response.status == 403 and await response.json() == forbidden("agent", "POST", "/api/notes")
    response = await client.post("/api/notes", json={"text": "hi"})
    assert response.status == 401 and await response.json() == UNAUTHORIZED
    response = await client.post("/api/notes", json={"text": 5}, headers=BEARER["admin"])
    assert response.status == 400 and await response.json() == {"error": "text: 5 is not of type 'string'",
                                                                "status": 400}


def test_identify_picks_the_matching_token_of_a_fixed_list() -> None:
    assert identify(TOKENS, None) is None and identify(TOKENS, "") is None
    assert identify([], "admin-token-000000000000000") is None
    assert identify(TOKENS, "supervisor-token-0000000000") == Identity("lead", "supervisor", None, "token:lead")
    assert identify(TOKENS, "agent-token-1001-000000000") == Identity("desk-1001", "agent", "1001",
                                                                      "token:desk-1001")
    assert identify(TOKENS, "integration-token-00000000x") is None
    # the last match wins (the loop never stops early): two entries with one token are a configuration error
    twins = [TokenSettings("first", "same-token-0000000000000000", "agent", "1"),
             TokenSettings("second", "same-token-0000000000000000", "supervisor")]
    assert identify(twins, "same-token-0000000000000000") == Identity("second", "supervisor", None, "token:second")
    assert identify([*twins, TOKENS[0]], "same-token-0000000000000000") == Identity(
        "second", "supervisor", None, "token:second")


def test_an_identity_names_its_actor_by_kind() -> None:
    assert Identity("ann", "supervisor", csrf="x").actor == "user:ann"
    assert Identity("ann", "supervisor", csrf="").is_session  # an empty CSRF token is still a session's
    assert Identity("crm", "integration").actor == "token:crm" and not Identity("crm", "integration").is_session


# -- cookie sessions and CSRF --

async def test_a_session_reads_without_the_csrf_header(sessions: Client) -> None:
    for method in ("GET", "HEAD", "OPTIONS"):
        response = await sessions.request(method, "/api/supervisors", headers=cookie("cookie-ann"))
        assert response.status == 200, method
    response = await sessions.get("/api/supervisors", headers=cookie("cookie-ann"))
    assert await response.json() == {"name": "ann", "role": "supervisor", "agent_id": None, "actor": "user:ann",
                                     "session": True}


async def test_a_session_changes_something_only_with_its_csrf_header(sessions: Client) -> None:
    for headers in ({}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": "csrf-of-bo"}, {"X-CSRF-Token": "csrf-of-annx"},
                    {"X-CSRF-Token": "csrf-of-an"}, {"X-Csrf": "csrf-of-ann"}):
        response = await sessions.post("/api/supervisors", headers={**cookie("cookie-ann"), **headers})
        assert response.status == 403, headers
        assert await response.json() == CSRF_REFUSED
    response = await sessions.post("/api/supervisors", headers={**cookie("cookie-ann"), "X-CSRF-Token": "csrf-of-ann"})
    assert response.status == 200 and (await response.json())["actor"] == "user:ann"
    # whatever the session's CSRF token, a missing header never stands in for it
    response = await sessions.post("/api/supervisors", headers=cookie("cookie-cy"))
    assert response.status == 403 and await response.json() == CSRF_REFUSED
    response = await sessions.post("/api/supervisors", headers={**cookie("cookie-cy"), "X-CSRF-Token": "XXXX"})
    assert response.status == 200 and (await response.json())["actor"] == "user:cy"


async def test_csrf_is_checked_before_the_role(sessions: Client) -> None:
    # bo is an agent: a forged request learns nothing about the route, a real one gets the role's 403
    response = await sessions.post("/api/supervisors", headers=cookie("cookie-bo"))
    assert response.status == 403 and await response.json() == CSRF_REFUSED
    response = await sessions.post("/api/supervisors", headers={**cookie("cookie-bo"), "X-CSRF-Token": "csrf-of-bo"})
    assert response.status == 403 and await response.json() == forbidden("agent", "POST", "/api/supervisors")
    response = await sessions.get("/api/agents-desk", headers=cookie("cookie-bo"))
    assert response.status == 200 and (await response.json())["agent_id"] == "1002"


async def test_a_token_request_needs_no_csrf_header_even_with_a_cookie(sessions: Client) -> None:
    response = await sessions.post("/api/supervisors", headers=BEARER["supervisor"])
    assert response.status == 200 and (await response.json())["actor"] == "token:lead"
    response = await sessions.post("/api/supervisors", headers={**BEARER["supervisor"], **cookie("cookie-bo")})
    assert response.status == 200 and (await response.json())["actor"] == "token:lead"
    response = await sessions.post("/api/supervisors", headers=cookie("cookie-nobody"))
    assert response.status == 401 and await response.json() == UNAUTHORIZED


async def test_a_session_websocket_must_come_from_this_servers_pages(sessions: Client) -> None:
    host = f"{sessions.host}:{sessions.port}"
    for origin in (None, f"http://{host}", f"https://{host}", host):
        headers = cookie("cookie-ann") | ({"Origin": origin} if origin else {})
        async with sessions.ws_connect("/ws", headers=headers) as ws:
            assert await ws.receive_json(timeout=5) == {"hello": "ann"}, origin
    for origin in ("http://evil.example", f"http://{sessions.host}:1", f"http://{host}.evil.example", "null",
                   f"http://evil.example://{host}", f"a://b://{host}"):  # only the scheme is cut off
        response = await sessions.get("/ws", headers={**cookie("cookie-ann"), "Origin": origin})
        assert response.status == 403, origin
        assert await response.json() == ORIGIN_REFUSED
    # another page's Origin on a route other than /ws is no concern of this check; a token has no Origin rule
    response = await sessions.get("/api/supervisors", headers={**cookie("cookie-ann"), "Origin": "http://evil.example"})
    assert response.status == 200
    async with sessions.ws_connect("/ws", headers={**BEARER["agent"], "Origin": "http://evil.example"}) as ws:
        assert await ws.receive_json(timeout=5) == {"hello": "desk-1001"}


# -- the access service's answers through the middleware: revoked and expired tokens, sessions --

async def test_revoked_and_expired_tokens_are_401_and_a_real_session_needs_csrf(store: Store) -> None:
    clock = [1_800_000_000.0]
    access = AccessService(AccessRecords(store), AuditLog(store, lambda: clock[0]), AuthSettings(idle_minutes=0),
                           now=lambda: clock[0], sockets=SocketRegistry())
    await access.open([], [UserSettings("ann", "ann-password-0123456789", "supervisor")])
    admin = Identity("root", "admin", credential="token:0")
    lasting, _ = await access.create_token(admin, "lasting", "supervisor", None, None)
    brief, _ = await access.create_token(admin, "brief", "supervisor", None, 60.0)
    doomed, doomed_record = await access.create_token(admin, "doomed", "supervisor", None, None)
    async with TestClient(TestServer(build_app(access.authenticate, routes))) as test_client:
        for token in (lasting, brief, doomed):
            response = await test_client.get("/api/supervisors", headers={"Authorization": f"Bearer {token}"})
            assert response.status == 200
        await access.revoke_token(admin, doomed_record.id)
        clock[0] += 61
        for token, status in ((lasting, 200), (brief, 401), (doomed, 401)):
            response = await test_client.get("/api/supervisors", headers={"Authorization": f"Bearer {token}"})
            assert response.status == status, token
            if status == 401:
                assert await response.json() == UNAUTHORIZED
        session_cookie, session, _ = await access.login("ann", "ann-password-0123456789")
        signed_in = cookie(session_cookie)
        response = await test_client.get("/api/supervisors", headers=signed_in)
        assert response.status == 200 and (await response.json())["actor"] == "user:ann"
        response = await test_client.post("/api/supervisors", headers=signed_in)
        assert response.status == 403 and await response.json() == CSRF_REFUSED
        response = await test_client.post("/api/supervisors", headers={**signed_in, "X-CSRF-Token": session.csrf})
        assert response.status == 200 and (await response.json())["session"] is True
        clock[0] += AuthSettings().session_hours * 3600
        response = await test_client.get("/api/supervisors", headers=signed_in)
        assert response.status == 401 and await response.json() == UNAUTHORIZED  # the session expired


# -- errors as JSON --

async def test_an_unexpected_error_is_a_500_without_the_traceback_and_logged_by_route_template(
        client: Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="controller.http"):
        response = await client.get("/api/numbers/13800138000", headers=BEARER["agent"])
    assert response.status == 500 and await response.json() == INTERNAL
    assert response.content_type == "application/json"
    records = [r for r in caplog.records if r.name == "controller.http"]
    assert [r.getMessage() for r in records] == ["unhandled error in GET /api/numbers/{number}"]
    assert records[0].levelno == logging.ERROR and records[0].exc_info is not None  # the traceback, in the log only
    assert "13800138000" not in records[0].getMessage()


@pytest.mark.parametrize(("path", "status", "body"), [
    ("/api/store-down", 503, {"error": "the store cannot write: disk full", "status": 503}),
    ("/api/too-big", 400, {"error": "max_wait: 10**30 is out of range", "status": 400}),
    ("/api/bad-utf8", 400, {"error": "the request body is not valid JSON (UTF-8)", "status": 400}),
    ("/api/gone", 410, {"error": "error", "status": 410}),  # no reason given
    ("/api/missing", 404, {"error": "no such agent", "status": 404}),
])
async def test_known_errors_map_to_their_status(client: Client, path: str, status: int, body: dict[str, Any]) -> None:
    response = await client.get(path, headers=BEARER["integration"])
    assert response.status == status and await response.json() == body
    assert response.content_type == "application/json"


async def test_a_body_that_is_not_json_is_a_400(client: Client) -> None:
    response = await client.post("/api/raw-json", data=b"{not json", headers=BEARER["integration"])
    assert response.status == 400
    assert await response.json() == {"error": "the request body is not valid JSON (UTF-8)", "status": 400}
    response = await client.post("/api/raw-json", data=b'{"a": 1}', headers=BEARER["integration"])
    assert response.status == 200 and await response.json() == {"a": 1}


async def test_an_http_error_keeps_only_allow_and_retry_after_and_a_json_one_passes_through(client: Client) -> None:
    response = await client.get("/api/slow-down", headers=BEARER["integration"])
    assert response.status == 429
    assert await response.json() == {"error": "too many requests, wait", "status": 429}
    assert response.headers["Retry-After"] == "7" and "X-Secret" not in response.headers
    assert (b"Retry-After", b"7") in response.raw_headers  # spelled as RFC 9110 does
    response = await client.post("/api/conflict", headers=BEARER["integration"])
    assert response.status == 409
    assert await response.json() == {"error": "taken", "status": 409, "holder": "1002"}


# -- audit --

async def audited_client(audit: Audit, subject: Callable[[web.Request], Any] | None = None
                         ) -> TestClient[Any, Any]:
    client = TestClient(TestServer(build_app(Sessions(), routes, audit=audit, audit_subject=subject)))
    await client.start_server()
    return client


async def test_every_state_changing_request_that_passed_authentication_is_audited_with_its_status() -> None:
    audit = Audit()
    client = await audited_client(audit)
    try:
        assert (await client.get("/api/supervisors", headers=BEARER["supervisor"])).status == 200
        assert (await client.options("/api/supervisors", headers=BEARER["supervisor"])).status == 200
        assert (await client.post("/api/supervisors", headers=BEARER["supervisor"])).status == 200
        assert (await client.post("/api/supervisors", headers=BEARER["agent"])).status == 403
        assert (await client.post("/api/supervisors")).status == 401
        assert (await client.post("/api/supervisors", headers=cookie("cookie-ann"))).status == 403  # CSRF
        assert (await client.post("/api/notes", json={"text": 1}, headers=BEARER["admin"])).status == 400
        assert (await client.post("/api/conflict", headers=BEARER["integration"])).status == 409
        assert (await client.post("/api/broken", headers=BEARER["integration"])).status == 500
        assert (await client.post("/api/marked", headers=BEARER["integration"])).status == 200
        assert (await client.post("/api/supervisors",
                                  headers={**cookie("cookie-ann"), "X-CSRF-Token": "csrf-of-ann"})).status == 200
    finally:
        await client.close()
    assert audit.entries == [
        ("POST", "/api/supervisors", "token:lead", 200, None),
        ("POST", "/api/notes", "token:boss", 400, None),
        ("POST", "/api/conflict", "token:crm", 409, None),
        ("POST", "/api/broken", "token:crm", 500, None),
        ("POST", "/api/supervisors", "user:ann", 200, None),
    ]


async def test_the_audit_subject_is_taken_before_and_after_the_change() -> None:
    audit = Audit()
    state = {"value": "ready"}
    asked: list[str] = []

    def subject(request: web.Request) -> Any:
        asked.append(request.method)
        return dict(state) if request.path == "/api/supervisors" else None

    @web.middleware
    async def change(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if request.method == "POST":
            state["value"] = "paused"  # stands in for what the handler changes
        return response

    app = build_app(Sessions(), routes, audit=audit, audit_subject=subject)
    app.middlewares.append(change)
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/api/supervisors", headers=BEARER["supervisor"])).status == 200
        assert asked == []  # a read is not audited: the subject is not even asked
        assert (await client.post("/api/supervisors", headers=BEARER["supervisor"])).status == 200
        assert (await client.post("/api/marked", headers=BEARER["supervisor"])).status == 200
        assert (await client.post("/api/notes", json={"text": "x"}, headers=BEARER["supervisor"])).status == 201
    # before and after the change; /api/marked and /api/notes: before only (nothing to compare with)
    assert asked == ["POST", "POST", "POST", "POST"]
    assert audit.entries == [
        ("POST", "/api/supervisors", "token:lead", 200, ({"value": "ready"}, {"value": "paused"})),
        ("POST", "/api/notes", "token:lead", 201, None),
    ]


async def test_without_an_audit_hook_the_subject_is_never_asked() -> None:
    asked: list[str] = []
    app = build_app(Sessions(), routes, audit_subject=lambda request: asked.append(request.path))
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/api/supervisors", headers=BEARER["supervisor"])).status == 200
    assert asked == []


# -- WebSockets closed when their credential is revoked --

async def test_revoking_a_credential_closes_its_sockets_and_only_them(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    registry = SocketRegistry()
    app = build_app(Sessions(), routes, sockets=registry)
    async with TestClient(TestServer(app)) as client:
        first = await client.ws_connect("/ws", headers=BEARER["agent"])
        second = await client.ws_connect("/ws", headers=BEARER["agent"])
        other = await client.ws_connect("/ws", headers=BEARER["supervisor"])
        for ws in (first, second, other):
            await ws.receive_json(timeout=5)
        assert registry.count("token:desk-1001") == 2 and registry.count("token:lead") == 1
        assert registry.count("token:nobody") == 0
        reason = "revoked " + "x" * 200
        assert await registry.close("token:desk-1001", reason) == 2
        for ws in (first, second):
            message = await ws.receive(timeout=5)
            assert message.type == aiohttp.WSMsgType.CLOSE
            assert (message.data, message.extra) == (4001, reason[:120])
        assert registry.count("token:desk-1001") == 0 and registry.count("token:lead") == 1
        assert await registry.close("token:desk-1001", "again") == 0
        await other.send_str("still here")
        assert not other.closed
        # a socket that ends by itself is forgotten when its handler returns; the other one stays tracked
        third = await client.ws_connect("/ws", headers=BEARER["supervisor"])
        await third.receive_json(timeout=5)
        assert registry.count("token:lead") == 2
        await other.close()
        for _ in range(100):
            if registry.count("token:lead") == 1:
                break
            await asyncio.sleep(0.01)
        assert registry.count("token:lead") == 1
        await third.close()
        for _ in range(100):
            if registry.count("token:lead") == 0:
                break
            await asyncio.sleep(0.01)
        assert registry.count("token:lead") == 0
        assert "token:lead" not in registry._sockets
        # a request that opened no socket is forgotten without touching the others
        fourth = await client.ws_connect("/ws", headers=BEARER["supervisor"])
        await fourth.receive_json(timeout=5)
        assert (await client.get("/api/everyone", headers=BEARER["supervisor"])).status == 200
        assert registry.count("token:lead") == 1
        await fourth.close()
        await asyncio.sleep(0.05)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []  # no handler failed


class FailingSocket:
    def __init__(self, error: Exception) -> None:
        self.error = error
        self.closed_with: tuple[int, bytes] | None = None

    async def close(self, *, code: int, message: bytes) -> None:
        self.closed_with = (code, message)
        raise self.error


async def test_closing_a_socket_that_is_already_gone_still_counts_and_clears_it() -> None:
    registry = SocketRegistry()
    gone = [FailingSocket(ConnectionResetError("peer gone")), FailingSocket(RuntimeError("closing already"))]
    registry._sockets["token:9"] = set(gone)  # type: ignore[arg-type]
    assert await registry.close("token:9", "revoked") == 2
    assert [socket.closed_with for socket in gone] == [(4001, b"revoked")] * 2
    assert registry.count("token:9") == 0


async def test_track_socket_without_a_registry_does_nothing(client: Client) -> None:
    async with client.ws_connect("/ws", headers=BEARER["agent"]) as ws:
        assert await ws.receive_json(timeout=5) == {"hello": "desk-1001"}


# -- logging: malformed requests, tokens never logged --

def record_of(error: BaseException | None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error is not None else None
    return logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                             ("10.0.0.9",), exc_info)


def test_a_malformed_request_is_one_warning_without_its_bytes() -> None:
    record = record_of(BadHttpMessage("Invalid header value char: Bearer secret-token"))
    assert QuietMalformedRequests().filter(record) is True
    assert (record.levelno, record.levelname) == (logging.WARNING, "WARNING")
    assert record.getMessage() == "malformed HTTP request refused (400): Invalid header value char"
    assert record.exc_info is None and record.exc_text is None
    empty = record_of(BadHttpMessage(" "))
    QuietMalformedRequests().filter(empty)
    assert empty.getMessage() == "malformed HTTP request refused (400): BadHttpMessage"


def test_other_errors_are_logged_as_they_are() -> None:
    error = RuntimeError("x")
    record = record_of(error)
    assert QuietMalformedRequests().filter(record) is True
    assert (record.levelno, record.levelname, record.getMessage()) == (
        logging.ERROR, "ERROR", "Error handling request from 10.0.0.9")
    assert record.exc_info is not None and record.exc_info[1] is error
    plain = record_of(None)
    assert QuietMalformedRequests().filter(plain) is True and plain.levelno == logging.ERROR


def free_port() -> int:
    import socket as sockets
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_start_http_logs_no_request_and_filters_malformed_ones_once(caplog: pytest.LogCaptureFixture) -> None:
    server_log = logging.getLogger("aiohttp.server")
    for installed in [f for f in server_log.filters if isinstance(f, QuietMalformedRequests)]:
        server_log.removeFilter(installed)
    logging.getLogger("aiohttp.access").disabled = False  # whatever an earlier test configured
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="aiohttp.access")
    # the control: aiohttp's own default does log each request with its query, so the capture works
    control = web.AppRunner(build_app(TOKENS, routes))
    await control.setup()
    control_port = free_port()
    await web.TCPSite(control, "127.0.0.1", control_port).start()
    try:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{control_port}/healthz", params={"token": "control"}) as response:
            assert response.status == 200
    finally:
        await control.cleanup()
    assert any("token=control" in r.getMessage() for r in caplog.records if r.name == "aiohttp.access")
    caplog.clear()
    port = free_port()
    runner = await start_http(build_app(TOKENS, routes), "127.0.0.1", port)
    try:
        assert runner.addresses == [("127.0.0.1", port)]  # the host asked for, not every interface
        again = await start_http(build_app(TOKENS, routes), "127.0.0.1", free_port())
        await again.cleanup()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/api/everyone", headers=BEARER["admin"]) as response:
                assert response.status == 200
            async with session.get(f"http://127.0.0.1:{port}/api/everyone",
                                   params={"token": "admin-token-000000000000000"}) as response:
                assert response.status == 401
    finally:
        await runner.cleanup()
    assert len([f for f in server_log.filters if isinstance(f, QuietMalformedRequests)]) == 1
    assert f"HTTP API on http://127.0.0.1:{port}" in [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.name == "aiohttp.access"]
    assert "admin-token" not in caplog.text and "/api/everyone" not in caplog.text


async def test_start_http_leaves_signals_alone_and_restarts_on_the_same_port() -> None:
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    port = free_port()
    runner = await start_http(build_app(TOKENS, routes), "127.0.0.1", port)
    try:
        assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # the controller handles them
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            await runner.cleanup()  # the server closes the kept-alive connection first: its port is in TIME_WAIT
    finally:
        await runner.cleanup()
    runner = await start_http(build_app(TOKENS, routes), "127.0.0.1", port)  # SO_REUSEADDR binds all the same
    try:
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
    finally:
        await runner.cleanup()


# -- TLS --

def self_signed(directory: Path, name: str) -> tuple[str, str]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"],
                   check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


async def served_name(port: int) -> str:
    """The CN of the certificate the server presents."""
    client_context = ssl.create_default_context()
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
    finally:
        writer.close()
    pem = ssl.DER_cert_to_PEM_cert(der)
    text = subprocess.run(["openssl", "x509", "-noout", "-subject"], input=pem, capture_output=True, text=True,
                          check=True, timeout=30).stdout
    del reader
    return text.strip().split("CN")[-1].strip(" =")


async def test_https_serves_the_api_and_a_renewed_certificate_without_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first, renewed = self_signed(tmp_path, "first"), self_signed(tmp_path, "renewed")
    context = tls_context(*first)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE  # a server context: clients need no certificate
    port = free_port()
    with caplog.at_level(logging.INFO, logger="controller.http"):
        runner = await start_http(build_app(TOKENS, routes), "127.0.0.1", port, ssl_context=context)
    try:
        assert f"HTTP API on https://127.0.0.1:{port}" in [r.getMessage() for r in caplog.records]
        async with aiohttp.ClientSession() as session, session.get(
                f"https://127.0.0.1:{port}/api/everyone", headers=BEARER["agent"], ssl=False) as response:
            assert response.status == 200 and (await response.json())["name"] == "desk-1001"
        assert await served_name(port) == "first"
        broken = tmp_path / "broken.crt"
        broken.write_text("not a certificate")
        with pytest.raises(ssl.SSLError):
            reload_tls(context, str(broken), renewed[1])
        with pytest.raises(ssl.SSLError):
            reload_tls(context, renewed[0], first[1])  # the key does not match the certificate
        assert await served_name(port) == "first"  # a bad renewal keeps the old certificate
        reload_tls(context, *renewed)
        assert await served_name(port) == "renewed"
    finally:
        await runner.cleanup()


def test_an_old_tls_version_is_refused(tmp_path: Path) -> None:
    context = tls_context(*self_signed(tmp_path, "server"))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.protocol == ssl.PROTOCOL_TLS_SERVER
