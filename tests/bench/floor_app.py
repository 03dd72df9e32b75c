"""The floor of `bench_fullpath`: the same call handled by a bare ARI application in Python, nothing else.

It makes the ARI requests the controller makes for the bench's call, through the controller's own ARI client,
event stream and event loop (uvloop), and keeps no record, publishes no CTI event, saves no state, resumes nothing,
checks no configuration: a caller's prompt (`silence/1`), key 1, the beep, two digits, then the queue: the first
free agent of the caller's queue is dialled first and the caller waits in the queue's holding bridge (with their
own music on hold); when the agent answers, both go into a pooled mixing bridge in one request; when the agent
hangs up, the caller is hung up and the agent is free again (wrap-up 0); a caller who finds no free agent waits for
the next. What the controller spends above this, on the same call in the same run, is what the call center adds
(records, CTI, the ACD's rules, the live-call picture for resume) plus its own overhead; what this spends is what
any Python ARI application pays for the call (README "Benchmarks": `CCC_BENCH_FLOOR`).

Run by `bench_fullpath` as `python -m tests.bench.floor_app AGENTS QUEUES`; prints "ready" once connected. Not a
call-center: no timeouts, no retries, a failed originate frees the agent and nothing more.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import uvloop

from controller.ari.client import AriClient, new_id
from controller.ari.errors import AriNotFound
from controller.ari.events import EventStream
from controller.ari.models import (
    ChannelDtmfReceived,
    Dial,
    Event,
    PlaybackFinished,
    StasisEnd,
    StasisStart,
)
from tests.e2e.conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import sandbox  # (the sandbox's ARI address and credentials)

APP = "ccc"  # the sandbox's dialplan sends the bench's calls to Stasis(ccc)
MENU_PROMPT, ENTRY_PROMPT, ENTRY_DIGITS = "sound:silence/1", "sound:beep", 2
#: Dial's final statuses other than ANSWER (RINGING and PROGRESS come before the answer)
DIAL_FAILED = frozenset({"BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "DONTCALL", "TORTURE",
                         "INVALIDARGS"})


@dataclass
class Caller:
    channel: str
    queue: int
    stage: str = "menu"  # menu -> entry -> queued
    digits: str = ""
    playback: str | None = None  # the prompt playing, if any


@dataclass
class Queue:
    holding: str
    free: deque[str] = field(default_factory=deque)  # agents' endpoints, the longest idle first
    waiting: deque[str] = field(default_factory=deque)  # callers' channels, in order


class FloorApp:
    def __init__(self, client: AriClient, agents: int, queues: int) -> None:
        self.ari = client
        self.queues = [Queue(holding=f"floor-hold-{q}") for q in range(queues)]
        for n in range(agents):
            self.queues[n % queues].free.append(f"bench{n:04d}")
        self.callers: dict[str, Caller] = {}
        self.agents: dict[str, tuple[str, str, int]] = {}  # agent channel -> (endpoint, caller channel, queue)
        self.talks: dict[str, str] = {}  # agent channel -> the mixing bridge it talks in
        self.idle_bridges: list[str] = []
        self.tasks: set[asyncio.Future[Any]] = set()


    def spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_event(self, event: Event) -> None:
        kind = event.__class__
        if kind is StasisStart:
            self._started(event)  # type: ignore[arg-type]
        elif kind is ChannelDtmfReceived:
            self._digit(event)  # type: ignore[arg-type]
        elif kind is PlaybackFinished:
            caller = self.callers.get(event.playback.target_id)  # type: ignore[attr-defined]
            if caller is not None and caller.playback == event.playback.id:  # type: ignore[attr-defined]
                caller.playback = None
        elif kind is StasisEnd:
            self._ended(event.channel.id)  # type: ignore[attr-defined]
        elif kind is Dial:
            self._dialled(event)  # type: ignore[arg-type]

    def _started(self, event: StasisStart) -> None:
        channel = event.channel
        if event.args and event.args[0] == "agent":
            self.spawn(self._connect(channel.id, event.args[1]))
            return
        caller = Caller(channel.id, int(channel.dialplan_exten[-2:]) % len(self.queues))
        self.callers[channel.id] = caller
        self._play(caller, MENU_PROMPT)

    def _play(self, caller: Caller, media: str) -> None:
        caller.playback = new_id("pb")
        self.spawn(self.ari.play(caller.channel, media, caller.playback))

    def _digit(self, event: ChannelDtmfReceived) -> None:
        caller = self.callers.get(event.channel.id)
        if caller is None:
            return
        if caller.playback is not None:  # a key stops the prompt (barge-in)
            self.spawn(self.ari.stop_playback(caller.playback))
            caller.playback = None
        if caller.stage == "menu" and event.digit == "1":
            caller.stage = "entry"
            self._play(caller, ENTRY_PROMPT)
        elif caller.stage == "entry":
            caller.digits += event.digit
            if len(caller.digits) == ENTRY_DIGITS:
                caller.stage = "queued"
                self.spawn(self._enqueue(caller))

    async def _enqueue(self, caller: Caller) -> None:
        queue = self.queues[caller.queue]
        if queue.free:
            await self._ring(queue.free.popleft(), caller)
        else:
            queue.waiting.append(caller.channel)
        try:
            await self.ari.add_to_bridge(queue.holding, caller.channel, role="holding_participant")
        except AriNotFound:  # not made yet, or the bench hung everything up between its rates (bridges too)
            await self.ari.create_bridge(queue.holding, "holding", name=queue.holding)
            await self.ari.add_to_bridge(queue.holding, caller.channel, role="holding_participant")

    async def _ring(self, endpoint: str, caller: Caller) -> None:
        agent = new_id("agent")
        self.agents[agent] = (endpoint, caller.channel, caller.queue)
        await self.ari.originate(agent, f"PJSIP/{endpoint}", app=APP, app_args=f"agent,{caller.channel}",
                                 timeout=15)

    async def _connect(self, agent: str, caller: str) -> None:
        bridge = self.idle_bridges.pop() if self.idle_bridges else None
        if bridge is None:
            bridge = new_id("talk")
            await self.ari.create_bridge(bridge, "mixing")
        self.talks[agent] = bridge
        try:
            await self.ari.add_to_bridge(bridge, [caller, agent])
        except AriNotFound:  # a pooled bridge the bench destroyed between its rates
            await self.ari.create_bridge(bridge, "mixing")
            await self.ari.add_to_bridge(bridge, [caller, agent])

    def _dialled(self, event: Dial) -> None:
        if event.dialstatus in DIAL_FAILED and event.peer.id in self.agents:
            self._agent_free(event.peer.id)

    def _ended(self, channel: str) -> None:
        if channel in self.agents:
            caller = self.agents[channel][1]
            self._agent_free(channel)
            if caller in self.callers:
                self.spawn(self.ari.hangup(caller))
        else:
            self.callers.pop(channel, None)

    def _agent_free(self, agent: str) -> None:
        endpoint, _caller, queue_index = self.agents.pop(agent)
        bridge = self.talks.pop(agent, None)
        if bridge is not None:
            self.idle_bridges.append(bridge)
        queue = self.queues[queue_index]
        while queue.waiting:
            caller = self.callers.get(queue.waiting.popleft())
            if caller is not None:
                self.spawn(self._ring(endpoint, caller))
                return
        queue.free.append(endpoint)


async def main(agents: int, queues: int) -> None:
    async with AriClient(sandbox.ARI_URL, sandbox.ARI_USER, sandbox.ARI_PASSWORD) as client:
        app = FloorApp(client, agents, queues)
        ready = asyncio.Event()

        async def connected() -> None:
            ready.set()

        stream = EventStream(client, APP, on_event=app.on_event, on_connected=connected)
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(stream.run())
            await ready.wait()
            print("ready", flush=True)


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
