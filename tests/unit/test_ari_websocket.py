"""The ARI event WebSocket (controller/ari/websocket.py) and EventStream over it, against a local aiohttp server.

The server is aiohttp's WebSocketResponse (a WebSocket implementation that is not ours); frames it cannot send
(fragments, binary, a ping amid a message) are written raw on its transport after the handshake. Every test that
goes through EventStream runs on asyncio's own loop and on uvloop (the controller's).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
import pytest
import uvloop
from aiohttp import web

from controller.ari import websocket
from controller.ari.client import AriClient
from controller.ari.events import EventStream
from controller.ari.models import Event
from controller.ari.websocket import HandshakeError

Runner = Callable[[Coroutine[Any, Any, None]], None]
RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
AUTH = "Basic Y2NjOnNlY3JldA=="  # ccc:secret

#: What the test's server does with each accepted WebSocket: (the socket, its request, the connection's number).
Serve = Callable[[web.WebSocketResponse, web.Request, int], Awaitable[None]]


def event(number: int, kind: str = "ChannelDtmfReceived", **fields: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": "2026-11-26T15:46:50.001+0000", "application": "ccc",
            "digit": str(number % 10), "duration_ms": 100 + number,
            "channel": {"id": f"c{number}", "name": "PJSIP/x", "state": "Up"}, **fields}


def frame(opcode: int, payload: bytes, *, final: bool = True) -> bytes:
    """A frame as a server sends it (unmasked)."""
    first = (0x80 if final else 0) | opcode
    if len(payload) < 126:
        head = struct.pack("!BB", first, len(payload))
    elif len(payload) < 65536:
        head = struct.pack("!BBH", first, 126, len(payload))
    else:
        head = struct.pack("!BBQ", first, 127, len(payload))
    return head + payload


def raw(request: web.Request, data: bytes) -> None:
    assert request.transport is not None
    request.transport.write(data)


class EventServer:
    """Asterisk's HTTP server as EventStream sees it: the events WebSocket (each connection served by `serve`,
    unless `refuse` still holds answers to give first) and the eventFilter request."""

    def __init__(self, serve: Serve, *, autoping: bool = True) -> None:
        self.serve = serve
        self.autoping = autoping
        self.connections = 0
        self.refuse: list[web.Response] = []  # answered instead of the upgrade, one per attempt
        self.targets: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> EventServer:
        app = web.Application()
        app.router.add_get("/ari/events", self._events)
        app.router.add_put("/ari/applications/{app}/eventFilter", self._filter)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _filter(self, request: web.Request) -> web.Response:
        return web.json_response({"name": request.match_info["app"]})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        self.targets.append(request.path_qs)
        self.headers.append(dict(request.headers))
        if self.refuse:
            return self.refuse.pop(0)
        self.connections += 1
        ws = web.WebSocketResponse(autoping=self.autoping, max_msg_size=0)
        await ws.prepare(request)
        await self.serve(ws, request, self.connections)
        return ws


class Watched:
    """An EventStream on a server, with what it hands over."""

    def __init__(self, server: EventServer, **options: Any) -> None:
        self.client = AriClient(f"http://127.0.0.1:{server.port}/ari", "ccc", "secret", request_timeout=2)
        self.events: list[Event] = []
        self.connected = 0
        self.disconnected = 0
        self.replaced = 0
        self.stream = EventStream(self.client, "ccc", on_event=self.events.append, on_connected=self._connected,
                                  on_disconnected=self._disconnected, on_replaced=self._replaced,
                                  backoff_initial=0.05, backoff_max=0.2)
        for name, value in options.items():
            setattr(self.stream, name, value)
        self._task: asyncio.Task[None] | None = None

    async def _connected(self) -> None:
        self.connected += 1

    def _disconnected(self) -> None:
        self.disconnected += 1

    def _replaced(self) -> None:
        self.replaced += 1

    async def __aenter__(self) -> Watched:
        self._task = asyncio.get_running_loop().create_task(self.stream.run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.close()

    def digits(self) -> list[str]:
        return [getattr(item, "digit", "?") for item in self.events]


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def hold(ws: web.WebSocketResponse) -> None:
    """Keep the connection open until the client closes it."""
    async for _message in ws:
        pass


# -- messages ---------------------------------------------------------------------------------------------------


@RUNNERS
def test_events_arrive_in_order_a_fragmented_one_and_a_ping_amid_it_included(run: Runner) -> None:
    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.send_str(json.dumps(event(1)))
        second = json.dumps(event(2)).encode()
        raw(request, frame(0x1, second[:10], final=False) + frame(0x9, b"amid")  # a ping amid a message: allowed
            + frame(0x0, second[10:30], final=False))
        await asyncio.sleep(0.05)  # the rest in another TCP segment
        raw(request, frame(0x0, second[30:], final=True) + frame(0x1, json.dumps(event(3)).encode()))
        await hold(ws)

    async def main() -> None:
        async with EventServer(serve) as server, Watched(server) as watched:
            await wait_until(lambda: len(watched.events) == 3)
            assert watched.digits() == ["1", "2", "3"]
            assert watched.events[1].channel.id == "c2"  # type: ignore[attr-defined]
            assert watched.stream.events_received == 3 and sum(watched.stream.lag_counts) == 3
            assert server.targets == ["/ari/events?app=ccc&subscribeAll=false"]
            assert server.headers[0]["Authorization"] == AUTH
            assert watched.stream.connections == 1 and watched.connected == 1

    run(main())


@RUNNERS
def test_a_malformed_event_is_logged_and_skipped(run: Runner, caplog: pytest.LogCaptureFixture) -> None:
    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.send_str(json.dumps(event(1)))
        await ws.send_str("{not json")
        raw(request, frame(0x1, b'{"type": "\xff\xfe"}'))  # not UTF-8
        await ws.send_str(json.dumps(event(2)))
        await hold(ws)

    async def main() -> None:
        async with EventServer(serve) as server, Watched(server) as watched:
            await wait_until(lambda: len(watched.events) == 2)
            assert watched.digits() == ["1", "2"] and watched.stream.connections == 1

    with caplog.at_level(logging.WARNING, "controller.ari.events"):
        run(main())
    assert [r.message for r in caplog.records].count("undecodable ARI event dropped") == 2


def test_a_one_megabyte_event_arrives_whole() -> None:
    big = "x" * (1024 * 1024)

    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.send_str(json.dumps(event(1, variable=big)))
        await ws.send_str(json.dumps(event(2)))
        await hold(ws)

    async def main() -> None:
        async with EventServer(serve) as server, Watched(server) as watched:
            await wait_until(lambda: len(watched.events) == 2)
            assert watched.digits() == ["1", "2"]
            assert watched.stream.connections == 1

    uvloop.run(main())


def test_binary_messages_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.send_bytes(json.dumps(event(1)).encode())
        raw(request, frame(0x2, b"ab", final=False) + frame(0x0, b"cd"))  # a fragmented binary message
        await ws.send_str(json.dumps(event(2)))
        await hold(ws)

    async def main() -> None:
        async with EventServer(serve) as server, Watched(server) as watched:
            await wait_until(lambda: len(watched.events) == 1)
            await asyncio.sleep(0.05)
            assert watched.digits() == ["2"] and watched.stream.connections == 1

    with caplog.at_level(logging.WARNING, "controller.ari.websocket"):
        uvloop.run(main())
    assert sum("binary WebSocket message" in r.message for r in caplog.records) == 2


def test_a_message_above_the_size_limit_ends_the_connection() -> None:
    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.send_str("y" * 500)
        await ws.send_str("z" * 2000)
        await hold(ws)

    async def main() -> None:
        async with EventServer(serve) as server:
            socket = await websocket.connect("127.0.0.1", server.port, "/ari/events", headers={}, timeout=2,
                                             max_size=1000)
            received: list[bytes] = []
            socket.start(received.append)
            reason = await asyncio.wait_for(socket.wait_closed(), 2)
            assert received == [b"y" * 500]
            assert "at most 1000" in reason

    uvloop.run(main())


# -- control frames ------------------------------------------------------------------------------------------------


@RUNNERS
def test_a_ping_is_answered_with_a_pong_of_its_payload(run: Runner) -> None:
    pongs: list[aiohttp.WSMessage] = []

    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.ping(b"are you there")
        message = await ws.receive(timeout=2)
        pongs.append(message)
        await ws.send_str(json.dumps(event(1)))
        await hold(ws)

    async def main() -> None:
        async with EventServer(serve, autoping=False) as server, Watched(server) as watched:
            await wait_until(lambda: len(watched.events) == 1)

    run(main())
    assert [(message.type, message.data) for message in pongs] == [(aiohttp.WSMsgType.PONG, b"are you there")]


@RUNNERS
def test_a_server_close_is_answered_and_the_stream_reconnects(run: Runner) -> None:
    closes: list[int | None] = []

    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.send_str(json.dumps(event(number)))
        if number == 1:
            await asyncio.wait_for(ws.close(code=1001, message=b"restarting"), 2)
            closes.append(ws.close_code)  # the code of our answering close frame (1006 without one)
            return
        await hold(ws)

    async def main() -> None:
        async with EventServer(serve) as server, Watched(server) as watched:
            # (`on_connected` runs in a task of its own, beside the events: the second may come after them)
            await wait_until(lambda: watched.stream.connections == 2 and len(watched.events) == 2
                             and watched.connected == 2)
            assert watched.digits() == ["1", "2"]
            assert watched.disconnected == 1
            assert watched.stream.connected.is_set()

    run(main())
    assert closes == [1001]


@RUNNERS
def test_a_server_that_stops_answering_pings_is_dropped_and_the_stream_reconnects(run: Runner) -> None:
    pings: list[int] = []

    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.send_str(json.dumps(event(number)))
        async for message in ws:
            if message.type == aiohttp.WSMsgType.PING:
                pings.append(number)
                if number == 2:  # the second connection answers; the first went deaf
                    await ws.pong(message.data)

    async def main() -> None:
        async with EventServer(serve, autoping=False) as server, Watched(
                server, ping_interval=0.2, pong_timeout=0.1) as watched:
            await wait_until(lambda: watched.stream.connections == 2)
            assert watched.disconnected == 1
            await wait_until(lambda: pings.count(2) >= 3)  # answered pings keep the second one up
            assert watched.stream.connections == 2 and watched.stream.connected.is_set()
            assert watched.digits() == ["1", "2"]
        assert pings.count(1) == 1  # dropped after its first unanswered ping

    run(main())


def test_the_close_of_a_stopping_stream_is_sent() -> None:
    closed: list[int | None] = []

    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.send_str(json.dumps(event(1)))
        await hold(ws)
        closed.append(ws.close_code)

    async def main() -> None:
        async with EventServer(serve) as server:
            async with Watched(server) as watched:
                await wait_until(lambda: len(watched.events) == 1)
            await wait_until(lambda: bool(closed))

    uvloop.run(main())
    assert closed == [1001]


@RUNNERS
def test_application_replaced_stops_the_stream_without_reading_further(run: Runner) -> None:
    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        replaced = {"type": "ApplicationReplaced", "application": "ccc", "timestamp": "2026-11-26T15:46:50.001+0000"}
        raw(request, b"".join(frame(0x1, json.dumps(item).encode())
                              for item in (event(1), replaced, event(2))))
        await hold(ws)

    async def main() -> None:
        async with EventServer(serve) as server, Watched(server) as watched:
            await wait_until(lambda: watched.replaced == 1)
            await asyncio.sleep(0.3)  # would have reconnected by now (backoff at most 0.2 s)
            assert watched.digits() == ["1"] and server.connections == 1

    run(main())


# -- the handshake ---------------------------------------------------------------------------------------------------


@RUNNERS
def test_a_refused_handshake_is_a_clear_error_and_the_stream_retries(run: Runner,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    async def serve(ws: web.WebSocketResponse, request: web.Request, number: int) -> None:
        await ws.send_str(json.dumps(event(1)))
        await hold(ws)

    async def main() -> None:
        async with EventServer(serve) as server:
            server.refuse.append(web.json_response({"message": "Authentication required"}, status=401))
            async with Watched(server) as watched:
                await wait_until(lambda: len(watched.events) == 1)
                assert len(server.targets) == 2 and watched.stream.connections == 1

    with caplog.at_level(logging.WARNING, "controller.ari.events"):
        run(main())
    refusals = [r.message for r in caplog.records if "unavailable" in r.message]
    assert len(refusals) == 1
    assert "HandshakeError" in refusals[0] and "HTTP 401" in refusals[0] and "Authentication required" in refusals[0]


async def _raw_server(answer: Callable[[str], bytes], heads: list[str] | None = None) -> asyncio.Server:
    """A server that reads the handshake (into `heads`) and writes `answer(key)`, then keeps the connection open."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        if heads is not None:
            heads.append(head)
        key = next(line.split(": ", 1)[1] for line in head.split("\r\n") if line.startswith("Sec-WebSocket-Key"))
        writer.write(answer(key))
        await reader.read()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.parametrize(("answer", "error"), [
    (lambda key: b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n", "wrong Sec-WebSocket-Accept"),
    (lambda key: f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {websocket.accept_key(key)}\r\n\r\n"
                 .encode(), "without upgrading"),
    (lambda key: f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 f"Sec-WebSocket-Accept: {websocket.accept_key(key)}\r\nSec-WebSocket-Extensions: permessage-deflate"
                 "\r\n\r\n".encode(), "extension"),
    (lambda key: b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nno events", "HTTP 404 no events"),
    (lambda key: b"HTTP/1.1 503 Busy\r\n\r\nclosing now", None),  # its body ends with the connection
], ids=["wrong-accept", "no-upgrade", "extension", "not-found", "refused-then-closed"])
def test_a_bad_handshake_answer_is_refused_clearly(answer: Callable[[str], bytes], error: str | None) -> None:
    async def main() -> None:
        server = await _raw_server(answer)
        port = server.sockets[0].getsockname()[1]
        try:
            if error is None:  # the server keeps it open: a timeout, then nothing left open
                with pytest.raises(TimeoutError):
                    await websocket.connect("127.0.0.1", port, "/ari/events", headers={}, timeout=0.3)
                return
            with pytest.raises(HandshakeError, match=error):
                await websocket.connect("127.0.0.1", port, "/ari/events", headers={}, timeout=2)
        finally:
            server.close()

    uvloop.run(main())


def test_the_handshake_is_well_formed_and_the_right_key_is_accepted() -> None:
    heads: list[str] = []
    port_seen: list[int] = []

    def answer(key: str) -> bytes:
        return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
                f"Sec-WebSocket-Accept: {websocket.accept_key(key)}\r\n\r\n").encode() + frame(0x1, b"early")

    async def main() -> None:
        server = await _raw_server(answer, heads)
        port = server.sockets[0].getsockname()[1]
        port_seen.append(port)
        try:
            socket = await websocket.connect("127.0.0.1", port, "/ari/events?app=ccc", headers={"Authorization": AUTH},
                                             timeout=2)
            received: list[bytes] = []
            await asyncio.sleep(0.05)
            socket.start(received.append)  # what came with the handshake's answer, kept until now
            assert received == [b"early"] and socket.open
            socket.close()
            assert "closed by us" in await socket.wait_closed()
        finally:
            server.close()
        with pytest.raises(ValueError):
            await websocket.connect("127.0.0.1", port, "/ari/events", headers={"X": "a\r\nb"}, timeout=2)

    uvloop.run(main())
    request_line, *lines = heads[0].split("\r\n")[:-2]
    headers = dict(line.split(": ", 1) for line in lines)
    assert request_line == "GET /ari/events?app=ccc HTTP/1.1"
    assert headers["Upgrade"] == "websocket" and headers["Connection"] == "Upgrade"
    assert headers["Sec-WebSocket-Version"] == "13" and len(base64.b64decode(headers["Sec-WebSocket-Key"])) == 16
    assert headers["Authorization"] == AUTH and headers["Host"] == f"127.0.0.1:{port_seen[0]}"
    assert websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3
