"""FastAGI, so existing dialplan can ask the controller for decisions.

Built on panoramisk's FastAGI `Application` and `Request`, with one part replaced: panoramisk
1.4 reads the AGI header with a loop that spins forever on an empty read when the peer
disconnects mid-header, freezing the whole event loop. Our handler reads the header with
`readuntil` under a timeout, so a half-sent request only closes that connection.

AGI is a line protocol: a newline in a value would end one command and start another
(`route?did=1%0AEXEC%20Goto…`). No value with a control character is ever sent, and requests
whose query carries one are refused. Only peers on the allow-list may connect, up to a cap.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import parse_qsl

from panoramisk.fast_agi import Application, Request

log = logging.getLogger("controller.agi")

AgiRoute = Callable[["AgiRequest"], Awaitable[None]]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AgiValueError(ValueError):
    """A value that must not go into an AGI command (a control character, a bad variable name)."""


def has_control_characters(text: str) -> bool:
    return _CONTROL.search(text) is not None


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
    def channel_id(self) -> str:
        """The channel's unique id: the same id ARI gives it."""
        return self.headers.get("agi_uniqueid", "")

    @property
    def args(self) -> list[str]:
        return [value for key, value in sorted(self.headers.items()) if key.startswith("agi_arg_")]

    async def command(self, command: str, *, timeout: float | None = None) -> dict[str, str]:
        if has_control_characters(command):
            raise AgiValueError(f"refusing an AGI command with a control character: {command[:60]!r}")
        async with asyncio.timeout(timeout if timeout is not None else self.command_timeout):
            result: dict[str, str] = await self._request.send_command(command)
            return result

    async def set_variable(self, name: str, value: str) -> None:
        if not _VARIABLE_NAME.fullmatch(name):
            raise AgiValueError(f"not a channel variable name: {name!r}")
        if has_control_characters(value):
            raise AgiValueError(f"{name}: the value has a control character")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        await self.command(f'SET VARIABLE {name} "{escaped}"')

    async def get_variable(self, name: str) -> str:
        result = await self.command(f"GET VARIABLE {name}")
        return result.get("value", "") if isinstance(result, dict) else ""


class FastAgiServer(Application):  # type: ignore[misc]
    """panoramisk's FastAGI application with a header reader that cannot hang, a peer allow-list
    and a connection cap."""

    def __init__(self, *, header_timeout: float = 5.0, command_timeout: float = 10.0,
                 allowed_peers: Iterable[str] = ("127.0.0.1/32", "::1/128"), max_connections: int = 200) -> None:
        super().__init__()
        self.header_timeout = header_timeout
        self.command_timeout = command_timeout
        self.allowed_peers: list[IpNetwork] = [ipaddress.ip_network(p, strict=False) for p in allowed_peers]
        self.max_connections = max_connections
        self.connections = 0
        self.requests = 0
        self.rejected = 0

    def route(self, path: str, handler: AgiRoute) -> None:
        self._route[path] = handler

    def peer_allowed(self, peer: object) -> bool:
        if not isinstance(peer, tuple) or not peer:
            return False
        try:
            address = ipaddress.ip_address(str(peer[0]))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allowed_peers)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not self.peer_allowed(peer):
            self.rejected += 1
            log.warning("FastAGI: connection from %s refused (not in agi.allowed_peers)", peer)
            writer.close()
            return
        if self.connections >= self.max_connections:
            self.rejected += 1
            log.warning("FastAGI: connection from %s refused: %d connections open (agi.max_connections)",
                        peer, self.connections)
            writer.close()
            return
        self.connections += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.connections -= 1
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.header_timeout):
                raw = await reader.readuntil(b"\n\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            self.rejected += 1
            log.warning("FastAGI: incomplete request header from %s; connection closed",
                        writer.get_extra_info("peername"))
            return
        headers = dict(
            line.split(": ", 1)
            for line in raw.decode(self.default_encoding, errors="replace").splitlines() if ": " in line)
        script = headers.get("agi_network_script", "")
        path, _, query = script.partition("?")
        handler = self._route.get(path)
        self.requests += 1
        request = Request(app=self, headers=headers, reader=reader, writer=writer,
                          encoding=self.default_encoding)
        agi = AgiRequest(request, path, dict(parse_qsl(query)), self.command_timeout)
        if handler is None:
            log.error("FastAGI: no route %r", path[:60])
            await _fail(agi, f"unknown AGI route {path[:60]!r}")
            return
        if any(has_control_characters(key) or has_control_characters(value) for key, value in agi.query.items()):
            self.rejected += 1
            log.warning("FastAGI %s: refused a request with a control character in its query", path)
            await _fail(agi, "control character in the request")
            return
        try:
            await handler(agi)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            log.warning("FastAGI %s: the channel went away mid-request", path)
        except AgiValueError as exc:
            log.warning("FastAGI %s: %s", path, exc)
            await _fail(agi, "a value was refused (control character)")
        except Exception:
            log.exception("FastAGI %s failed", path)
            await _fail(agi, "internal error")

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
