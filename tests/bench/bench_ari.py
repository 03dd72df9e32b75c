"""The controller's own CPU per ARI request and per ARI event, without Asterisk (a few seconds).

- requests: `AriClient` against a stand-in for Asterisk's HTTP server in a child process (keep-alive,
  Asterisk's response headers, a playback's JSON or 204), the full-path call's mix of requests (a play with
  its JSON answer, bodiless 204s, an originate with a JSON body), 1 and 10 at a time; CPU of this process only
  (`time.process_time`), so the server's work is not counted;
- events: one WebSocket message's text → `json.loads` → `parse_event`, for the event types of the full-path
  call (with Asterisk 22's fields), and the same decode with orjson when it is installed;
- the event stream: a stand-in for Asterisk's events WebSocket in a child process sends the full-path call's
  events (each frame its own write, 4 per ms, as Asterisk writes them one by one), read by our client
  (controller/ari/websocket.py, what EventStream uses), by aiohttp's `ws_connect(heartbeat=10)` (EventStream's
  client until 2026-11-26) and by `websockets`' asyncio client when it is installed; each hands the text to the
  same `json.loads` + `parse_event` + `_event_lag`: the difference is the WebSocket client's CPU per event;
- routing: `Dispatcher.dispatch` into a call's `Inbox` and the call's task taking it out (`Inbox.get` with
  and without a timeout), and the same into a `CallSession` whose task takes each with `wait_for`;
- Python function calls (cProfile's count) per request, per decoded event and per routed event;
- prompts: `PromptRenderer.media_for` of a text prompt already rendered (what each prompt of each call asks).

    .venv/bin/python -m tests.bench bench_ari
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from controller.ari import websocket
from controller.ari.client import AriClient
from controller.ari.dispatcher import Dispatcher, Inbox
from controller.ari.events import _event_lag
from controller.ari.models import Event, parse_event
from controller.ivr.port import Prompt
from controller.media.prompts import PromptRenderer, prompt_key

REQUESTS = int(os.environ.get("CCC_BENCH_ARI_REQUESTS", "3000"))
EVENTS = int(os.environ.get("CCC_BENCH_ARI_EVENTS", "20000"))
STREAMED = int(os.environ.get("CCC_BENCH_ARI_STREAMED", "8000"))  # events per round of the event stream bench

#: A stand-in for Asterisk's HTTP server: answers each request on a kept-alive connection with Asterisk's headers.
SERVER = r'''
import asyncio, sys
BODY = b'{"id":"pb-1","media_uri":"sound:beep","target_uri":"channel:c1","language":"en","state":"queued"}'
HEAD = b"Server: Asterisk/22.5.0\r\nDate: Thu, 26 Nov 2026 15:00:00 GMT\r\nConnection: Keep-Alive\r\n" \
       b"Cache-Control: no-cache, no-store\r\n"
OK = b"HTTP/1.1 200 OK\r\n" + HEAD + b"Content-Length: %d\r\nContent-type: application/json\r\n\r\n" % len(BODY) + BODY
EMPTY = b"HTTP/1.1 204 No Content\r\n" + HEAD + b"Content-Length: 0\r\n\r\n"

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            line = head.split(b"\r\n")[0]
            # As Asterisk: a play, a bridge, an originate answer with their object; answer, addChannel, DELETE: 204
            bodiless = not line.startswith(b"POST") or b"/answer" in line or b"/addChannel" in line
            self.transport.write(EMPTY if bodiless else OK)

async def main():
    server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
'''

_CHANNEL = {
    "id": "1764170000.123", "name": "PJSIP/trunk-0000007b", "state": "Up", "protocol_id": "1-4567@127.0.0.1",
    "caller": {"name": "", "number": "13800138000"}, "connected": {"name": "", "number": ""}, "accountcode": "",
    "dialplan": {"context": "ccc-inbound", "exten": "4008005100", "priority": 2, "app_name": "Stasis",
                 "app_data": "ccc,4008005100"},
    "creationtime": "2026-11-26T15:46:49.228+0000", "language": "en", "tenantid": "",
}
_STAMP = {"timestamp": "2026-11-26T15:46:50.001+0000", "asterisk_id": "02:42:ac:11:00:02", "application": "ccc"}
#: One message of each kind the full-path call receives (Asterisk 22's fields), with how many a call gets.
EVENT_MIX: list[tuple[int, dict[str, Any]]] = [
    (2, {"type": "StasisStart", "args": ["4008005100"], "channel": _CHANNEL, **_STAMP}),
    (3, {"type": "ChannelDtmfReceived", "digit": "1", "duration_ms": 140, "channel": _CHANNEL, **_STAMP}),
    (2, {"type": "PlaybackFinished", "playback": {"id": "pb-3f2a", "media_uri": "sound:beep",
                                                  "target_uri": "channel:1764170000.123", "language": "en",
                                                  "state": "done"}, **_STAMP}),
    (3, {"type": "Dial", "dialstatus": "ANSWER", "dialstring": "bench0001", "forward": "",
         "peer": _CHANNEL | {"id": "leg-agent-3f2a", "name": "PJSIP/bench0001-0000007c"}, **_STAMP}),
    (2, {"type": "ChannelHangupRequest", "cause": 16, "channel": _CHANNEL, **_STAMP}),
    (2, {"type": "StasisEnd", "channel": _CHANNEL, **_STAMP}),
    (1, {"type": "ChannelDestroyed", "cause": 16, "cause_txt": "Normal Clearing", "channel": _CHANNEL, **_STAMP}),
]


#: A stand-in for Asterisk's events WebSocket: accepts the upgrade of GET /events?count=N, then sends N frames
#: (the lines of its standard input, in turn), each its own write, 4 per millisecond (all at once with burst=1);
#: ignores what the client sends.
WS_SERVER = r'''
import asyncio, base64, hashlib, struct, sys, time
MESSAGES = [line.rstrip("\n").encode() for line in sys.stdin]
FRAMES = [struct.pack("!BBH", 0x81, 126, len(m)) + m if len(m) > 125 else bytes((0x81, len(m))) + m
          for m in MESSAGES]

class Events(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer, self.streaming = transport, b"", False
    def data_received(self, data):
        if self.streaming:
            return
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        self.streaming = True
        head = self.buffer.decode("latin-1")
        count = int(head.split("count=", 1)[1].split(" ", 1)[0].split("&", 1)[0])
        self.per_ms = count if "burst=1" in head else 4
        key = next(line.split(":", 1)[1].strip() for line in head.split("\r\n")
                   if line.lower().startswith("sec-websocket-key:"))
        accept = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        asyncio.get_running_loop().create_task(self.stream(count))
    async def stream(self, count):
        sent = 0
        while sent < count and not self.transport.is_closing():
            for _ in range(min(self.per_ms, count - sent)):
                self.transport.write(FRAMES[sent % len(FRAMES)])
                sent += 1
            await asyncio.sleep(0.001)

async def main():
    server = await asyncio.get_running_loop().create_server(Events, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
'''


def cpu_us(run: Callable[[], Any], count: int) -> float:
    """Microseconds of this process's CPU per item, best of 3 (the machine is shared)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best * 1e6 / count


