"""A lean HTTP/1.1 keep-alive transport for the ARI REST requests.

Why it exists: a full-path call makes about 11 ARI requests, and through aiohttp's ClientSession each one cost
65-95 µs of the controller's CPU (~120 Python function calls: URL objects, multidicts, tracing hooks, timeout
contexts, a streamed response reader): aiohttp was about 35 % of the controller's Python time on the call path,
the largest cost per call (README "Benchmarks"). ARI needs none of that generality: one host, small JSON bodies,
answers Asterisk always frames with Content-Length. Here a request is one `transport.write` of a prebuilt head
and its body, and the answer is parsed by httptools (llhttp, the parser uvicorn uses) straight from
`data_received` into a future: a few µs of Python per request.

What it keeps from aiohttp's connector (its behaviour is the reference):
- a bounded pool (`size`, well below http.conf's `sessionlimit`): a request beyond it waits for a connection;
- keep-alive, most recently used connection first, so the others age out; a connection idle for
  `idle_timeout` (below Asterisk's `session_keep_alive`, 15 s) is closed and never reused;
- a connection the server closed (EOF, reset, `Connection: close`, HTTP/1.0) is never reused, nor one left in an
  unknown state (a timeout, a cancelled caller, a malformed answer, stray bytes): it is closed;
- a request whose connection closes before any byte of the answer is retried once on another connection only
  for idempotent methods (GET, PUT, DELETE): Asterisk may have acted on a POST (an originate would ring an
  agent twice), so a POST is never sent twice;
- one deadline per request, covering the wait for a connection, connecting, sending and the whole answer: the
  answers in flight share one loop timer, armed for the soonest deadline (`_watch`); a timer armed and cancelled per
  request cost ~4 µs each on uvloop, ~6 a call.

Not supported, because ARI does not need them: HEAD requests, bodies delimited by the connection's close (Asterisk
always sends Content-Length), `Expect: 100-continue`, redirects, proxies.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Mapping
from typing import cast

import httptools

#: Methods whose repetition has the effect of one request (RFC 9110): the only ones retried on a dropped connection.
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "OPTIONS"})


class TransportError(Exception):
    """The request got no complete answer (the client maps it to AriUnavailable)."""


class ConnectionClosed(TransportError):
    """The server closed the connection before the end of the answer."""

    def __init__(self, message: str, *, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response  # no byte of the answer came: the request may not have been read


class ProtocolError(TransportError):
    """The answer was not valid HTTP/1.1."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight (no pipelining)."""

    def __init__(self, pool: HttpPool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self._body: list[bytes] = []
        self.received = False  # a byte of the current answer came
        self.closed = False  # the server closed it, or we did: never reused
        self.idle_since = 0.0
        self.unanswered = True  # no answer came on it yet: the server may not have accepted it (CONNECTING_AT_ONCE)

    # -- used by the pool ----------------------------------------------------------------------------

    def send(self, data: bytes, answer: asyncio.Future[tuple[int, bytes, bool]]) -> None:
        assert self.transport is not None
        self._answer = answer
        self._body = []
        self.received = False
        self.transport.write(data)

    def close(self) -> None:
        """Close now, dropping what is unsent: the connection is out of step or no longer wanted."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def usable(self) -> bool:
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    # -- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def data_received(self, data: bytes) -> None:
        if self._answer is None:  # bytes nobody asked for: the connection is out of step
            self.close()
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"invalid HTTP answer: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        self.closed = True  # before connection_lost runs: not taken from the pool in between
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._lost(self)
        reason = f": {exc}" if exc else ""
        self._fail(ConnectionClosed(f"the server closed the connection{reason}", before_response=not self.received))

    # -- httptools callbacks -----------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._answer is None:  # an answer nobody asked for (after the one awaited): out of step
            self.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_result((self._parser.get_status_code(), b"".join(self._body),
                               self._parser.should_keep_alive()))

    def _fail(self, exc: Exception) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(exc)


#: New connections at once, at most: being opened, or open with no answer on them yet (the server may not have
#: accepted them: the handshake is the kernel's). Asterisk's HTTP server listens with a backlog of 10
#: (main/tcptls.c, `listen(desc->accept_fd, 10)`) and accepts them one by one in one thread; when more arrive
#: together (50 agents made ready at once need 50 originates, most on new connections), the kernel drops the ones
#: beyond its accept queue and the client's next try comes 1 s later (TCP's first retransmission): that agent's
#: phone rang ~1.1 s late (README "Benchmarks", fifth session). Requests beyond it wait for a connection released,
#: or for a new one's first answer.
CONNECTING_AT_ONCE = 8


#: A deadline this close is due: a loop timer may run its callback up to its clock's resolution early.
DEADLINE_SLACK_SECONDS = 0.001


class HttpPool:
    """HTTP/1.1 requests to one server over a bounded pool of keep-alive connections (see the module's docstring).

    `request` returns (status, body); it raises TimeoutError, OSError (connecting) or a TransportError.
    """

    def __init__(
        self, host: str, port: int, *, headers: Mapping[str, str], size: int, idle_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.host, self.port = host, port
        self.size = size
        self.idle_timeout = idle_timeout
        self._ssl = ssl_context
        fixed = {"Host": host_header(host, port), **headers}
        for name, value in fixed.items():
            check_header(name, value)
        self._fixed_head = "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
        self._idle: list[_Connection] = []  # the most recently used last: taken first, so the others age out
        self._all: set[_Connection] = set()
        self._opening = 0  # connections being connected (counted in the bound with the open ones)
        self._unanswered = 0  # open connections with no answer on them yet (`_Connection.unanswered`)
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._deadlines: dict[asyncio.Future[tuple[int, bytes, bool]], float] = {}  # answers in flight -> deadline
        self._deadline_timer: asyncio.TimerHandle | None = None  # armed for `_deadline_at`, the soonest of them
        self._deadline_at = float("inf")
        self._closed = False  # close() was called: a connection that finishes its request is not kept
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop its connections live in

    @property
    def open_connections(self) -> int:
        return len(self._all) + self._opening

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    async def request(self, method: str, target: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
        """Send `method target` (an origin-form target, already percent-encoded) with a JSON body, if any."""
        if method == "HEAD":
            raise ValueError("HEAD is not supported (its answer's framing differs)")
        check_target(target)
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed_head}"
        if body is not None:
            data = f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
        elif method in ("POST", "PUT"):
            data = f"{head}Content-Length: 0\r\n\r\n".encode()
        else:
            data = f"{head}\r\n".encode()
        loop = self._loop
        if loop is None:  # looked up once (on Python 3.11 each lookup is a getpid() system call); close() forgets it
            loop = self._loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        retry = method in IDEMPOTENT_METHODS
        while True:
            connection = self._take_idle(loop)  # usable: checked there
            if connection is None:
                connection = await self._acquire(loop, deadline)
                if not connection.usable():
                    continue  # closed while it was handed over to us: nothing was sent on it, any method may go on
            answer: asyncio.Future[tuple[int, bytes, bool]] = loop.create_future()
            self._watch(answer, deadline, loop)
            try:
                connection.send(data, answer)
                status, payload, keep_alive = await answer
            except ConnectionClosed as exc:
                if retry and exc.before_response:
                    retry = False  # once, as aiohttp: the server may have dropped it just as we sent
                    continue
                raise
            except BaseException:  # a timeout, a cancelled caller, a malformed answer: the connection is out of step
                connection.close()
                raise
            finally:
                del self._deadlines[answer]
                if connection.unanswered:
                    self._answered_first(connection)
            self._release(connection, keep_alive, loop)
            return status, payload

    async def close(self) -> None:
        """Close every connection (a request in flight fails with ConnectionClosed) and wake the waiters."""
        self._closed = True
        self._loop = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer, self._deadline_at = None, float("inf")
        for connection in list(self._all):
            connection.close()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ConnectionClosed("the pool was closed", before_response=False))
        await asyncio.sleep(0)  # let the transports run connection_lost

    # -- deadlines --------------------------------------------------------------------------------------------

    def _watch(self, answer: asyncio.Future[tuple[int, bytes, bool]], deadline: float,
               loop: asyncio.AbstractEventLoop) -> None:
        """Fail `answer` with TimeoutError at `deadline` unless it is answered (and forgotten) first. One timer for
        all: armed again only for a sooner deadline; an answer that comes in time leaves it as it is (when it
        fires, `_expire_overdue` arms it for the next deadline, if any: at most one fire per deadline's length)."""
        self._deadlines[answer] = deadline
        if deadline < self._deadline_at:
            if self._deadline_timer is not None:
                self._deadline_timer.cancel()
            self._arm_deadline_timer(deadline, loop)

    def _arm_deadline_timer(self, deadline: float, loop: asyncio.AbstractEventLoop) -> None:
        self._deadline_at = deadline
        self._deadline_timer = loop.call_at(deadline, self._expire_overdue, loop)

    def _expire_overdue(self, loop: asyncio.AbstractEventLoop) -> None:
        self._deadline_timer, self._deadline_at = None, float("inf")
        due = loop.time() + DEADLINE_SLACK_SECONDS
        soonest = float("inf")
        for answer, deadline in list(self._deadlines.items()):
            if deadline <= due:
                if not answer.done():
                    answer.set_exception(TimeoutError())
            elif deadline < soonest:
                soonest = deadline
        if soonest < float("inf"):
            self._arm_deadline_timer(soonest, loop)

    # -- the pool --------------------------------------------------------------------------------------------

    def _take_idle(self, loop: asyncio.AbstractEventLoop) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.usable() and loop.time() - connection.idle_since < self.idle_timeout:
                return connection
            connection.close()
        return None

    async def _acquire(self, loop: asyncio.AbstractEventLoop, deadline: float) -> _Connection:
        """A new connection if the bound allows, else the next one released (waits until the deadline)."""
        async with asyncio.timeout_at(deadline):
            while True:
                if self.open_connections < self.size and self._opening + self._unanswered < CONNECTING_AT_ONCE:
                    return await self._connect(loop)
                waiter: asyncio.Future[_Connection | None] = loop.create_future()
                self._waiters.append(waiter)
                try:
                    connection = await waiter  # a connection handed over, or None: a place in the bound is free
                except BaseException:
                    if not waiter.done():
                        self._waiters.remove(waiter)
                    elif not waiter.cancelled() and waiter.exception() is None:
                        handed = waiter.result()
                        if handed is not None:
                            self._release(handed, True, loop)
                        else:
                            self._hand_over(None)
                    raise
                if connection is not None:
                    return connection
                connection = self._take_idle(loop)
                if connection is not None:
                    return connection

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        self._opening += 1
        try:
            transport, connection = await loop.create_connection(
                lambda: _Connection(self), self.host, self.port, ssl=self._ssl)
        except BaseException:
            self._opening -= 1
            self._hand_over(None)
            raise
        self._opening -= 1
        connection.transport = transport  # uvloop may call connection_made only after this returns
        self._all.add(connection)
        self._unanswered += 1
        if not connection.usable():  # the server closed it at once (e.g. at its session limit)
            self._lost(connection)
            raise ConnectionClosed("the server closed a new connection at once", before_response=True)
        return connection

    def _release(self, connection: _Connection, keep_alive: bool, loop: asyncio.AbstractEventLoop) -> None:
        if not keep_alive or self._closed or not connection.usable():
            connection.close()  # connection_lost frees its place in the bound
            return
        if self._waiters and self._hand_over(connection):
            return
        connection.idle_since = loop.time()
        self._idle.append(connection)
        if self._sweeper is None:
            self._sweeper = loop.call_at(connection.idle_since + self.idle_timeout, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the connections idle for idle_timeout (the oldest first in the list), before the server does."""
        self._sweeper = None
        now = loop.time()
        idle = self._idle
        while idle and now - idle[0].idle_since >= self.idle_timeout:
            idle.pop(0).close()
        if idle:
            self._sweeper = loop.call_at(idle[0].idle_since + self.idle_timeout, self._sweep, loop)

    def _answered_first(self, connection: _Connection) -> None:
        """A new connection's first request is over (answered, or failed): the server has it, another may open."""
        connection.unanswered = False
        self._unanswered -= 1
        if self._waiters and self.open_connections < self.size:
            self._hand_over(None)

    def _lost(self, connection: _Connection) -> None:
        """A connection ended (the server's close or ours): its place in the bound goes to a waiter."""
        if connection.unanswered and connection in self._all:
            connection.unanswered = False
            self._unanswered -= 1
        if connection in self._all:
            self._all.discard(connection)
            if connection in self._idle:
                self._idle.remove(connection)
            self._hand_over(None)

    def _hand_over(self, connection: _Connection | None) -> bool:
        """Give the first waiter still waiting a connection, or (None) a free place in the bound."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return True
        return False


def check_target(target: str) -> None:
    """Refuse a request target that is not origin-form and percent-encoded (it would break the request line)."""
    if not (target.isascii() and target.isprintable()) or " " in target or not target.startswith("/"):
        raise ValueError(f"not a percent-encoded request target: {target!r}")


def host_header(host: str, port: int) -> str:
    """The value of the Host header (an IPv6 literal in brackets)."""
    return f"{host if ':' not in host else f'[{host}]'}:{port}"


def check_header(name: str, value: str) -> None:
    """Refuse a header that would break the request's head (CR, LF, non-ASCII, a bad name)."""
    for text in (name, value):
        if not text.isascii() or not text.isprintable():
            raise ValueError(f"header {name!r}: not printable ASCII")
    if not name or ":" in name or " " in name:
        raise ValueError(f"not a header name: {name!r}")
