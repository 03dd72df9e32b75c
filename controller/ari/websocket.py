"""A lean WebSocket client (RFC 6455) for the ARI event stream.

Why it exists: a full-path call receives about 15 ARI events, and through aiohttp's ClientWebSocketResponse each
one ran its ResponseHandler.data_received, its WebSocket reader, a message object through a queue,
`receive` and `_reset_heartbeat` (a timer cancelled and rescheduled on every message). Here a frame is parsed
straight from `data_received` and its payload handed to a callback, in order: a few µs of Python per event
(tests/bench/bench_ari.py measures both). The style is transport.py's (asyncio Protocol, httptools for the
HTTP head).

What it does:
- the HTTP/1.1 Upgrade handshake (the caller's headers, e.g. Basic auth), the answer checked: 101, `Upgrade:
  websocket`, `Connection: Upgrade`, `Sec-WebSocket-Accept` derived from our key; anything else is a
  HandshakeError naming the status and the start of the body (a 401 says the ARI password is wrong);
- the server's frames: text messages, also fragmented (continuation frames), delivered as bytes (the caller
  decodes them); binary messages ignored with a warning (ARI sends none); ping answered with a pong; close
  answered with a close, then the connection ends; a masked frame, reserved bits, a bad opcode, a control frame
  too long or fragmented, or a message above `max_size` end the connection (close 1002 / 1009) with a reason;
- its own keep-alive with one timer, not one per message: a ping every `ping_interval`; if nothing at all came
  from the server (its pong, or any other frame, as aiohttp's heartbeat) `pong_timeout` after it, the connection
  is dropped;
- frames we send are masked (client to server), as the RFC requires.

Not supported, because ARI does not use them: extensions (permessage-deflate), subprotocols, sending messages.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import ssl
import struct
from collections.abc import Callable, Mapping
from typing import cast

import httptools

from controller.ari.transport import ProtocolError, TransportError, check_header, check_target, host_header

log = logging.getLogger("controller.ari.websocket")

#: RFC 6455 §1.3: appended to the client's key, hashed with SHA-1, base64: the server's Sec-WebSocket-Accept.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_PROTOCOL_ERROR, _TOO_BIG, _NORMAL = 1002, 1009, 1000
#: The close code of a client that stops (RFC 6455 §7.4.1).
GOING_AWAY = 1001


class HandshakeError(TransportError):
    """The server did not accept the WebSocket (wrong status, e.g. 401, or a wrong answer to our key)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept a server must answer to our Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest()).decode()


def _client_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A final frame from the client: masked with a random key (payloads here are control frames, <= 125 bytes)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index & 3] for index, byte in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked


def _close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[:123]