async def call_requests(client: AriClient, n: int) -> int:
    """The IVR's and the queue's requests of one full-path call that can be sent without a real channel:
    answer, two plays (a JSON answer each), a bridge's create / add / destroy, an originate (a JSON body),
    the caller's hang-up. Returns how many were sent."""
    channel = f"chan-{n}"
    await client.answer(channel)
    for k in range(2):
        await client.play(channel, ["sound:beep"], f"pb-{n}-{k}", lang="en")
    await client.create_bridge(f"br-{n}", "holding", "ccc")
    await client.add_to_bridge(f"br-{n}", channel, role="participant")
    await client.destroy_bridge(f"br-{n}")
    await client.request("channels.originate", {"channelId": f"leg-{n}"},
                         {"endpoint": "PJSIP/bench0001", "app": "ccc", "appArgs": "leg"},
                         {"variables": {"CCC_CALL": f"call-{n}"}})
    await client.hangup(channel)
    return 8


def bench_requests(port: int) -> None:
    async def run(concurrency: int) -> float:
        async with AriClient(f"http://127.0.0.1:{port}/ari", "ccc", "secret") as client:
            await asyncio.gather(*(call_requests(client, n) for n in range(20)))  # connections open, warm
            calls = REQUESTS // 8
            best = float("inf")
            for _ in range(3):
                started = time.process_time()
                sent = 0
                for first in range(0, calls, concurrency):
                    sent += sum(await asyncio.gather(*(call_requests(client, n)
                                                       for n in range(first, min(calls, first + concurrency)))))
                best = min(best, (time.process_time() - started) * 1e6 / sent)
            return best

    async def calls() -> float:
        """Python function calls per request (cProfile's count), one call's requests at a time."""
        async with AriClient(f"http://127.0.0.1:{port}/ari", "ccc", "secret") as client:
            await call_requests(client, 0)
            profile = cProfile.Profile()
            profile.enable()
            sent = sum([await call_requests(client, n) for n in range(50)])
            profile.disable()
            return float(pstats.Stats(profile).total_calls) / sent  # type: ignore[attr-defined]

    for concurrency in (1, 10):
        print(f"  AriClient.request, {concurrency:2d} call(s) at a time: {uvloop.run(run(concurrency)):6.1f} µs CPU"
              " per request (the controller's side only)")
    print(f"  function calls per request (cProfile): {uvloop.run(calls()):5.1f}")


