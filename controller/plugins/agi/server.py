"""FastAGI, so existing dialplan can ask the controller for decisions.

Built on panoramisk's FastAGI `Application` and `Request`, with one part replaced: panoramisk
1.4 reads the AGI header with a loop that spins forever on an empty read when the peer
disconnects mid-header, freezing the whole event loop. Our handler reads the header with
`readuntil` under a timeout, so a half-sent request only closes that connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from panoramisk.fast_agi import Application, Request

log = logging.getLogger("controller.agi")

AgiRoute = Callable[["AgiRequest"], Awaitable[None]]


class AgiRequest:
    """One AGI request: its headers, the query of `agi://host/route?a=b`, and commands to send."""

    def __init__(self, request: Request, route: str, query: dict[str, str], command_timeout: float) -> None:
        self._request = request
        self.route = route
        self.query = query
        self.headers: dict[str, str] = dict(request.headers)
        self.command_timeout = command_timeout

    @property
    def caller(self) -> str:
        number = self.headers.get("agi_callerid", "")
        return "" if number in ("unknown", "") else number

    @property
    def did(self) -> str:
        return self.headers.get("agi_dnid") or self.headers.get("agi_extension", "")

    @property
    def args(self) -> list[str]:
        return [value for key, value in sorted(self.headers.items()) if key.startswith("agi_arg_")]

    async def command(self, command: str, *, timeout: float | None = None) -> dict[str, str]:
        async with asyncio.timeout(timeout if timeout is not None else self.command_timeout):
            result: dict[str, str] = await self._request.send_command(command)
            return result

    async def set_variable(self, name: str, value: str) -> None:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        await self.command(f'SET VARIABLE {name} "{escaped}"')

    async def get_variable(self, name: str) -> str:
        result = await self.command(f"GET VARIABLE {name}")
        return result.get("value", "") if isinstance(result, dict) else ""


class FastAgiServer(Application):  # type: ignore[misc]
    """panoramisk's FastAGI application with a header reader that cannot hang."""

    def __init__(self, *, header_timeout: float = 5.0, command_timeout: float = 10.0) -> None:
        super().__init__()
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.requests = 0
        self.rejected = 0

    def route(self, path: str, handler: AgiRoute) -> None:
        self._route[path] = handler

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(self.header_timeout):
                    raw = await reader.readuntil(b"\n\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
                self.rejected += 1
                log.warning("FastAGI: incomplete request header from %s; connection closed",
                            writer.get_extra_info("peername"))
                return
            headers = dict(
                line.split(": ", 1) for line in raw.decode(self.default_encoding).splitlines() if ": " in line)
            script = headers.get("agi_network_script", "")
            path, _, query = script.partition("?")
            handler = self._route.get(path)
            self.requests += 1
            request = Request(app=self, headers=headers, reader=reader, writer=writer,
                              encoding=self.default_encoding)
            agi = AgiRequest(request, path, dict(parse_qsl(query)), self.command_timeout)
            if handler is None:
                log.error("FastAGI: no route %r", path)
                await _fail(agi, f"unknown AGI route {path!r}")
                return
            try:
                await handler(agi)
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                log.warning("FastAGI %s: the channel went away mid-request", path)
            except Exception:
                log.exception("FastAGI %s failed", path)
                await _fail(agi, "internal error")
        finally:
            writer.close()

    async def serve(self, host: str, port: int) -> asyncio.Server:
        server = await asyncio.start_server(self.handler, host, port)
        log.info("FastAGI on agi://%s:%d", host, port)
        return server


async def _fail(agi: AgiRequest, message: str) -> None:
    try:
        await agi.set_variable("CCC_STATUS", "FAILED")
        await agi.set_variable("CCC_ERROR", message)
    except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
        pass
