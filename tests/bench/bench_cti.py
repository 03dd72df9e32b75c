"""The CTI bus's CPU per event, publish → committed → delivered to every WebSocket client (README "Benchmarks").

The bus, its SQLite store (a temporary file) and the /ws endpoint run here on uvloop, as in the controller; the
clients (aiohttp) run in a child process, so this process's CPU
(`time.process_time`: the event loop and the store's thread) is the controller's side only. A "call" is the 15
events of a full-path call (its `call.ringing` carries a screen pop with the caller's last six calls). Two paces:
- spread: one event every 4 ms (what 10-20 calls/s look like: each event is committed and sent on its own);
- burst: a call's 15 events at once, every 40 ms (what a busy controller commits in one transaction).
Each is run with 0, 1, 10 and 100 clients (the cost of a client is the difference with 0 clients), then with one
webhook (a receiver in the child process answering 204) and no client.

    .venv/bin/python -m tests.bench bench_cti          (CCC_BENCH_CTI_CALLS: calls per run, default 200)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import uvloop
from aiohttp import web

from controller.config import TokenSettings
from controller.http.server import build_app
from controller.plugins.cti import resources
from controller.plugins.cti.notifier import Webhook, WebhookNotifier
from controller.plugins.cti.services import EventBus, EventFilter
from controller.store.db import Store

CALLS = int(os.environ.get("CCC_BENCH_CTI_CALLS", "200"))
CLIENTS = tuple(int(n) for n in os.environ.get("CCC_BENCH_CTI_CLIENTS", "0,1,10,100").split(","))
WEBHOOK = os.environ.get("CCC_BENCH_CTI_WEBHOOK", "1") == "1"
PACES = os.environ.get("CCC_BENCH_CTI_PACES", "spread,burst").split(",")
TOKEN = "bench-token"
HISTORY = [{"call_id": f"before-{n}", "direction": "inbound", "started_at": 1.7e9 + n, "answered_at": 1.7e9 + n + 9,
            "ended_at": 1.7e9 + n + 60, "end_reason": "agent_hangup", "flow": "main", "agents": ["5001"],
            "queues": ["sales"], "disposition": "sale", "notes": "call back"} for n in range(6)]


def publish_event(bus: EventBus, call: int, index: int) -> None:
    """The `index`-th of the 15 events of call number `call`."""
    call_id, agent = f"call-{call}", f"{5000 + call % 100}"
    if index < 6:
        bus.publish("ivr.node_entered", call_id=call_id, flow="main", node=f"node{index}", type="menu")
    elif index == 6:
        bus.publish("call.queued", call_id=call_id, queue="sales", priority=0, skills={}, position=1)
    elif index == 7:
        bus.publish("agent.state_changed", agent_id=agent, state="ringing", previous="ready", reason=None)
    elif index == 8:
        bus.publish("call.ringing", call_id=call_id, agent_id=agent, queue="sales", endpoint=f"PJSIP/{agent}",
                    screen_pop={"caller": "13812348000", "did": "4008005300", "queue": "sales", "history": HISTORY})
    elif index == 9:
        bus.publish("call.answered", call_id=call_id, agent_id=agent, queue="sales", wait=2.5)
    elif index == 10:
        bus.publish("agent.state_changed", agent_id=agent, state="talking", previous="ringing", reason=None)
    elif index == 11:
        bus.publish("call.completed", call_id=call_id, agent_id=agent, queue="sales", ended_by="agent")
    elif index == 12:
        bus.publish("agent.state_changed", agent_id=agent, state="acw", previous="talking", reason=None)
    elif index == 13:
        bus.publish("call.ended", call_id=call_id, reason="agent_hangup", cause=16, cause_txt=None, duration=12.0)
    else:
        bus.publish("agent.state_changed", agent_id=agent, state="ready", previous="acw", reason=None)


async def run_clients(url: str, clients: int, expect: int) -> None:
    """The child process: `clients` WebSocket clients reading `expect` events each; prints "ready", then "done"."""
    async with aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(url) for _ in range(clients)]
        for ws in sockets:
            await ws.receive()  # the hello
        print("ready", flush=True)

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            seen = 0
            while seen < expect:
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise RuntimeError(f"the stream ended after {seen} events: {message.type}")
                seen += 1

        await asyncio.gather(*(read(ws) for ws in sockets))
        print("done", flush=True)
        for ws in sockets:
            await ws.close()


async def run_receiver(expect: int) -> None:
    """The child process as a webhook receiver: prints "ready <port>", then "done" after `expect` POSTs."""
    received = 0
    done = asyncio.Event()

    async def take(request: web.Request) -> web.Response:
        nonlocal received
        await request.read()
        received += 1
        if received >= expect:
            done.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"ready {runner.addresses[0][1]}", flush=True)
    await done.wait()
    print("done", flush=True)
    await runner.cleanup()


class Measured(NamedTuple):
    cpu_us: float  # per event: the process (event loop and store thread)
    loop_us: float  # per event: the event loop's thread alone
    store_calls: float  # per event: jobs run on the store's thread (commits, reads)
    seconds: float


async def measure(folder: Path, clients: int, burst: bool, webhook: bool = False) -> Measured:
    """Per event, publish to delivered to every client (or, `webhook`, POSTed to one webhook)."""
    store = Store(folder / f"bench-{clients}-{burst}-{webhook}.sqlite3")
    await store.open()
    store_calls = 0
    run_on_store_thread = store._run

    async def counted(func: Any, *args: Any) -> Any:
        nonlocal store_calls
        store_calls += 1
        return await run_on_store_thread(func, *args)

    store._run = counted  # type: ignore[method-assign]
    bus = EventBus(store, time.time)
    await bus.open()
    http = aiohttp.ClientSession()
    events = CALLS * 15
    child = None
    hooks = []
    if webhook:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.bench.bench_cti", "--receiver", "1", "--expect", str(events),
            stdout=asyncio.subprocess.PIPE)
        assert child.stdout is not None
        ready = (await child.stdout.readline()).split()
        hooks = [Webhook("bench", f"http://127.0.0.1:{int(ready[1])}/hook", "secret", EventFilter())]
    notifier = WebhookNotifier(hooks, bus, store, lambda: http)
    tasks = [asyncio.create_task(store.run_writer()), asyncio.create_task(bus.run()),
             asyncio.create_task(notifier.run())]
    app = build_app([TokenSettings("bench", TOKEN, "integration")], resources.routes(bus, notifier))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        if clients:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.bench.bench_cti", "--clients", str(clients), "--expect", str(events),
                "--url", f"ws://127.0.0.1:{port}/ws?token={TOKEN}", stdout=asyncio.subprocess.PIPE)
            assert child.stdout is not None
            assert (await child.stdout.readline()).strip() == b"ready"
        await asyncio.sleep(0.3)
        cpu, loop_cpu, wall, calls_before = time.process_time(), time.thread_time(), time.perf_counter(), store_calls
        for call in range(CALLS):
            if burst:
                for index in range(15):
                    publish_event(bus, call, index)
                await asyncio.sleep(0.04)
            else:
                for index in range(15):
                    publish_event(bus, call, index)
                    await asyncio.sleep(0.004)
        while bus.unpersisted:
            await asyncio.sleep(0.001)
        if child is not None:
            assert child.stdout is not None
            assert (await asyncio.wait_for(child.stdout.readline(), 60)).strip() == b"done"
        measured = Measured((time.process_time() - cpu) * 1e6 / events, (time.thread_time() - loop_cpu) * 1e6 / events,
                            (store_calls - calls_before) / events, time.perf_counter() - wall)
    finally:
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                child.kill()
            await child.wait()
        notifier.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
        await http.close()
        await store.close()
    return measured


async def run() -> None:
    print(f"{CALLS} calls of 15 events per run; CPU of the bus, store and /ws (clients in a child process)")
    with tempfile.TemporaryDirectory(prefix="ccc-bench-cti-") as folder:
        for burst in [pace == "burst" for pace in PACES]:
            pace = "burst (15 at once)" if burst else "spread (1 per 4 ms)"
            alone = None
            for clients in CLIENTS:
                got = await measure(Path(folder), clients, burst)
                alone = got if clients == 0 else alone
                per_client = f", {(got.cpu_us - alone.cpu_us) / clients:5.1f} per client" if alone and clients else ""
                print(f"{pace:<20} {clients:>2} clients: {got.cpu_us:6.1f} µs CPU per event ({got.loop_us:6.1f} on the"
                      f" event loop){per_client}; {got.store_calls:.2f} store-thread jobs per event;"
                      f" {got.seconds:.1f} s")
            if WEBHOOK:
                got = await measure(Path(folder), 0, burst, webhook=True)
                print(f"{pace:<20} 1 webhook:  {got.cpu_us:6.1f} µs CPU per event ({got.loop_us:6.1f} on the"
                      f" event loop); {got.store_calls:.2f} store-thread jobs per event; {got.seconds:.1f} s")


def main() -> None:
    uvloop.run(run())


def client_main(argv: list[str]) -> None:
    options: dict[str, Any] = dict(zip(argv[::2], argv[1::2], strict=True))
    if "--receiver" in options:
        uvloop.run(run_receiver(int(options["--expect"])))
    else:
        uvloop.run(run_clients(options["--url"], int(options["--clients"]), int(options["--expect"])))


if __name__ == "__main__":
    if "--clients" in sys.argv or "--receiver" in sys.argv:
        client_main(sys.argv[1:])
    else:
        main()