def bench_events() -> None:
    messages = [json.dumps(obj) for count, obj in EVENT_MIX for _ in range(count)]
    rounds = max(1, EVENTS // len(messages))
    total = rounds * len(messages)

    def decode(loads: Callable[[str], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(rounds):
                for message in messages:
                    parse_event(loads(message))
        return run

    print(f"  event message sizes: {min(map(len, messages))}-{max(map(len, messages))} bytes")
    json_decode = cpu_us(decode(json.loads), total)
    print(f"  json.loads + parse_event: {json_decode:5.1f} µs per event"
          f" (json.loads alone {cpu_us(decode_only(json.loads, messages, rounds), total):4.1f})")
    try:
        import orjson
    except ImportError:
        print("  (orjson not installed: no comparison)")
        return
    print(f"  orjson.loads + parse_event: {cpu_us(decode(orjson.loads), total):5.1f} µs per event"
          f" (orjson.loads alone {cpu_us(decode_only(orjson.loads, messages, rounds), total):4.1f})")
    profile = cProfile.Profile()
    profile.enable()
    for message in messages:
        parse_event(orjson.loads(message))
    profile.disable()
    print(f"  function calls per event of orjson.loads + parse_event (cProfile):"
          f" {pstats.Stats(profile).total_calls / len(messages):5.1f}")  # type: ignore[attr-defined]


def decode_only(loads: Callable[[str], Any], messages: list[str], rounds: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(rounds):
            for message in messages:
                loads(message)
    return run


class EventSink:
    """What EventStream does with each message's text (decode, parse, lag), counting them until `expected`."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.done = asyncio.get_running_loop().create_future()

    def text(self, message: str | bytes) -> None:
        event = parse_event(json.loads(message))
        _event_lag(event, time.time())
        self.count += 1
        if self.count == self.expected and not self.done.done():
            self.done.set_result(None)


async def stream_ours(port: int, count: int, burst: bool) -> None:
    sink = EventSink(count)
    socket = await websocket.connect("127.0.0.1", port, f"/events?count={count}&burst={int(burst)}", headers={},
                                     timeout=5)
    socket.start(lambda message: sink.text(message.decode()))
    await sink.done
    socket.close()


async def stream_aiohttp(port: int, count: int, burst: bool) -> None:
    import aiohttp

    sink = EventSink(count)
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"ws://127.0.0.1:{port}/events?count={count}&burst={int(burst)}", heartbeat=10.0,
            timeout=aiohttp.ClientWSTimeout(ws_close=2.0), max_msg_size=16 * 1024 * 1024) as ws:
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                sink.text(message.data)
                if sink.count == count:
                    break


async def stream_websockets(port: int, count: int, burst: bool) -> None:
    from websockets.asyncio.client import connect

    sink = EventSink(count)
    async with connect(f"ws://127.0.0.1:{port}/events?count={count}&burst={int(burst)}", ping_interval=10.0,
                       ping_timeout=5.0, compression=None, max_size=16 * 1024 * 1024) as ws:
        async for message in ws:
            sink.text(message)
            if sink.count == count:
                break


def bench_event_stream(port: int) -> None:
    clients: list[tuple[str, Callable[[int, int, bool], Awaitable[None]]]] = [
        ("ours (controller/ari/websocket.py)", stream_ours), ("aiohttp ws_connect(heartbeat=10)", stream_aiohttp)]
    try:
        import websockets
        clients.append((f"websockets {websockets.__version__} (asyncio)", stream_websockets))
    except ImportError:
        print("  (websockets not installed: no comparison)")

    async def run(client: Callable[[int, int, bool], Awaitable[None]], burst: bool) -> float:
        await client(port, 200, burst)  # warm
        return await measure_async(lambda: client(port, STREAMED, burst), STREAMED)

    async def calls(client: Callable[[int, int, bool], Awaitable[None]]) -> float:
        """Function calls per event (cProfile's count, beyond the sink's own): steady where CPU time is not."""
        profile = cProfile.Profile()
        profile.enable()
        await client(port, STREAMED, False)
        profile.disable()
        return float(pstats.Stats(profile).total_calls) / STREAMED - sink_calls  # type: ignore[attr-defined]

    decode = EVENTS // 4
    messages = [json.dumps(obj) for count, obj in EVENT_MIX for _ in range(count)]
    baseline = cpu_us(lambda: [parse_event(json.loads(messages[n % len(messages)])) for n in range(decode)], decode)
    sink_calls = calls_per_sink_text(messages)
    print(f"  µs CPU per event, 4 per ms / all at once, with json.loads + parse_event ({baseline:4.1f} of it);"
          f" function calls per event beside the {sink_calls:.0f} of decoding:")
    for name, client in clients:
        print(f"  {name:40s} {uvloop.run(run(client, False)):5.1f} / {uvloop.run(run(client, True)):5.1f}"
              f"   {uvloop.run(calls(client)):5.1f} calls")


def calls_per_sink_text(messages: list[str]) -> float:
    async def run() -> float:
        sink = EventSink(len(messages))
        profile = cProfile.Profile()
        profile.enable()
        for message in messages:
            sink.text(message)
        profile.disable()
        return float(pstats.Stats(profile).total_calls) / len(messages)  # type: ignore[attr-defined]

    return uvloop.run(run())


def bench_routing() -> None:
    events = [parse_event(obj) for count, obj in EVENT_MIX for _ in range(count)]

    class Owner:
        def __init__(self) -> None:
            self.inbox = Inbox()

        def deliver(self, event: Event) -> None:
            self.inbox.deliver(event)

    async def run(timeout: float | None) -> float:
        owner = Owner()
        dispatcher = Dispatcher(lambda event: None)
        for object_id in ("1764170000.123", "leg-agent-3f2a", "pb-3f2a"):
            dispatcher.claim(object_id, owner)
        rounds = max(1, EVENTS // len(events))

        async def consume() -> None:
            for _ in range(rounds * len(events)):
                await owner.inbox.get(timeout)

        async def one_round() -> None:
            consumer = asyncio.get_running_loop().create_task(consume())
            for _ in range(rounds):
                for event in events:
                    dispatcher.dispatch(event)
                    await asyncio.sleep(0)  # the call's task takes it, as when events come one by one
            await consumer

        return await measure_async(one_round, rounds * len(events))

    print(f"  dispatch + Inbox.get, no timeout: {uvloop.run(run(None)):5.1f} µs per event;"
          f" with a timeout (a prompt's, a ring's): {uvloop.run(run(30.0)):5.1f}")


def bench_session() -> None:
    """The call's side of routing: `Dispatcher.dispatch` into a `CallSession` and its task's `wait_for` taking
    each event (with `_observe`'s book-keeping), as the IVR's and the queue's waits do."""
    from controller.plugins.calls.session import CallSession

    events = [parse_event(obj) for count, obj in EVENT_MIX for _ in range(count)]

    class Records:
        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    async def run(timeout: float | None, profiled: bool = False) -> float:
        dispatcher = Dispatcher(lambda event: None)
        caller = parse_event(EVENT_MIX[0][1]).channel  # type: ignore[attr-defined]
        session = CallSession(call_id="C1", channel=caller, did="4008005100", direction="inbound",
                              ari=None, dispatcher=dispatcher, records=Records(),  # type: ignore[arg-type]
                              app_name="ccc", fallback_context="fallback")
        for object_id in ("leg-agent-3f2a", "pb-3f2a"):
            dispatcher.claim(object_id, session)
        taken = [event for event in events if event.type not in ("ChannelHangupRequest", "StasisEnd",
                                                                  "ChannelDestroyed")]  # the caller's end: last
        rounds = max(1, EVENTS // len(taken))

        async def consume() -> None:
            for _ in range(rounds * len(taken)):
                await session.wait_for(lambda event: True, timeout)

        async def one_round() -> None:
            consumer = asyncio.get_running_loop().create_task(consume())
            for _ in range(rounds):
                for event in taken:
                    dispatcher.dispatch(event)
                    await asyncio.sleep(0)
            await consumer

        if not profiled:
            return await measure_async(one_round, rounds * len(taken))
        profile = cProfile.Profile()
        profile.enable()
        await one_round()
        profile.disable()
        sleeps = rounds * len(taken) * 2  # the bench's own asyncio.sleep(0) and its `__sleep0`
        return (float(pstats.Stats(profile).total_calls) - sleeps) / (rounds * len(taken))  # type: ignore[attr-defined]

    print(f"  dispatch + CallSession.wait_for, no timeout: {uvloop.run(run(None)):5.1f} µs per event;"
          f" with a timeout: {uvloop.run(run(30.0)):5.1f}; function calls per event (cProfile):"
          f" {uvloop.run(run(30.0, profiled=True)):5.1f}")


async def measure_async(run: Callable[[], Awaitable[None]], count: int) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        await run()
        best = min(best, time.process_time() - started)
    return best * 1e6 / count


def bench_prompts() -> None:
    class NoEngine:
        name = "bench"

        async def render(self, text: str, language: str, out_path: Path) -> None:
            out_path.write_bytes(b"RIFF")

    async def run() -> float:
        with tempfile.TemporaryDirectory() as folder:
            renderer = PromptRenderer(Path(folder), NoEngine())
            prompt = Prompt("tts", "您好，欢迎致电", "zh")
            await renderer.media_for(prompt)
            assert (Path(folder) / "ccc/tts" / f"{prompt_key(prompt.value, 'zh', 'bench')}.wav").exists()

            async def many() -> None:
                for _ in range(EVENTS):
                    await renderer.media_for(prompt)

            return await measure_async(many, EVENTS)

    print(f"  PromptRenderer.media_for, a text already rendered: {uvloop.run(run()):5.1f} µs per prompt")


def main() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        print(f"ARI requests against a stand-in HTTP server ({REQUESTS} per round, best of 3):")
        bench_requests(port)
    finally:
        server.kill()
        server.wait()
    messages = "".join(json.dumps(obj) + "\n" for count, obj in EVENT_MIX for _ in range(count))
    ws_server = subprocess.Popen([sys.executable, "-c", WS_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
    try:
        assert ws_server.stdin is not None and ws_server.stdout is not None
        ws_server.stdin.write(messages)
        ws_server.stdin.close()
        port = int(ws_server.stdout.readline())
        print(f"ARI event stream from a stand-in WebSocket server ({STREAMED} events per round, best of 3):")
        bench_event_stream(port)
    finally:
        ws_server.kill()
        ws_server.wait()
    print("ARI events (the full-path call's mix):")
    bench_events()
    bench_routing()
    bench_session()
    print("IVR prompts:")
    bench_prompts()


if __name__ == "__main__":
    main()
