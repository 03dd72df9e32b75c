"""The controller's HTTP server: API, health check, and (later) WebSocket and web pages.

Every route is authenticated with a bearer token from the configuration and checked against the
roles the route allows, unless it is explicitly public (`/healthz`). Tokens are compared in
constant time and never logged. Errors are JSON: {"error": "...", "status": N}.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from controller.config import Role, TokenSettings
from controller.store.bounds import OutOfRange
from controller.store.db import StoreUnavailable

log = logging.getLogger("controller.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IDENTITY: web.AppKey[dict[str, TokenSettings]] = web.AppKey("tokens", dict)
ALL_ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin", "integration")


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


def token_from(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    if request.path == "/ws":
        return request.query.get("token")  # browsers cannot set headers on a WebSocket
    return None  # elsewhere a token in the URL would end up in proxies' and browsers' logs


def identify(tokens: Iterable[TokenSettings], presented: str | None) -> TokenSettings | None:
    if not presented:
        return None
    found = None
    for candidate in tokens:
        if hmac.compare_digest(candidate.token.encode(), presented.encode()):
            found = candidate  # keep looping: the time taken does not depend on which token matched
    return found


def caller_of(request: web.Request) -> TokenSettings:
    """The authenticated identity of a request (set by the middleware)."""
    identity: TokenSettings = request["identity"]
    return identity


def make_auth_middleware(tokens: list[TokenSettings]) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = getattr(request.match_info, "handler", None)
        if getattr(route_handler, "__ccc_public__", False) or request.match_info.http_exception is not None:
            return await handler(request)
        identity = identify(tokens, token_from(request))
        if identity is None:
            return json_error(401, "missing or invalid token (send Authorization: Bearer <token>)")
        allowed = getattr(route_handler, "__ccc_roles__", frozenset({"admin"}))
        if identity.role not in allowed:
            return json_error(403, f"role {identity.role!r} may not use {request.method} {request.path}")
        request["identity"] = identity
        return await handler(request)

    return auth


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
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


def build_app(tokens: list[TokenSettings], routes: Iterable[web.RouteDef]) -> web.Application:
    app = web.Application(middlewares=[errors_as_json, make_auth_middleware(tokens)])
    app.add_routes(list(routes))
    return app


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


async def start_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietMalformedRequests) for f in server_log.filters):
        server_log.addFilter(QuietMalformedRequests())
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    log.info("HTTP API on http://%s:%d", host, port)
    return runner
