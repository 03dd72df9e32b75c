"""The controller's own CPU per ARI request and per ARI event, without Asterisk (a few seconds).

- requests: `AriClient` against a stand-in for Asterisk's HTTP server in a child process (keep-alive,
  Asterisk's response headers, a playback's JSON or 204), the full-path call's mix of requests (a play with
  its JSON answer, bodiless 204s, an originate with a JSON body), 1 and 10 at a time; CPU of this process only
  (`time.process_time`), so the server's work is not counted;
- events: one WebSocket message's text → `json.loads` → `parse_event`, for the event types of the full-path
  call (with Asterisk 22's fields), and the same decode with orjson when it is installed;
- routing: `Dispatcher.dispatch` into a call's `Inbox` and the call's task taking it out (`Inbox.get` with
  and without a timeout);
- prompts: `PromptRenderer.media_for` of a text prompt already rendered (what each prompt of each call asks).

    .venv/bin/python -m tests.bench bench_ari
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from controller.ari.client import AriClient
from controller.ari.dispatcher import Dispatcher, Inbox
from controller.ari.models import Event, parse_event
from controller.ivr.port import Prompt
from controller.media.prompts import PromptRenderer, prompt_key

REQUESTS = int(os.environ.get("CCC_BENCH_ARI_REQUESTS", "3000"))
EVENTS = int(os.environ.get("CCC_BENCH_ARI_EVENTS", "20000"))

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

    for concurrency in (1, 10):
        print(f"  AriClient.request, {concurrency:2d} call(s) at a time: {uvloop.run(run(concurrency)):6.1f} µs CPU"
              " per request (the controller's side only)")


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


def decode_only(loads: Callable[[str], Any], messages: list[str], rounds: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(rounds):
            for message in messages:
                loads(message)
    return run


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
    print("ARI events (the full-path call's mix):")
    bench_events()
    bench_routing()
    print("IVR prompts:")
    bench_prompts()


if __name__ == "__main__":
    main()
