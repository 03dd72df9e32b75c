"""HTTP: logging in and out, users and passwords, API tokens, the audit log (README "Users and roles")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controller.config import USER_NAME_PATTERN
from controller.http.list_query import list_query, list_window
from controller.http.openapi import MAX_ID, body_of, operation
from controller.http.server import SESSION_COOKIE, caller_of, json_error, public, roles
from controller.plugins.access.services import LOGOUT_PATH, USER_ROLES, AccessRefused, AccessService

NAME = {"type": "string", "pattern": f"^{USER_NAME_PATTERN}(?!\\n)$"}
PASSWORD = {"type": "string", "minLength": 1, "maxLength": 1024}
AGENT_ID = {"type": "string", "minLength": 1, "maxLength": 64}
LOGIN_BODY = {"type": "object", "additionalProperties": False, "required": ["name", "password"],
              "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64}, "password": PASSWORD}}
USER = {"type": "object", "required": ["name", "role", "agent_id", "locked"],
        "properties": {"name": {"type": "string"}, "role": {"type": "string"},
                       "agent_id": {"type": "string", "nullable": True}, "locked": {"type": "boolean"}}}
SESSION = {"type": "object", "required": ["user", "csrf_token", "expires_at"],
           "properties": {"user": USER, "csrf_token": {"type": "string"}, "expires_at": {"type": "number"}}}
#: An agent (user or token) names its agent; no other role does.
AGENT_RULE = {"anyOf": [{"properties": {"role": {"enum": ["agent"]}}, "required": ["agent_id"]},
                       {"properties": {"role": {"enum": ["supervisor", "admin", "integration"]}},
                        "not": {"required": ["agent_id"]}}],
              "description": "role agent needs agent_id (the agent it acts as); the other roles have none"}
TOKEN = {"type": "object", "required": ["id", "name", "role", "created_at", "expires_at", "revoked_at"],
         "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "role": {"type": "string"},
                        "agent_id": {"type": "string", "nullable": True},
                        "expires_at": {"type": "number", "nullable": True},
                        "revoked_at": {"type": "number", "nullable": True}}}
TOKEN_BODY = {"type": "object", "additionalProperties": False, "required": ["name", "role"], **AGENT_RULE,
              "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 64},
                             "role": {"enum": ["agent", "supervisor", "admin", "integration"]},
                             "agent_id": AGENT_ID,
                             "expires_in_seconds": {"type": "number", "minimum": 1, "maximum": 10 * 366 * 86400,
                                                    "description": "the token fails this long after its creation"
                                                                   " (none: it never expires)"}}}
TOKEN_ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
AUDIT_QUERY: dict[str, dict[str, Any]] = {"actor": {"type": "string", "description": "user:NAME or token:NAME"},
               "action": {"type": "string", "description": "an action or its prefix, e.g. login or token."},
               "target": {"type": "string"}, **list_query()}
AUDIT_ENTRY = {"type": "object", "required": ["id", "at", "actor", "action", "target", "before", "after", "status"]}


def refusal(exc: AccessRefused) -> web.Response:
    headers = {"Retry-After": str(int(exc.retry_after) + 1)} if exc.retry_after is not None else None
    return json_error(exc.status, exc.message, headers)


def routes(access: AccessService, *, secure_cookies: bool) -> list[web.RouteDef]:
    password = {**PASSWORD, "minLength": access.settings.min_password_length}
    user_body = {"type": "object", "additionalProperties": False, "required": ["name", "role", "password"],
                 **AGENT_RULE, "properties": {"name": NAME, "role": {"enum": list(USER_ROLES)}, "password": password,
                                              "agent_id": AGENT_ID}}
    password_body = {"type": "object", "additionalProperties": False, "required": ["password"],
                     "properties": {"password": password, "current_password": PASSWORD}}

    def audited(request: web.Request) -> None:
        request["audited"] = True  # the service wrote a richer entry (before/after) than the middleware would

    @operation("Log in with a name and password: sets the session cookie (HttpOnly, SameSite=Strict) and answers "
               "the CSRF token state-changing requests repeat in X-CSRF-Token", tag="auth", body=LOGIN_BODY,
               responses={200: SESSION},
               errors={400: "bad input", 401: "wrong name or password",
                       403: "the agent the user acts as was removed or disabled (or a demo password)",
                       423: "the account is locked after too many wrong passwords"})
    @public
    async def login(request: web.Request) -> web.Response:
        body = body_of(request)
        try:
            cookie, session, user = await access.login(body["name"], body["password"])
        except AccessRefused as exc:
            return refusal(exc)
        response = web.json_response({"user": user.public(access.now()), "csrf_token": session.csrf,
                                      "expires_at": session.expires_at})
        response.set_cookie(SESSION_COOKIE, cookie, max_age=int(session.expires_at - session.created_at),
                            path="/", httponly=True, samesite="Strict", secure=secure_cookies)
        return response

    @operation("End this session (the cookie's); its WebSockets are closed", tag="auth",
               responses={200: {"type": "object"}}, errors={409: "the request has no session (an API token)"})
    @roles("agent", "supervisor", "integration")
    async def logout(request: web.Request) -> web.Response:
        identity = caller_of(request)
        if not identity.is_session:
            return json_error(409, "no session to end: this request used an API token (revoke it instead)")
        await access.logout(identity)
        audited(request)
        response = web.json_response({"logged_out": identity.name})
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    @operation("Who this request is (user or token), with the session's CSRF token", tag="auth",
               responses={200: {"type": "object", "required": ["name", "role", "kind"]}})
    @roles("agent", "supervisor", "integration")
    async def me(request: web.Request) -> web.Response:
        identity = caller_of(request)
        return web.json_response({"name": identity.name, "role": identity.role, "agent_id": identity.agent_id,
                                  "kind": "session" if identity.is_session else "token",
                                  "csrf_token": identity.csrf})

    @operation("Users (never their password hashes)", tag="auth",
               responses={200: {"type": "object", "required": ["users"],
                                "properties": {"users": {"type": "array", "items": USER}}}})
    @roles("supervisor")
    async def list_users(request: web.Request) -> web.Response:
        return web.json_response({"users": access.user_list()})

    @operation("Create a user (role agent needs the agent_id it is)", tag="auth", body=user_body,
               responses={201: USER}, errors={409: "a user of this name exists", 404: "no such agent (agent_id)"})
    @roles("admin")
    async def create_user(request: web.Request) -> web.Response:
        body = body_of(request)
        try:
            user = await access.create_user(caller_of(request), body["name"], body["role"], body["password"],
                                            body.get("agent_id"))
        except AccessRefused as exc:
            return refusal(exc)  # the middleware audits the refused attempt
        audited(request)
        return web.json_response(user.public(access.now()), status=201)

    @operation("Delete a user; their sessions end", tag="auth", path={"name": NAME},
               responses={200: {"type": "object"}}, errors={409: "your own user"})
    @roles("admin")
    async def delete_user(request: web.Request) -> web.Response:
        try:
            await access.delete_user(caller_of(request), request.match_info["name"])
        except AccessRefused as exc:
            return refusal(exc)  # the middleware audits the refused attempt
        audited(request)
        return web.json_response({"deleted": request.match_info["name"]})

    @operation("Change a password: your own (with current_password, from a session), or anyone's as an admin "
               "(a reset, which also unlocks the account); the user's other sessions end", tag="auth",
               path={"name": NAME}, body=password_body, responses={200: USER})
    @roles("agent", "supervisor")
    async def change_password(request: web.Request) -> web.Response:
        body = body_of(request)
        try:
            user = await access.change_password(caller_of(request), request.match_info["name"], body["password"],
                                                body.get("current_password"))
        except AccessRefused as exc:
            return refusal(exc)  # the middleware audits the refused attempt
        audited(request)
        return web.json_response(user.public(access.now()))

    @operation("API tokens (never their values)", tag="auth",
               responses={200: {"type": "object", "required": ["tokens"],
                                "properties": {"tokens": {"type": "array", "items": TOKEN}}}})
    @roles("admin")
    async def list_tokens(request: web.Request) -> web.Response:
        return web.json_response({"tokens": access.token_list()})

    @operation("Create an API token: its value is in this answer only (stored as a hash)", tag="auth",
               body=TOKEN_BODY, responses={201: {**TOKEN, "required": [*TOKEN["required"], "token"]}})
    @roles("admin")
    async def create_token(request: web.Request) -> web.Response:
        body = body_of(request)
        try:
            value, record = await access.create_token(caller_of(request), body["name"], body["role"],
                                                      body.get("agent_id"), body.get("expires_in_seconds"))
        except AccessRefused as exc:
            return refusal(exc)  # the middleware audits the refused attempt
        audited(request)
        return web.json_response({**record.public(), "token": value}, status=201)

    @operation("Revoke an API token: its next request fails and its open /ws are closed", tag="auth",
               path={"token_id": TOKEN_ID}, responses={200: TOKEN},
               errors={409: "revoked already, or the token this request is made with"})
    @roles("admin")
    async def revoke_token(request: web.Request) -> web.Response:
        try:
            record, closed = await access.revoke_token(caller_of(request), int(request.match_info["token_id"]))
        except AccessRefused as exc:
            return refusal(exc)  # the middleware audits the refused attempt
        audited(request)
        return web.json_response({**record.public(), "websockets_closed": closed})

    @operation("The audit log, newest first: who changed what, when, before and after", tag="auth",
               query=AUDIT_QUERY, responses={200: {"type": "object", "required": ["entries"],
                                                   "properties": {"entries": {"type": "array",
                                                                              "items": AUDIT_ENTRY}}}})
    @roles("supervisor")
    async def audit(request: web.Request) -> web.Response:
        query, window = request.query, list_window(request)
        entries = await access.audit.query(actor=query.get("actor"), action=query.get("action"),
                                           target=query.get("target"), since=window.start,
                                           until=window.end, limit=window.limit)
        return web.json_response({"entries": entries})

    return [
        web.post("/api/auth/login", login),
        web.post(LOGOUT_PATH, logout),
        web.get("/api/auth/me", me),
        web.get("/api/users", list_users),
        web.post("/api/users", create_user),
        web.delete("/api/users/{name}", delete_user),
        web.post("/api/users/{name}/password", change_password),
        web.get("/api/tokens", list_tokens),
        web.post("/api/tokens", create_token),
        web.delete("/api/tokens/{token_id}", revoke_token),
        web.get("/api/audit", audit),
    ]

