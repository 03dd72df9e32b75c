"""The controller's HTTP server: API, health check, WebSocket and web pages, over HTTP or HTTPS.

Every route is authenticated, by an API token (`Authorization: Bearer`) or a user's session cookie
(the pages), and checked against the roles the route allows, unless it is explicitly public
(`/healthz`). A cookie session's state-changing request must repeat the session's CSRF token in the
`X-CSRF-Token` header (a cross-site form cannot set a header). Tokens are never logged. Every
state-changing request that passed authentication is audited. Errors are JSON: {"error": "...", "status": N}.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from controller.config import Role, TokenSettings
from controller.store.bounds import OutOfRange
from controller.store.db import StoreUnavailable

log = logging.getLogger("controller.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ALL_ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin", "integration")
SESSION_COOKIE = "ccc_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Identity:
    """Who a request comes from: an API token or a logged-in user."""

    name: str  # the token's or the user's name
    role: Role
    agent_id: str | None = None  # role agent: the agent it acts as
    credential: str = ""  # the token or session: its open WebSockets are closed when it is revoked
    csrf: str | None = None  # a session's: its state-changing requests repeat it in X-CSRF-Token

    @property
    def is_session(self) -> bool:
        return self.csrf is not None

    @property
    def actor(self) -> str:
        """As the audit log names it."""
        return ("user:" if self.is_session else "token:") + self.name


Authenticator = Callable[[web.Request], "Identity | None"]
#: Records a state-changing request (identity, HTTP status) in the audit log.
AuditHook = Callable[[web.Request, Identity, int], None]
#: What a request acts on, as it is now (e.g. an agent's state), or None: asked before and after a
#: state-changing request, for the audit log's before and after (request["audit_subject"]).
AuditSubject = Callable[[web.Request], Any]


class SocketRegistry:
    """The open WebSockets of each token and session, so that revoking one closes them."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[web.WebSocketResponse]] = {}

    def track(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        credential = caller_of(request).credential
        self._sockets.setdefault(credential, set()).add(ws)
        request["tracked_socket"] = ws

    def forget(self, request: web.Request) -> None:
        ws = request.get("tracked_socket")
        if ws is None:
            return
        credential = caller_of(request).credential
        sockets = self._sockets.get(credential, set())
        sockets.discard(ws)
        if not sockets:
            self._sockets.pop(credential, None)

    def count(self, credential: str) -> int:
        return len(self._sockets.get(credential, ()))

    async def close(self, credential: str, reason: str) -> int:
        """Close every socket of a credential (code 4001); returns how many."""
        sockets = self._sockets.pop(credential, set())
        for ws in sockets:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.close(code=4001, message=reason.encode()[:120])
        return len(sockets)


SOCKETS: web.AppKey[SocketRegistry] = web.AppKey("sockets", SocketRegistry)


def track_socket(request: web.Request, ws: web.WebSocketResponse) -> None:
    """Call after preparing a WebSocket: it is closed when its token or session is revoked."""
    registry = request.app.get(SOCKETS)
    if registry is not None:
        registry.track(request, ws)


def public(handler: Handler) -> Handler:
    """Mark a route as needing no token (health checks only)."""
    handler.__ccc_public__ = True  # type: ignore[attr-defined]
    return handler


def page(handler: Handler) -> Handler:
    """Mark a route as a web page (toolbar, wallboard): public, and not part of the API description."""
    handler.__ccc_page__ = True  # type: ignore[attr-defined]
    return public(handler)


def roles(*allowed: Role) -> Callable[[Handler], Handler]:
    """Allow a route to tokens of these roles (admin is always allowed)."""

    def decorate(handler: Handler) -> Handler:
        handler.__ccc_roles__ = frozenset(allowed) | {"admin"}  # type: ignore[attr-defined]
        return handler

    return decorate


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


def json_problems(status: int, message: str, problems: list[str]) -> web.Response:
    """A refusal with each problem as `field.path: message` (the first five also in `error`, for a person)."""
    if not problems:
        return json_error(status, message)
    error = f"{message}: " + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
    return web.json_response({"error": error, "status": status, "problems": problems}, status=status)


def token_from(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    if request.path == "/ws":
        return request.query.get("token")  # browsers cannot set headers on a WebSocket
    return None  # elsewhere a token in the URL would end up in proxies' and browsers' logs


def identify(tokens: Iterable[TokenSettings], presented: str | None) -> Identity | None:
    """A token from a fixed list (tests and tools without a store)."""
    if not presented:
        return None
    found = None
    for candidate in tokens:
        if hmac.compare_digest(candidate.token.encode(), presented.encode()):
            found = candidate  # keep looping: the time taken does not depend on which token matched
    if found is None:
        return None
    return Identity(found.name, found.role, found.agent_id, credential=f"token:{found.name}")


def caller_of(request: web.Request) -> Identity:
    """The authenticated identity of a request (set by the middleware)."""
    identity: Identity = request["identity"]
    return identity


def _csrf_problem(request: web.Request, identity: Identity) -> str | None:
    """Why a cookie session's request may be forged from another site (None: it may not)."""
    if identity.csrf is None:
        return None
    if request.method not in SAFE_METHODS:
        if not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(), identity.csrf.encode()):
            return f"a request with a session cookie that changes something needs the {CSRF_HEADER} header " \
                   "the login answered"
    elif request.path == "/ws":  # a WebSocket is a GET: a page of another origin must not open one as the user
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            return "a WebSocket with a session cookie must come from this server's own pages"
    return None


def make_auth_middleware(authenticate: Authenticator, audit: AuditHook | None = None,
                         sockets: SocketRegistry | None = None, audit_subject: AuditSubject | None = None) -> Any:
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = getattr(request.match_info, "handler", None)
        if getattr(route_handler, "__ccc_public__", False) or request.match_info.http_exception is not None:
            return await handler(request)
        identity = authenticate(request)
        if identity is None:
            return json_error(401, "missing, invalid, expired or revoked token or session "
                                   "(send Authorization: Bearer <token>, or log in)")
        problem = _csrf_problem(request, identity)
        if problem is not None:
            return json_error(403, problem)
        allowed = getattr(route_handler, "__ccc_roles__", frozenset({"admin"}))
        if identity.role not in allowed:
            return json_error(403, f"role {identity.role!r} may not use {request.method} {request.path}")
        request["identity"] = identity
        audited = audit is not None and request.method not in SAFE_METHODS
        before = audit_subject(request) if audited and audit_subject is not None else None
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if sockets is not None:
                sockets.forget(request)
            if audit is not None and audited and not request.get("audited"):
                if before is not None and audit_subject is not None:
                    request["audit_subject"] = (before, audit_subject(request))
                audit(request, identity, status)

    return web.middleware(auth)


async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        kept = {name: exc.headers[name] for name in ("Allow", "Retry-After") if name in exc.headers}
        return json_error(exc.status, exc.reason or "error", kept)  # 405 keeps its Allow, 429 its Retry-After
    except (json.JSONDecodeError, UnicodeDecodeError):  # a handler reading the body itself
        return json_error(400, "the request body is not valid JSON (UTF-8)")
    except OutOfRange as exc:  # a number the store cannot hold reached it unchecked
        return json_error(400, str(exc))
    except StoreUnavailable as exc:  # disk full, I/O error: what was written is kept and retried
        return json_error(503, str(exc))
    except Exception:
        # The route's template, not the path: a path may hold a caller's number (/api/numbers/{number}).
        resource = request.match_info.route.resource
        log.exception("unhandled error in %s %s", request.method, resource.canonical if resource else "?")
        return json_error(500, "internal error (see the controller's log)")


errors_as_json = web.middleware(_errors_as_json)


def build_app(authenticate: Authenticator | list[TokenSettings], routes: Iterable[web.RouteDef], *,
              audit: AuditHook | None = None, sockets: SocketRegistry | None = None,
              audit_subject: AuditSubject | None = None) -> web.Application:
    """The application; `authenticate` is the access service's (or, for tools and tests, a fixed token list)."""
    if isinstance(authenticate, list):
        tokens = authenticate

        def authenticate(request: web.Request) -> Identity | None:
            return identify(tokens, token_from(request))

    app = web.Application(middlewares=[errors_as_json,
                                       make_auth_middleware(authenticate, audit, sockets, audit_subject)])
    if sockets is not None:
        app[SOCKETS] = sockets
    app.add_routes(list(routes))
    return app


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context; `reload_tls` reads the files again into the same context (renewal)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def reload_tls(context: ssl.SSLContext, cert: str, key: str) -> None:
    """New connections get the renewed certificate; open ones keep theirs. A bad file keeps the old one
    (it is checked in a context of its own first, and the error raised)."""
    tls_context(cert, key)
    context.load_cert_chain(cert, key)


class QuietMalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot even parse (a NUL in a header, …) as an ERROR with a traceback,
    after answering it 400: one warning line without the request's bytes (they may hold a token) is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BadHttpMessage):
            reason = str(error.message).strip().split(":")[0] or type(error).__name__  # the kind, not the bytes
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args, record.exc_info, record.exc_text = (
                "malformed HTTP request refused (400): %s", (reason,), None, None)
        return True


async def start_http(app: web.Application, host: str, port: int,
                     ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietMalformedRequests) for f in server_log.filters):
        server_log.addFilter(QuietMalformedRequests())
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
    await site.start()
    log.info("HTTP API on %s://%s:%d", "https" if ssl_context else "http", host, port)
    return runner