class WebSocket(asyncio.Protocol):
    """One client WebSocket connection; build it with `connect`. Text messages go to `on_text` from `start` on
    (those that came before are kept and handed over first, in order); `wait_closed` returns why it ended."""

    def __init__(self, key: str, ping_interval: float, pong_timeout: float, max_size: int) -> None:
        self._key = key
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._max_size = max_size
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._status = 0  # of the handshake's answer, once its head is read
        self._refused_body: list[bytes] = []
        self._handshake: asyncio.Future[None] = self._loop.create_future()
        self._ended: asyncio.Future[str] = self._loop.create_future()  # the reason the connection ended
        self._on_text: Callable[[bytes], None] | None = None
        self._early: list[bytes] = []  # text messages that came before `start`
        self._pending = bytearray()  # the start of a frame not complete yet
        self._needed = 0  # how many bytes _pending must hold before parsing again
        self._fragments: list[bytes] = []  # the frames so far of a fragmented message
        self._fragments_size = 0
        self._fragmented_opcode = 0  # TEXT or BINARY while a fragmented message is being received, else 0
        self._close_sent = False
        self._stopped = False  # no more frames are read (closing, closed, failed)
        self._heard = False  # something came from the server since our last ping
        self._timer: asyncio.TimerHandle | None = None
        self.binary_ignored = 0

    # -- for the caller ----------------------------------------------------------------------------------------

    def start(self, on_text: Callable[[bytes], None]) -> None:
        """From now on each complete text message is handed to `on_text` as it comes (never concurrently)."""
        self._on_text = on_text
        early, self._early = self._early, []
        ended_before = self._stopped  # what came before the end is still handed over
        for payload in early:
            if self._stopped and not ended_before:  # `on_text` closed it: nothing after is read
                break
            on_text(payload)

    async def wait_closed(self) -> str:
        """Wait until the connection ended; returns why (for the log)."""
        return await asyncio.shield(self._ended)

    def close(self, code: int = _NORMAL, reason: str = "") -> None:
        """Stop reading, say goodbye (a close frame) and end the connection (its buffered frames are sent first)."""
        self._stop(f"closed by us ({code})")
        self._send_close(code, reason)
        if self.transport is not None:
            self.transport.close()

    @property
    def open(self) -> bool:
        return not self._stopped

    # -- asyncio.Protocol -----------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not its subclasses

    def data_received(self, data: bytes) -> None:
        self._heard = True
        if self._parser is not None:
            self._handshake_data(data)
            return
        if self._pending:
            self._pending += data
            if len(self._pending) < self._needed:
                return
            data, self._pending = bytes(self._pending), bytearray()
        self._frames(data)

    def eof_received(self) -> bool:
        return False  # the transport closes itself: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reason = f"the server closed the connection{f': {exc}' if exc else ''}"
        if not self._handshake.done():
            self._handshake.set_exception(self._refusal() if self._status else
                                          ConnectionError(f"{reason} during the WebSocket handshake"))
        self._stop(reason)

    # -- the handshake (httptools callbacks) ------------------------------------------------------------------------

    def _handshake_data(self, data: bytes) -> None:
        assert self._parser is not None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = int(upgrade.args[0])
            self._parser = None
            if self._accepted():
                self._handshake.set_result(None)
                self._schedule(self._ping_interval, self._ping)
                if offset < len(data):
                    self._frames(data[offset:])
        except httptools.HttpParserError as exc:
            if self._status == 101:  # llhttp's "Pause on CONNECT/Upgrade": a 101 without `Upgrade`
                self._accepted()
            else:
                self._fail_handshake(ProtocolError(f"invalid HTTP answer to the WebSocket handshake: {exc}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self._status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._refused_body.append(body)

    def on_message_complete(self) -> None:
        if self._status != 101:  # a 101's headers are checked in _accepted
            self._fail_handshake(self._refusal())

    def _refusal(self) -> HandshakeError:
        body = b"".join(self._refused_body).decode(errors="replace").strip()[:200]
        return HandshakeError(f"the server refused the WebSocket: HTTP {self._status} {body}".rstrip(), self._status)

    def _accepted(self) -> bool:
        headers = self._headers
        if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in headers.get(
                "connection", "").lower().replace(" ", "").split(","):
            self._fail_handshake(HandshakeError("the server answered 101 without upgrading to a WebSocket", 101))
            return False
        if headers.get("sec-websocket-accept") != accept_key(self._key):
            self._fail_handshake(HandshakeError("wrong Sec-WebSocket-Accept in the server's answer", 101))
            return False
        if headers.get("sec-websocket-extensions") or headers.get("sec-websocket-protocol"):
            self._fail_handshake(HandshakeError("the server chose an extension or subprotocol we did not offer", 101))
            return False
        return True

    def _fail_handshake(self, exc: Exception) -> None:
        self._parser = None
        if not self._handshake.done():
            self._handshake.set_exception(exc)
        self._stop(str(exc))
        if self.transport is not None:
            self.transport.abort()

    # -- frames ----------------------------------------------------------------------------------------------------

    def _frames(self, data: bytes) -> None:
        """Parse and handle every complete frame of `data`; keep the incomplete rest for the next bytes."""
        position, end = 0, len(data)
        on_text = self._on_text
        while not self._stopped:
            available = end - position
            if available < 2:
                self._needed = 2
                break
            first, second = data[position], data[position + 1]
            if second & 0x80:
                self._fail(_PROTOCOL_ERROR, "a masked frame from the server")
                return
            length, head = second & 0x7F, 2
            if length == 126:
                if available < 4:
                    self._needed = 4
                    break
                length, head = data[position + 2] << 8 | data[position + 3], 4
            elif length == 127:
                if available < 10:
                    self._needed = 10
                    break
                length, head = int.from_bytes(data[position + 2:position + 10]), 10
            if length > self._max_size:
                self._fail(_TOO_BIG, f"a frame of {length} bytes (at most {self._max_size})")
                return
            if available < head + length:
                self._needed = head + length
                break
            start = position + head
            position = start + length
            if first == 0x81 and on_text is not None and not self._fragmented_opcode:  # the common case
                on_text(data[start:position])
            else:
                self._frame(first, data[start:position])
        else:
            return
        if position < end:
            self._pending = bytearray(data[position:] if position else data)

    def _deliver(self, payload: bytes) -> None:
        if self._fragmented_opcode:
            self._fail(_PROTOCOL_ERROR, "a new message inside a fragmented one")
        elif self._on_text is not None:
            self._on_text(payload)
        else:
            self._early.append(payload)

    def _frame(self, first: int, payload: bytes) -> None:
        final, opcode = first & 0x80, first & 0x0F
        if first & 0x70:
            self._fail(_PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
        elif opcode >= _CLOSE:
            if not final or len(payload) > 125:
                self._fail(_PROTOCOL_ERROR, "a fragmented or too long control frame")
            elif opcode == _PING:
                self._send(_client_frame(_PONG, payload))
            elif opcode == _CLOSE:
                self._closed_by_server(payload)
            elif opcode != _PONG:
                self._fail(_PROTOCOL_ERROR, f"unknown control opcode {opcode}")
        elif opcode == _CONTINUATION:
            self._continuation(final, payload)
        elif opcode not in (_TEXT, _BINARY):
            self._fail(_PROTOCOL_ERROR, f"unknown data opcode {opcode}")
        elif final:
            if opcode == _TEXT:
                self._deliver(payload)
            elif self._fragmented_opcode:
                self._fail(_PROTOCOL_ERROR, "a new message inside a fragmented one")
            else:
                self._ignore_binary(len(payload))
        elif self._fragmented_opcode:
            self._fail(_PROTOCOL_ERROR, "a new message inside a fragmented one")
        else:
            self._fragmented_opcode = opcode
            self._fragments, self._fragments_size = [payload], len(payload)

    def _continuation(self, final: int, payload: bytes) -> None:
        if not self._fragmented_opcode:
            self._fail(_PROTOCOL_ERROR, "a continuation frame outside a fragmented message")
            return
        self._fragments_size += len(payload)
        if self._fragments_size > self._max_size:
            self._fail(_TOO_BIG, f"a message of more than {self._max_size} bytes")
            return
        self._fragments.append(payload)
        if final:
            opcode, self._fragmented_opcode = self._fragmented_opcode, 0
            message, self._fragments = b"".join(self._fragments), []
            if opcode == _TEXT:
                self._deliver(message)
            else:
                self._ignore_binary(len(message))

    def _ignore_binary(self, size: int) -> None:
        self.binary_ignored += 1
        log.warning("binary WebSocket message of %d bytes ignored (ARI sends text)", size)

    def _closed_by_server(self, payload: bytes) -> None:
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        text = payload[2:].decode(errors="replace")
        self._stop(f"the server closed the WebSocket ({code}{f' {text}' if text else ''})")
        self._send_close(code if len(payload) >= 2 and code not in (1005, 1006, 1015) else _NORMAL)
        if self.transport is not None:
            self.transport.close()  # after our close frame is flushed; the server closes its side too

    def _fail(self, code: int, reason: str) -> None:
        """The server broke the protocol: say why in a close frame and end the connection."""
        log.warning("ARI WebSocket: %s; closing it", reason)
        self._stop(reason)
        self._send_close(code, reason)
        if self.transport is not None:
            self.transport.close()

    # -- keep-alive: one timer, alternating between "send a ping" and "was anything heard since?" -------------------

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        self._timer = self._loop.call_later(delay, callback)

    def _ping(self) -> None:
        self._heard = False
        self._send(_client_frame(_PING, b"ccc"))
        self._schedule(self._pong_timeout, self._check_pong)

    def _check_pong(self) -> None:
        if self._heard:
            self._schedule(self._ping_interval - self._pong_timeout, self._ping)
            return
        log.warning("ARI WebSocket: no answer to a ping for %.1f s; dropping the connection", self._pong_timeout)
        self._timer = None
        self._stop(f"no pong within {self._pong_timeout:.1f} s")
        if self.transport is not None:
            self.transport.abort()  # a dead peer would never read a close frame

    # -- ending --------------------------------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def _send_close(self, code: int, reason: str = "") -> None:
        if not self._close_sent:
            self._close_sent = True
            self._send(_client_frame(_CLOSE, _close_payload(code, reason)))

    def _stop(self, reason: str) -> None:
        self._stopped = True
        self._pending = bytearray()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._ended.done():
            self._ended.set_result(reason)


async def connect(
    host: str, port: int, target: str, *, headers: Mapping[str, str], timeout: float,
    ssl_context: ssl.SSLContext | None = None, ping_interval: float = 10.0, pong_timeout: float = 5.0,
    max_size: int = 16 * 1024 * 1024,
) -> WebSocket:
    """Connect to ws(s)://host:port/target and complete the handshake within `timeout` seconds.
    Raises OSError (connecting), TimeoutError, HandshakeError or ProtocolError."""
    if not 0 < pong_timeout < ping_interval:
        raise ValueError("the pong timeout must be positive and shorter than the ping interval")
    check_target(target)
    key = base64.b64encode(os.urandom(16)).decode()
    fixed = {"Host": host_header(host, port), "Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13", **headers}
    for name, value in fixed.items():
        check_header(name, value)
    request = (f"GET {target} HTTP/1.1\r\n" + "".join(f"{name}: {value}\r\n" for name, value in fixed.items())
               + "\r\n").encode()
    loop = asyncio.get_running_loop()
    socket: WebSocket | None = None
    try:
        async with asyncio.timeout(timeout):
            transport, socket = await loop.create_connection(
                lambda: WebSocket(key, ping_interval, pong_timeout, max_size), host, port, ssl=ssl_context)
            socket.transport = transport  # uvloop may call connection_made only after this returns
            transport.write(request)
            await socket._handshake
    except BaseException:
        if socket is not None and socket.transport is not None:
            socket._stop("the handshake failed")
            socket.transport.abort()
        raise
    return socket
