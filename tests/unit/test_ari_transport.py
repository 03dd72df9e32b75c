"""The ARI REST transport (controller/ari/transport.py) and AriClient over it, against a local HTTP/1.1 server.

Every test runs on asyncio's own loop and on uvloop (the controller's): they report a server's close differently
(EOF first, or the connection's loss at once).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop

from controller.ari.client import AriClient
from controller.ari.errors import (
    AriBadRequest,
    AriConflict,
    AriDetached,
    AriError,
    AriNotFound,
    AriUnavailable,
    ChannelGone,
)
from controller.ari.transport import CONNECTING_AT_ONCE, ConnectionClosed, HttpPool

Runner = Callable[[Coroutine[Any, Any, None]], None]
RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection: int  # 1 for the server's first connection, 2 for the next…


def answer(status: int, body: bytes = b"", *, headers: str = "") -> bytes:
    """An answer framed as Asterisk's ast_http_send frames it."""
    kind = "Content-type: application/json\r\n" if body else ""
    return (f"HTTP/1.1 {status} X\r\nServer: Asterisk/22.5.0\r\nDate: Thu, 26 Nov 2026 15:00:00 GMT\r\n"
            f"{headers}Cache-Control: no-cache, no-store\r\n{kind}Content-Length: {len(body)}\r\n\r\n").encode() + body


#: What `respond` answers: bytes (written at once), a list of parts (written one by one, 10 ms apart),
#: None (the server closes the connection without answering), or CLOSE_AFTER + bytes (answers, then closes).
Respond = Callable[[Request], Awaitable[bytes | list[bytes] | None]]
CLOSE_AFTER = b"<close after>"


@dataclass
class FakeServer:
    respond: Respond
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    closed_by_client: int = 0  # connections on which the server read EOF between requests
    unanswered_now: int = 0  # connections accepted whose first answer was not written yet
    most_unanswered: int = 0
    tls: ssl.SSLContext | None = None
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    def pool(self, *, size: int = 5, idle_timeout: float = 10.0) -> HttpPool:
        return HttpPool("127.0.0.1", self.port, headers={"Authorization": "Basic Y2NjOnNlY3JldA=="}, size=size,
                        idle_timeout=idle_timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        self.unanswered_now += 1
        self.most_unanswered = max(self.most_unanswered, self.unanswered_now)
        unanswered = True
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client += 1
                    return
                request_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
                method, target, version = request_line.split(" ")
                assert version == "HTTP/1.1"
                headers = dict(line.split(": ", 1) for line in lines)
                body = await reader.readexactly(int(headers.get("Content-Length", "0")))
                request = Request(method, target, headers, body, number)
                self.requests.append(request)
                reply = await self.respond(request)
                if reply is None:
                    return
                close = isinstance(reply, bytes) and reply.startswith(CLOSE_AFTER)
                for part in [reply.removeprefix(CLOSE_AFTER)] if isinstance(reply, bytes) else reply:
                    writer.write(part)
                    await writer.drain()
                    if not isinstance(reply, bytes):
                        await asyncio.sleep(0.01)
                if unanswered:
                    unanswered = False
                    self.unanswered_now -= 1
                if close:
                    return
        finally:
            self.open_now -= 1
            if unanswered:
                self.unanswered_now -= 1
            writer.close()


async def ok(request: Request) -> bytes:
    """Answers like Asterisk: a playback's JSON on POST …/play, 204 otherwise; echoes the target in `target`."""
    if request.method == "POST" and "/play/" in request.target.partition("?")[0]:
        return answer(201, json.dumps({"id": "pb-1", "target": request.target}).encode())
    if request.method == "GET":
        return answer(200, json.dumps({"target": request.target}).encode())
    return answer(204)


async def wait_until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# -- the pool ---------------------------------------------------------------------------------------------------


@RUNNERS
def test_requests_reuse_one_kept_alive_connection(run: Runner) -> None:
    async def scenario() -> None:
        async with FakeServer(ok) as server:
            pool = server.pool()
            for n in range(5):
                status, body = await pool.request("GET", f"/ari/channels/c{n}", None, 5)
                assert status == 200 and json.loads(body) == {"target": f"/ari/channels/c{n}"}
            assert server.connections == 1 and pool.open_connections == 1
            assert [r.connection for r in server.requests] == [1] * 5
            assert server.requests[0].headers["Authorization"] == "Basic Y2NjOnNlY3JldA=="
            assert server.requests[0].headers["Host"] == f"127.0.0.1:{server.port}"
            await pool.close()
    run(scenario())


@RUNNERS
def test_a_connection_the_server_closed_while_idle_is_never_reused(run: Runner) -> None:
    async def scenario() -> None:
        async def close_after_the_first(request: Request) -> bytes:
            # As Asterisk when its keep-alive expires: it answered, then closes the idle connection (no header says so).
            return CLOSE_AFTER + answer(204) if request.connection == 1 else answer(204)

        async with FakeServer(close_after_the_first) as server:
            pool = server.pool()
            assert await pool.request("POST", "/ari/channels/c1/answer", None, 5) == (204, b"")
            await wait_until(lambda: pool.open_connections == 0)  # seen closed, out of the pool
            # A POST is never retried: it succeeds only because the closed connection was not taken.
            assert await pool.request("POST", "/ari/channels/c1/answer", None, 5) == (204, b"")
            assert [r.connection for r in server.requests] == [1, 2]
            await pool.close()
    run(scenario())


@RUNNERS
def test_an_answer_saying_connection_close_is_honoured(run: Runner) -> None:
    async def scenario() -> None:
        async def close_header(request: Request) -> bytes:
            return answer(204, headers="Connection: close\r\n")  # the server says so, but keeps the socket open

        async with FakeServer(close_header) as server:
            pool = server.pool()
            for _ in range(2):
                assert await pool.request("DELETE", "/ari/bridges/b1", None, 5) == (204, b"")
            assert [r.connection for r in server.requests] == [1, 2]
            await wait_until(lambda: server.closed_by_client == 2)
            await pool.close()
    run(scenario())


def _drop_the_second_request_on_connection_1(requests_seen: list[Request]) -> Respond:
    async def respond(request: Request) -> bytes | None:
        # The server reads the request and closes without a byte of answer: as when Asterisk's keep-alive
        # ends just as a request arrives (or it is stopping). Whether it acted on the request is unknown.
        if request.connection == 1 and sum(r.connection == 1 for r in requests_seen) == 2:
            return None
        return await ok(request)
    return respond


@RUNNERS
def test_a_post_whose_connection_drops_before_the_answer_is_never_sent_twice(run: Runner) -> None:
    async def scenario() -> None:
        requests: list[Request] = []
        async with FakeServer(_drop_the_second_request_on_connection_1(requests), requests=requests) as server:
            pool = server.pool()
            await pool.request("POST", "/ari/channels/c1/answer", None, 5)
            with pytest.raises(ConnectionClosed) as closed:
                await pool.request("POST", "/ari/channels/leg-1?endpoint=PJSIP%2F8001", b"{}", 5)
            assert closed.value.before_response
            originates = [r for r in server.requests if r.target.startswith("/ari/channels/leg-1")]
            assert len(originates) == 1  # an originate sent twice would ring the agent twice
            # The pool goes on with a new connection.
            assert await pool.request("POST", "/ari/channels/c1/answer", None, 5) == (204, b"")
            assert server.requests[-1].connection == 2
            await pool.close()
    run(scenario())


@RUNNERS
def test_an_idempotent_request_whose_connection_drops_before_the_answer_is_retried_once(run: Runner) -> None:
    async def scenario() -> None:
        requests: list[Request] = []
        async with FakeServer(_drop_the_second_request_on_connection_1(requests), requests=requests) as server:
            pool = server.pool()
            await pool.request("GET", "/ari/channels", None, 5)
            assert await pool.request("DELETE", "/ari/bridges/b1", None, 5) == (204, b"")
            assert [(r.method, r.connection) for r in server.requests] == [
                ("GET", 1), ("DELETE", 1), ("DELETE", 2)]
            await pool.close()

        async def always_drop(request: Request) -> None:
            return None

        async with FakeServer(always_drop) as server:
            pool = server.pool()
            with pytest.raises(ConnectionClosed):
                await pool.request("GET", "/ari/channels", None, 5)
            assert len(server.requests) == 2  # once, and retried once: no more
            await pool.close()
    run(scenario())


@RUNNERS
def test_idle_connections_are_closed_before_the_servers_keep_alive_would(run: Runner) -> None:
    async def scenario() -> None:
        async with FakeServer(ok) as server:
            pool = server.pool(idle_timeout=0.2)
            await asyncio.gather(*(pool.request("GET", "/ari/channels", None, 5) for _ in range(3)))
            assert server.connections == 3 and pool.idle_connections == 3
            started = time.monotonic()
            await wait_until(lambda: server.closed_by_client == 3)
            assert 0.15 < time.monotonic() - started < 1.0
            assert pool.idle_connections == 0 and pool.open_connections == 0
            await pool.request("GET", "/ari/channels", None, 5)
            assert server.requests[-1].connection == 4
            await pool.close()
    run(scenario())


@RUNNERS
def test_a_request_times_out_and_its_connection_is_dropped(run: Runner) -> None:
    async def scenario() -> None:
        never = asyncio.Event()

        async def first_never_answered(request: Request) -> bytes:
            if len(server.requests) == 1:
                await never.wait()
            return await ok(request)

        async with FakeServer(first_never_answered) as server:
            pool = server.pool()
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.request("GET", "/ari/channels/slow", None, 0.2)
            assert 0.15 < time.monotonic() - started < 1.0
            # The next request is not answered on the late connection (its answer would be the slow one's).
            _, body = await pool.request("GET", "/ari/channels/next", None, 2)
            assert json.loads(body) == {"target": "/ari/channels/next"}
            assert server.requests[-1].connection == 2
            assert pool.open_connections == 1  # the late one was closed, not left to hold a place in the bound
            await pool.close()
            never.set()
    run(scenario())


@RUNNERS
def test_each_request_times_out_at_its_own_deadline_with_one_timer_for_all(run: Runner) -> None:
    """The answers in flight share one loop timer (a timer armed and cancelled per request cost ~4 µs on uvloop, ~6
    requests a call): requests answered in time arm it once, not once each; each one unanswered still fails at its
    own deadline, a later request's sooner one included."""
    async def scenario() -> None:
        never = asyncio.Event()

        async def slow_ones_never_answered(request: Request) -> bytes:
            if "/slow" in request.target:
                await never.wait()
            return await ok(request)

        async with FakeServer(slow_ones_never_answered) as server:
            pool = server.pool()
            loop = asyncio.get_running_loop()
            armed: list[str] = []
            call_at = loop.call_at

            def counted_call_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
                armed.append(getattr(callback, "__qualname__", repr(callback)))
                return call_at(when, callback, *args, **kwargs)

            loop.call_at = counted_call_at  # type: ignore[method-assign]
            try:
                await pool.request("GET", "/ari/channels/c0", None, 5)  # (its connection is opened)
                armed.clear()
                for n in range(1, 10):
                    await pool.request("GET", f"/ari/channels/c{n}", None, 5)
                assert armed == []  # the timer armed for the first request's deadline serves: the others' are later
                started = time.monotonic()
                later = asyncio.create_task(pool.request("GET", "/ari/channels/slow1", None, 0.6))
                await asyncio.sleep(0.05)
                with pytest.raises(TimeoutError):
                    await pool.request("GET", "/ari/channels/slow2", None, 0.2)  # sooner than the one before it
                assert 0.2 <= time.monotonic() - started < 0.45
                assert not later.done()
                with pytest.raises(TimeoutError):
                    await later
                assert 0.55 <= time.monotonic() - started < 1.0
                _, body = await pool.request("GET", "/ari/channels/next", None, 2)  # the pool still serves
                assert json.loads(body) == {"target": "/ari/channels/next"}
            finally:
                del loop.call_at  # type: ignore[method-assign]
                await pool.close()
                never.set()
    run(scenario())


@RUNNERS
def test_the_wait_for_a_connection_counts_in_the_timeout(run: Runner) -> None:
    async def scenario() -> None:
        release = asyncio.Event()

        async def slow(request: Request) -> bytes:
            await release.wait()
            return answer(204)

        async with FakeServer(slow) as server:
            pool = server.pool(size=1)
            busy = asyncio.ensure_future(pool.request("POST", "/ari/channels/c1/answer", None, 5))
            await wait_until(lambda: len(server.requests) == 1)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.request("POST", "/ari/channels/c2/answer", None, 0.2)
            assert 0.15 < time.monotonic() - started < 1.0
            release.set()
            assert await busy == (204, b"")
            assert await pool.request("POST", "/ari/channels/c3/answer", None, 2) == (204, b"")
            assert server.connections == 1  # the waiter that gave up took nothing with it
            await pool.close()
    run(scenario())


@RUNNERS
def test_chunked_and_split_answers_are_read_whole(run: Runner) -> None:
    async def scenario() -> None:
        payload = json.dumps([{"id": f"chan-{n}", "name": "PJSIP/8001-" + "x" * 50} for n in range(200)]).encode()

        async def chunked(request: Request) -> list[bytes]:
            if request.target.endswith("chunked"):
                head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
                chunks = [payload[i:i + 4000] for i in range(0, len(payload), 4000)]
                return [head] + [b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks] + [b"0\r\n\r\n"]
            whole = answer(200, payload)
            return [whole[:30], whole[30:5000], whole[5000:]]  # the head itself split

        async with FakeServer(chunked) as server:
            pool = server.pool()
            for target in ("/ari/channels?chunked", "/ari/channels?split"):
                status, body = await pool.request("GET", target, None, 5)
                assert status == 200 and body == payload
            assert server.connections == 1
            await pool.close()
    run(scenario())


@RUNNERS
def test_the_pool_bound_holds_under_concurrency(run: Runner) -> None:
    async def scenario() -> None:
        async def slow(request: Request) -> bytes:
            await asyncio.sleep(0.02)
            return answer(204)

        async with FakeServer(slow) as server:
            pool = server.pool(size=3)
            bound_seen: list[int] = []

            async def one(n: int) -> tuple[int, bytes]:
                result = await pool.request("POST", f"/ari/channels/c{n}/answer", None, 5)
                bound_seen.append(pool.open_connections)
                return result

            results = await asyncio.gather(*(one(n) for n in range(30)))
            assert results == [(204, b"")] * 30 and len(server.requests) == 30
            assert server.most_open == 3 and max(bound_seen) <= 3
            await pool.close()
    run(scenario())


@RUNNERS
def test_a_burst_of_requests_opens_a_few_connections_at_a_time(run: Runner) -> None:
    """Asterisk's HTTP server listens with a backlog of 10: 50 originates at once on new connections overflowed it,
    and the connections the kernel dropped were tried again 1 s later (an agent's phone rang ~1.1 s late). A new
    connection counts until its first answer (the handshake is the kernel's, the server may not have taken it)."""
    async def scenario() -> None:
        async def slow(request: Request) -> bytes:
            await asyncio.sleep(0.05)  # each connection busy a while: most requests need one of their own
            return answer(204)

        async with FakeServer(slow) as server:
            pool = server.pool(size=50)
            results = await asyncio.gather(*(pool.request("POST", f"/ari/channels/c{n}/answer", None, 5)
                                             for n in range(40)))
            assert results == [(204, b"")] * 40 and len(server.requests) == 40
            assert server.most_unanswered == CONNECTING_AT_ONCE < 10  # never more than Asterisk's backlog holds
            assert server.connections > CONNECTING_AT_ONCE  # more were opened, a few at a time
            assert pool.open_connections == pool.idle_connections == server.connections  # none lost, all kept
            await pool.close()
    run(scenario())


@RUNNERS
def test_stray_or_malformed_answers_drop_the_connection(run: Runner) -> None:
    async def scenario() -> None:
        async def odd(request: Request) -> bytes:
            if request.target.endswith("stray"):
                return answer(204) + b"HTTP/1.1 204 X\r\nContent-Length: 0\r\n\r\n"  # one answer too many
            if request.target.endswith("malformed"):
                return b"HTTP/1.1 2x0 Bad\r\n\r\n"
            return answer(204)

        async with FakeServer(odd) as server:
            pool = server.pool()
            assert await pool.request("DELETE", "/ari/x/stray", None, 5) == (204, b"")
            await wait_until(lambda: pool.open_connections == 0)
            assert await pool.request("DELETE", "/ari/x/next", None, 5) == (204, b"")
            assert server.requests[-1].connection == 2
            with pytest.raises(Exception, match="invalid HTTP answer"):
                await pool.request("DELETE", "/ari/x/malformed", None, 5)
            assert await pool.request("DELETE", "/ari/x/next", None, 5) == (204, b"")
            assert server.requests[-1].connection == 3
            await pool.close()
    run(scenario())


@RUNNERS
def test_https_is_spoken_with_the_servers_certificate_checked(run: Runner, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ari",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)

    async def scenario() -> None:
        async with FakeServer(ok, tls=server_side) as server:
            trusting = HttpPool("127.0.0.1", server.port, headers={}, size=2, idle_timeout=10,
                                ssl_context=ssl.create_default_context(cafile=str(cert)))
            for _ in range(2):
                assert await trusting.request("DELETE", "/ari/bridges/b1", None, 5) == (204, b"")
            assert server.connections == 1
            await trusting.close()
            untrusting = HttpPool("127.0.0.1", server.port, headers={}, size=2, idle_timeout=10,
                                  ssl_context=ssl.create_default_context())
            with pytest.raises(ssl.SSLCertVerificationError):
                await untrusting.request("DELETE", "/ari/bridges/b1", None, 5)
            assert len(server.requests) == 2
            await untrusting.close()
    run(scenario())


def test_a_target_or_header_that_could_break_the_request_is_refused() -> None:
    async def scenario() -> None:
        pool = HttpPool("127.0.0.1", 1, headers={}, size=1, idle_timeout=1)
        for target in ("/ari/channels/a b", "/ari/channels/a\r\nX-Injected: 1", "/ari/ch\u00e9", "ari/x"):
            with pytest.raises(ValueError):
                await pool.request("GET", target, None, 1)
    asyncio.run(scenario())
    with pytest.raises(ValueError):
        HttpPool("127.0.0.1", 1, headers={"Authorization": "Basic x\r\nX-Injected: 1"}, size=1, idle_timeout=1)


# -- AriClient over it -------------------------------------------------------------------------------------------


def client_for(server: FakeServer, **options: Any) -> AriClient:
    return AriClient(f"http://127.0.0.1:{server.port}/ari", "ccc", "secret", **options)


@RUNNERS
def test_ids_and_values_are_percent_encoded_so_asterisk_decodes_them_back(run: Runner) -> None:
    odd_id = "a/b?c d#e%f+g&h=i\r\nX-Injected: 1 \u6d4b"
    odd_value = "x&y=z+w %41\r\nX-Injected: 1 \u00e9"

    async def scenario() -> None:
        async with FakeServer(ok) as server, client_for(server) as ari:
            await ari.set_var(odd_id, "CCC_NOTE", odd_value)
            await ari.play(odd_id, ["sound:beep", "sound:hello world"], "pb-1", lang="zh")
            request = server.requests[0]
            assert "X-Injected" not in request.headers and len(server.requests) == 2
            # As Asterisk: res_ari splits the path at "/" and then decodes each segment; http.c splits the query
            # at "&" and "=" and decodes with "+" as a space (ast_uri_http_legacy).
            path, _, query = request.target.partition("?")
            segments = [urllib.parse.unquote(segment) for segment in path.split("/")]
            assert segments == ["", "ari", "channels", odd_id, "variable"]
            assert urllib.parse.parse_qsl(query) == [("variable", "CCC_NOTE"), ("value", odd_value)]
            play = urllib.parse.parse_qsl(server.requests[1].target.partition("?")[2])
            assert play == [("media", "sound:beep"), ("media", "sound:hello world"), ("lang", "zh")]
    run(scenario())


@RUNNERS
def test_request_targets_are_built_from_the_endpoint_table(run: Runner) -> None:
    """Booleans as true/false, numbers as text, None left out, a sequence as the key repeated, in the order given;
    a parameter or a body the operation does not take is refused before anything is sent."""
    async def scenario() -> None:
        async with FakeServer(ok) as server, client_for(server) as ari:
            await ari.request("channels.record", {"channelId": "c1"},
                              {"name": "rec 1", "format": "wav", "maxDurationSeconds": 30, "beep": False,
                               "ifExists": None, "maxSilenceSeconds": 2.5, "terminateOn": "#"})
            await ari.request("channels.play", {"channelId": "c1", "playbackId": "pb-1"},
                              {"media": ("sound:a", "sound:b c"), "lang": "zh"})
            await ari.request("bridges.add_channel", {"bridgeId": 7}, {"channel": ["c1"], "inhibitConnectedLineUpdates":
                                                                      True})
            assert [r.target for r in server.requests] == [
                "/ari/channels/c1/record?name=rec%201&format=wav&maxDurationSeconds=30&beep=false"
                "&maxSilenceSeconds=2.5&terminateOn=%23",
                "/ari/channels/c1/play/pb-1?media=sound:a&media=sound:b%20c&lang=zh",
                "/ari/bridges/7/addChannel?channel=c1&inhibitConnectedLineUpdates=true"]
            with pytest.raises(ValueError, match=r"channels.answer: parameters not in the ARI description: "
                                                 r"\['a&b', 'zz'\]"):
                await ari.request("channels.answer", {"channelId": "c1"}, {"zz": 1, "a&b": "x", "none": None})
            with pytest.raises(ValueError, match=r"channels\.answer takes no body"):
                await ari.request("channels.answer", {"channelId": "c1"}, body={"x": 1})
            assert len(server.requests) == 3
    run(scenario())


@RUNNERS
def test_answers_and_errors_map_as_before(run: Runner) -> None:
    async def scenario() -> None:
        async def asterisk(request: Request) -> bytes:
            if request.target == "/ari/channels/gone/answer":
                return answer(404, b'{"message": "Channel not found"}')
            if request.target == "/ari/bridges/none":
                return answer(404, b'{"message": "Bridge not found"}')
            if request.target.startswith("/ari/bridges/b1/addChannel"):
                return answer(422, b'{"message": "Channel not in Stasis application"}')
            if request.target.startswith("/ari/channels/c1/record"):
                return answer(409, b'{"message": "Channel is in a bridge"}')
            if request.target.startswith("/ari/channels/c1/dtmf"):
                return answer(400, b'{"message": "DTMF is required"}')
            if request.target == "/ari/asterisk/info":
                return answer(500, b"Internal Server Error")
            if request.target.startswith("/ari/applications"):
                return answer(401, b'{"error": "Authentication required"}')
            if request.target.startswith("/ari/channels/leg-1?"):
                return answer(200, json.dumps({"id": "leg-1", "name": "PJSIP/8001-1", "state": "Down",
                                               "body": json.loads(request.body)}).encode())
            return await ok(request)

        async with FakeServer(asterisk) as server, client_for(server) as ari:
            await ari.answer("c1")
            assert server.requests[-1].method == "POST" and server.requests[-1].headers["Content-Length"] == "0"
            assert await ari.request("channels.answer", {"channelId": "c1"}) is None  # 204
            playback = await ari.play("c1", "sound:beep", "pb-1")
            assert playback.id == "pb-1"
            channel = await ari.originate("leg-1", "PJSIP/8001", app="ccc", variables={"CCC_CALL": "\u6d4b"})
            originate = server.requests[-1]
            assert originate.headers["Content-Type"] == "application/json"
            assert json.loads(originate.body) == {"variables": {"CCC_CALL": "\u6d4b"}} and channel.id == "leg-1"
            assert originate.headers["Authorization"] == ari.auth_header
            expected: list[tuple[Awaitable[Any], type[AriError], int]] = [
                (ari.answer("gone"), ChannelGone, 404),
                (ari.destroy_bridge("none"), AriNotFound, 404),
                (ari.add_to_bridge("b1", "c9"), ChannelGone, 422),
                (ari.record("c1", "r1"), AriConflict, 409),
                (ari.send_dtmf("c1", ""), AriBadRequest, 400),
                (ari.info(), AriUnavailable, 500),
                (ari.applications(), AriError, 401),
            ]
            for call, kind, status in expected:
                with pytest.raises(kind) as raised:
                    await call
                assert type(raised.value) is kind and raised.value.status == status
            assert ari.requests_sent["channels.answer"] == 3 and ari.requests_sent["channels.originate"] == 1
            assert server.connections == 1  # error answers keep the connection
            sent = len(server.requests)
            ari.detach()
            with pytest.raises(AriDetached):
                await ari.answer("c1")
            assert len(server.requests) == sent
    run(scenario())


@RUNNERS
def test_no_answer_is_ari_unavailable(run: Runner) -> None:
    async def scenario() -> None:
        async def silent(request: Request) -> None:
            await asyncio.sleep(5)

        async with FakeServer(silent) as server:
            async with client_for(server, request_timeout=0.2) as ari:
                with pytest.raises(AriUnavailable) as timed_out:
                    await ari.answer("c1")
                assert timed_out.value.status == 0 and "TimeoutError" in str(timed_out.value)
                with pytest.raises(AriUnavailable):
                    await ari.set_var("c1", "X", "1", timeout=0.1)  # a request's own timeout
            refused_port = server.port
        async with AriClient(f"http://127.0.0.1:{refused_port}/ari", "ccc", "x", request_timeout=1) as ari:
            with pytest.raises(AriUnavailable) as refused:
                await ari.info()
            assert refused.value.status == 0
    run(scenario())


@RUNNERS
def test_a_raw_download_returns_the_bytes(run: Runner) -> None:
    audio = bytes(range(256)) * 400

    async def scenario() -> None:
        async def recording(request: Request) -> bytes:
            assert request.headers["Authorization"].startswith("Basic ")
            head = f"HTTP/1.1 200 OK\r\nContent-Type: audio/wav\r\nContent-Length: {len(audio)}\r\n\r\n".encode()
            return head + audio

        async with FakeServer(recording) as server, client_for(server) as ari:
            assert await ari.stored_recording_file("ccc/rec 1") == audio
            assert server.requests[0].target == "/ari/recordings/stored/ccc%2Frec%201/file"
    run(scenario())


@RUNNERS
def test_closing_the_client_ends_its_requests_and_it_opens_again_on_use(run: Runner) -> None:
    async def scenario() -> None:
        async def first_slow(request: Request) -> bytes:
            if request.target == "/ari/channels/c1/answer":
                await asyncio.sleep(5)
            return answer(204)

        async with FakeServer(first_slow) as server:
            ari = client_for(server, pool_size=1)
            ari.open()
            in_flight = asyncio.ensure_future(ari.answer("c1"))
            waiting = asyncio.ensure_future(ari.answer("c2"))  # beyond the pool's bound of 1
            await wait_until(lambda: len(server.requests) == 1)
            await ari.close()
            for request in (in_flight, waiting):
                with pytest.raises(AriUnavailable):
                    async with asyncio.timeout(1):  # at once, not at their 5 s timeout
                        await request
            await ari.answer("c3")  # a new pool
            assert [r.target for r in server.requests] == ["/ari/channels/c1/answer", "/ari/channels/c3/answer"]
            await ari.close()
    run(scenario())
