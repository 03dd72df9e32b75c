"""The ACD service: the routing engine (pure, `controller.acd`) wired to calls, records and CTI.

Split by capability, as wazo-calld does: this module is the small shared core (the engine, agents'
commands, applying decisions, the calls in the ACD, the screen pop); `queueing` runs a caller's
visit to a queue (enqueue, offers, overflow), `call_control` a call connected to an agent (hold,
transfer, consult, conference, monitor, standard prompts, hang-up), `agent_outbound` the agents'
own calls.

- Agent commands (login, ready, pause, logout, end ACW) come from the HTTP API and the CLI.
- `enqueue()` is what the IVR's queue node calls: the caller waits (see `stasis.QueueCall`) until
  an agent answers and hangs up again, the caller leaves, or the queue overflows.
- The engine's decisions are applied in `apply()`: state changes are recorded and published, and
  decisions about a call go to that call's task. A timer task calls `engine.tick()` when the
  engine has something due (ring timeouts, end of wrap-up, announcements, maximum wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from controller.acd.alerts import AGENT_LIMITS, StandardsMonitor
from controller.acd.engine import AcdEngine, AcdError, OnCall, waiting_refusal
from controller.acd.model import (
    AgentSettings,
    AgentStateChanged,
    Announce,
    CallLeft,
    CancelOffer,
    Decision,
    EscalationStep,
    Offer,
    Overflow,
    QueueSettings,
)
from controller.ari.client import AriClient
from controller.clock import Clock
from controller.config import DEFAULT_NODE, AcdAgentConfig, AcdQueueConfig, Config
from controller.ivr.flow import screen_pop_data
from controller.ivr.port import Prompt, QueueOutcome, QueueRequest
from controller.live_config import LiveConfig
from controller.logs import mask_number
from controller.lookup import caller_region
from controller.media.say import say_digits
from controller.media.tts import TtsError
from controller.plugins.acd.agent_outbound import AgentOutbound
from controller.plugins.acd.call_control import AcdCallControl
from controller.plugins.acd.callbacks import CallbackService
from controller.plugins.acd.holding import QueueHolding
from controller.plugins.acd.queue_resume import QueueResume
from controller.plugins.acd.queueing import AcdQueueing
from controller.plugins.acd.stasis import QueueCall
from controller.plugins.acd.state_persistor import AcdRecords
from controller.plugins.calls.bridge_pool import TalkBridgePool
from controller.plugins.calls.live_state import LiveCallState
from controller.plugins.calls.services import stored_node
from controller.plugins.calls.session import CallSession
from controller.plugins.recordings.services import RecordingService
from controller.reports.kpis import Standards

log = logging.getLogger("controller.acd")

MediaFor = Callable[[Prompt], Awaitable[str]]
Originate = Callable[..., Awaitable[str]]  # CallsService.originate
Publish = Callable[..., Any]
AfterTalk = Callable[[CallSession, QueueOutcome, QueueRequest], Awaitable[None]]

#: How often the service standards (hold, ACW, talk, wait, service level) are checked.
STANDARDS_CHECK_SECONDS = 1.0
#: An agent removed or disabled in one of these states is finishing a call: their requests still work.
FINISHING_STATES = frozenset({"ringing", "talking", "on_hold", "acw"})


def start_of_day(now: float) -> float:
    """Local midnight before `now` (epoch seconds)."""
    return datetime.datetime.fromtimestamp(now).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_day(now: float) -> float:
    """The local midnight after `now` (epoch seconds)."""
    today = datetime.datetime.fromtimestamp(now).date()
    return datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time()).timestamp()


def queue_settings(queue: AcdQueueConfig) -> QueueSettings:
    return QueueSettings(
        name=queue.name, strategy=queue.strategy, skills=dict(queue.skills), wrapup_seconds=queue.wrapup_seconds,
        ring_timeout=queue.ring_timeout, max_wait=queue.max_wait, overflow=queue.overflow,
        announce_interval=queue.announce_interval, service_level_seconds=queue.service_level_seconds,
        no_agents=queue.no_agents, priority_aging_seconds=queue.priority_aging_seconds,
        escalation=tuple(EscalationStep(step.after, step.min_level, step.max_penalty, step.overflow)
                         for step in queue.escalation),
        fewest_calls_window=queue.fewest_calls_window, estimate_window=queue.estimate_window)


def agent_settings(agent: AcdAgentConfig) -> AgentSettings:
    return AgentSettings(id=agent.id, name=agent.name, number=agent.number, endpoint=agent.endpoint,
                         skills=dict(agent.skills), queues=dict(agent.queues), enabled=agent.enabled)


class _ByName:
    """The live configuration's queues and agents by name/id, rebuilt when the configuration is replaced."""

    def __init__(self, live: LiveConfig) -> None:
        self._live = live
        self._seen: Config | None = None
        self.queues: dict[str, AcdQueueConfig] = {}
        self.agents: dict[str, AcdAgentConfig] = {}

    def current(self) -> _ByName:
        config = self._live.current
        if config is not self._seen:
            self.queues = {queue.name: queue for queue in config.acd.queues}
            self.agents = {agent.id: agent for agent in config.acd.agents}
            self._seen = config
        return self


class AcdService:
    def __init__(self, *, config: Config | LiveConfig, clock: Clock, records: AcdRecords, publish: Publish,
                 media_for: MediaFor, originate: Originate | None = None,
                 recordings: RecordingService | None = None) -> None:
        # Queues, agents, not-ready reasons and the acd settings are live (README "Administration (live
        # configuration)"): read from `live_config.current` when deciding, never copied at start.
        self.live_config = config if isinstance(config, LiveConfig) else LiveConfig(config)
        self.live_config.subscribe("acd", self.configuration_changed)
        self._by_name = _ByName(self.live_config)
        config = self.live_config.current
        self.clock = clock
        self.records = records
        self.publish = publish
        self.media_for = media_for
        self.originate = originate
        self.recordings = recordings
        self.engine = AcdEngine([queue_settings(q) for q in config.acd.queues],
                                [agent_settings(a) for a in config.acd.agents], clock,
                                not_ready_reasons=tuple(config.acd.not_ready_reasons))
        self.monitor = StandardsMonitor(config.standards)
        self.calls: dict[str, QueueCall] = {}
        self._overflow_targets: dict[str, str | None] = {}
        self._overflow_reasons: dict[str, str] = {}  # max_wait | no_agents, for call.overflowed
        self.answering_channel: dict[str, str] = {}  # call id -> the agent leg answering it, for call.answered
        self._replan = asyncio.Event()
        # The engine deadline the timer task waits for (inf: none): a change wakes it only when due sooner.
        self._timer_at = math.inf
        #: Called with the agent id when a removed or disabled agent is logged out (their call finished).
        self.refused_agent_gone_hooks: list[Callable[[str], None]] = []
        self.history_failures = 0  # caller-history reads that failed (the calls were queued without it)
        # The queues' shared holding bridges (one per queue and node), with each queue's music on hold.
        self.holding = QueueHolding(self.moh_class_of, lambda name: name in self.queue_configs)
        # Where connected calls take their talk bridges from (the calls plugin's pool; None: one created per call).
        self.talk_bridges: TalkBridgePool | None = None
        self.outbound = AgentOutbound(self)
        self.queueing = AcdQueueing(self)
        self.queue_resume = QueueResume(self)  # waiting callers and rings taken over after a restart
        self.call_control = AcdCallControl(self)
        # Set by the application: the live-call picture (the capabilities persist their parts in it) and ARI
        # (to clean up what is left of a call that ended while no process was there).
        self.live: LiveCallState | None = None
        self.ari: AriClient | None = None
        # Several Asterisk servers: the ARI client of a node by name (set by the application).
        self.node_client: Callable[[str], AriClient | None] = lambda _node: self.ari
        # What a resumed call does when its talk is over (the caller still here): the IVR may go on with the
        # flow; by default a transfer to a queue is served, anything else ends the call (see below).
        self.after_resumed_talk: AfterTalk = self._end_after_resumed_talk
        self._restored_on_calls: dict[str, str] = {}  # agent id -> the call they were restored talking on
        self._restored_call_nodes: dict[str, str] = {}  # call id -> its node (several Asterisk servers)
        # Whether a node's calls were reconciled since it connected (set by the application; one node: yes).
        self.node_readopted: Callable[[str], bool] = lambda _node: True
        # The node and endpoint of an agent's phone (`b/8002` -> ("b", "8002")); one node: every phone is on it.
        self.phone_at: Callable[[str], tuple[str, str]] = lambda endpoint: (DEFAULT_NODE, endpoint)
        self._background: set[asyncio.Task[None]] = set()  # tasks kept until done (prompts, holding bridges)
        self.callbacks: CallbackService | None = None  # set by CallbackService (README "Callbacks")

    @property
    def config(self) -> Config:
        """The configuration as it is now (managed sections live)."""
        return self.live_config.current

    @property
    def queue_configs(self) -> dict[str, AcdQueueConfig]:
        """The queues as configured now, by name."""
        return self._by_name.current().queues

    def moh_class_of(self, queue: str, config: Config | None = None) -> str:
        """The music-on-hold class a queue's callers hear (the queue's own, else `asterisk.moh_class`)."""
        config = config or self.config
        own = next((q.moh_class for q in config.acd.queues if q.name == queue), "")
        return own or config.asterisk.moh_class

    @property
    def agent_configs(self) -> dict[str, AcdAgentConfig]:
        """The agents as configured now, by id (a removed agent finishing a call is only in the engine)."""
        return self._by_name.current().agents

    # -- live configuration ---------------------------------------------------------------------------

    def configuration_changed(self, old: Config, new: Config) -> None:
        """Turn the difference between two configurations into engine commands: queues added or changed
        first, then agents added, changed or removed, then queues removed (the admin service's checks
        made sure nobody waits in them and no agent names them). Live calls are never disturbed: see
        `AcdEngine.upsert_agent`, `remove_agent`, `upsert_queue`."""
        before, after = old.acd, new.acd
        old_queues = {queue.name: queue for queue in before.queues}
        new_queues = {queue.name: queue for queue in after.queues}
        old_agents = {agent.id: agent for agent in before.agents}
        new_agents = {agent.id: agent for agent in after.agents}
        decisions: list[Decision] = []
        engine = self.engine
        changes: list[tuple[str, Callable[[], list[Decision]]]] = [
            *((f"queue {name}", functools.partial(engine.upsert_queue, queue_settings(queue)))
              for name, queue in new_queues.items() if old_queues.get(name) != queue),
            *((f"agent {agent_id}", functools.partial(engine.upsert_agent, agent_settings(agent)))
              for agent_id, agent in new_agents.items() if old_agents.get(agent_id) != agent),
            *((f"agent {agent_id}", functools.partial(engine.remove_agent, agent_id))
              for agent_id in old_agents.keys() - new_agents.keys()),
            *((f"queue {name}", functools.partial(engine.remove_queue, name))
              for name in old_queues.keys() - new_queues.keys()),
        ]
        for what, change in changes:
            try:
                decisions.extend(change())
            except AcdError as exc:  # the admin service's checks should have refused this change
                log.error("ACD: the configuration change of %s was not applied: %s", what, exc)
        if before.not_ready_reasons != after.not_ready_reasons:
            self.engine.set_not_ready_reasons(after.not_ready_reasons)
        for waiting in self.calls.values():  # announcements, recording policy, ring timeout of transfers
            if waiting.queue is not None:  # (an outbound call has none)
                waiting.queue = new_queues.get(waiting.queue.name, waiting.queue)
        self.apply(decisions)
        self._follow_holding_bridges(old, new)
        changed = [agent for agent_id, agent in new_agents.items() if old_agents.get(agent_id) != agent
                   or before.center_name != after.center_name]
        if changed:
            self._in_background(self.warm_prompts(changed))

    def _follow_holding_bridges(self, old: Config, new: Config) -> None:
        """The queues' holding bridges play a changed music-on-hold class; a removed queue's idle one goes."""
        removed = {queue.name for queue in old.acd.queues} - {queue.name for queue in new.acd.queues}
        changes = [self.holding.queue_removed(name) for name in removed]
        changes += [self.holding.music_changed(queue.name) for queue in new.acd.queues
                    if self.moh_class_of(queue.name, old) != self.moh_class_of(queue.name, new)]
        for change in changes:
            self._in_background(change)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def queue_removal_refusal(self, old: Config, new: Config) -> str | None:
        """The admin service's guard (409): a queue with callers waiting (or ringing an agent) cannot be
        removed; None when the change removes no such queue."""
        removed = {queue.name for queue in old.acd.queues} - {queue.name for queue in new.acd.queues}
        for name in sorted(removed):
            if self.engine.has_queue(name) and (waiting := self.engine.queue_stats(name).waiting):
                return waiting_refusal(name, waiting)
        return None

    @staticmethod
    def agents_refused_now(old: Config, new: Config) -> list[str]:
        """The agents a change removed or disabled (their users and tokens are refused from now on)."""
        before = {agent.id: agent for agent in old.acd.agents if agent.enabled}
        after = {agent.id: agent for agent in new.acd.agents if agent.enabled}
        return sorted(before.keys() - after.keys())

    def agent_refusal(self, agent_id: str) -> str | None:
        """Why an agent's user or token may not log in (None: it may): removed or disabled."""
        agent = self.agent_configs.get(agent_id)
        if agent is None:
            return f"agent {agent_id} was removed from the configuration: ask a supervisor"
        if not agent.enabled:
            return f"agent {agent_id} is disabled: ask a supervisor"
        return None

    def agent_request_refusal(self, agent_id: str) -> str | None:
        """Why an agent's user or token may not make a request: as `agent_refusal`, except while a removed or
        disabled agent is still finishing their call (ringing, talking, on hold or in its ACW), so they can
        hold, transfer, set the disposition and end the ACW from the toolbar."""
        if self.engine.has_agent(agent_id) and self.engine.agent(agent_id).state in FINISHING_STATES:
            return None
        return self.agent_refusal(agent_id)

    # -- lifecycle ----------------------------------------------------------------------------------

    async def restore(self) -> None:
        """Bring agents back as they were before a restart (their saved rows are committed with every store
        batch that follows a change); an agent on a call the live-call picture says is connected stays talking on
        it (the call is resumed)."""
        for queue, left in (await self.records.left_since(start_of_day(self.clock.now()))).items():
            self.engine.count_earlier(queue, left)  # the live counters cover the day, not this process
        snapshot = await self.records.load_snapshot()
        if snapshot:
            on_calls = await self._agents_on_calls()
            self.apply(self.engine.restore(snapshot, on_calls))
            self._restored_on_calls = {agent_id: on_call.call_id for agent_id, on_call in on_calls.items()}
            log.info("ACD: restored %d agents' states", sum(1 for a in self.engine.agents()
                                                               if a.state != "logged_out"))
        if self.callbacks is not None:
            await self.callbacks.restore()

    async def release_unresumed(self, *_: object) -> None:
        """After the resume (a clean-up hook of the calls plugin): an agent restored on a call that no
        capability took over (it went to the fallback route, or its caller is gone) ends that call: ACW."""
        restored, self._restored_on_calls = self._restored_on_calls, {}
        for agent_id, call_id in restored.items():
            if not self.node_readopted(self._restored_call_nodes.get(call_id, DEFAULT_NODE)):
                self._restored_on_calls[agent_id] = call_id  # its node has not been reconciled yet
                continue
            if call_id not in self.calls and self.engine.agent(agent_id).current_call == call_id:
                log.warning("agent %s: call %s was not resumed; the agent's part of it ends", agent_id, call_id)
                self.records.talk_ended(call_id)
                with contextlib.suppress(AcdError):
                    self.apply(self.engine.call_ended(agent_id))

    async def _agents_on_calls(self) -> dict[str, OnCall]:
        if self.live is None:
            return {}
        on_calls = {}
        for call_id, parts in (await self.live.load_all()).items():
            talk = parts.get("talk")
            if talk and talk.get("agent_id") and isinstance(talk.get("talk_started"), int | float):
                self._restored_call_nodes[call_id] = stored_node(parts)
                on_calls[str(talk["agent_id"])] = OnCall(call_id, talk.get("queue"), float(talk["talk_started"]),
                                                         on_hold=talk.get("held_since") is not None)
        return on_calls

    async def _end_after_resumed_talk(self, session: CallSession, outcome: QueueOutcome,
                                      request: QueueRequest) -> None:
        """A resumed call's talk is over: a transfer to a queue is served there; otherwise the call ends (the
        flow that queued the caller belonged to the previous process)."""
        await self.follow_queue_transfer(session, outcome, request)
        await session.hangup()

    async def follow_queue_transfer(self, session: CallSession, outcome: QueueOutcome, request: QueueRequest) -> None:
        """A talk with no flow to go on with (resumed, outbound) ended in a blind transfer to a queue: the caller
        waits there (with the request's skills, priority and data) until served or gone."""
        target = outcome.overflow_target or ""
        if outcome.result == "transferred" and target.startswith("queue:"):
            await self.enqueue(session, QueueRequest(target.removeprefix("queue:"), request.skills, request.priority,
                                                     request.data))

    async def run(self) -> None:
        """The engine's timer and the service-standards watch, until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._run_timer())
            tasks.create_task(self._watch_standards())
            tasks.create_task(self.warm_prompts())
            tasks.create_task(self._new_day_at_midnight())
            if self.callbacks is not None:
                tasks.create_task(self.callbacks.run())

    async def warm_prompts(self, agents: list[AcdAgentConfig] | None = None) -> None:
        """Render the agents' number announcements (and outbound refusals) ahead: nobody should wait for
        text to speech. `agents`: only theirs (added or changed live)."""
        for agent in self.agent_configs.values() if agents is None else agents:
            for language in ("zh", "en"):
                with contextlib.suppress(Exception):  # rendered again when needed, and a failure logged then
                    await self.media_for(self.agent_number_prompt(agent, language))
        for prompt in self.outbound.prompts() if agents is None else []:
            with contextlib.suppress(Exception):
                await self.media_for(prompt)

    async def _new_day_at_midnight(self) -> None:
        """The live counters cover the day: they start over at local midnight."""
        while True:
            now = self.clock.now()
            await asyncio.sleep(max(1.0, next_day(now) - now))
            self.engine.new_day()

    async def _watch_standards(self) -> None:
        while True:
            await asyncio.sleep(STANDARDS_CHECK_SECONDS)
            self.check_standards()

    @property
    def standards(self) -> Standards:
        """The service standards as administered now: the next check, alert and report use them."""
        return self.config.standards

    @property
    def standard_prompts(self) -> dict[str, str]:
        """Name -> text or sound:NAME, as administered now: the next "play" command uses them."""
        return self.config.acd.standard_prompts

    def no_standard_prompt(self, name: str) -> str:
        return f"no standard prompt {name!r} (configured: {', '.join(self.standard_prompts) or 'none'})"

    def check_standards(self) -> None:
        """Publish an `alert.raised` event for each standard newly broken (see `controller.acd.alerts`)."""
        engine = self.engine
        self.monitor.standards = self.standards  # as administered now
        # Only what a standard can break is read (the agents in a state it limits, the queues with calls), not
        # every agent and queue each second: the check's cost follows the calls, not the center's size.
        for alert in self.monitor.check(self.clock.now(), engine.standings(AGENT_LIMITS), engine.waiting_everywhere(),
                                        engine.queue_names()):
            log.warning("standard broken: %s %s (%s > %s)", alert.kind, alert.subject, alert.value, alert.threshold)
            self.publish("alert.raised", call_id=alert.call_id, agent_id=alert.agent_id, queue=alert.queue,
                         kind=alert.kind, subject=alert.subject, value=alert.value, threshold=alert.threshold)

    async def _run_timer(self) -> None:
        """Call `engine.tick()` whenever the engine has something due."""
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.engine.next_deadline()
            self._replan.clear()
            self._timer_at = math.inf if deadline is None else deadline
            # The deadline sets the same event a replan sets: a timer, not an asyncio.timeout context per wait.
            due = None if deadline is None else loop.call_later(max(0.0, deadline - self.clock.now()),
                                                                self._replan.set)
            try:
                await self._replan.wait()
            finally:
                if due is not None:
                    due.cancel()
            self.apply(self.engine.tick())

    # -- agent commands -------------------------------------------------------------------------------

    def command(self, action: str, agent_id: str, **arguments: Any) -> Any:
        """Run an agent command on the engine (AcdError on bad input: nothing changed)."""
        handlers: dict[str, Callable[..., list[Decision]]] = {
            "login": self.engine.login, "ready": self.engine.ready, "not_ready": self.engine.not_ready,
            "logout": self.engine.logout, "end_acw": self.engine.end_acw,
            "hold": self.engine.hold, "resume": self.engine.resume,
        }
        if action not in handlers:
            raise AcdError(f"unknown agent command {action!r}")
        self.apply(handlers[action](agent_id, **arguments))
        return self.engine.agent(agent_id) if self.engine.has_agent(agent_id) else None  # None: removed, gone now

    # -- decisions ---------------------------------------------------------------------------------

    def apply(self, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, AgentStateChanged):
                self.records.agent_state(decision.agent_id, decision.state, decision.reason, decision.previous,
                                         decision.at)
                self.publish("agent.state_changed", agent_id=decision.agent_id, state=decision.state,
                             previous=decision.previous, reason=decision.reason)
                if decision.state == "logged_out" and self.agent_refusal(decision.agent_id) is not None:
                    for hook in self.refused_agent_gone_hooks:  # a removed/disabled agent finished their call
                        hook(decision.agent_id)
            elif isinstance(decision, CallLeft):
                self._call_left(decision)
            else:
                if isinstance(decision, Overflow):
                    self._overflow_targets[decision.call_id] = decision.target
                    self._overflow_reasons[decision.call_id] = decision.reason
                waiting = self.calls.get(decision.call_id)
                if waiting is not None:
                    if isinstance(decision, CancelOffer) and decision.reason in ("ring_timeout", "picked_up"):
                        self.queueing.ring_timed_out(waiting, decision.agent_id, decision.reason)
                    waiting.signal(decision)
                elif self.callbacks is not None:
                    self.callbacks.signal(decision)  # a callback: a queued call with no caller channel
                if isinstance(decision, Offer):
                    self._publish_ringing(decision)
                elif isinstance(decision, Announce):
                    self.publish("call.position_changed", call_id=decision.call_id, queue=decision.queue,
                                 position=decision.position, estimated_wait=decision.estimated_wait)
        if self.engine.has_unsaved():
            # The agents and queues changed, encoded once per store batch, in the batch of the live-call parts
            # written with these changes (README "Benchmarks").
            self.records.save_changes_at_commit(self.engine.take_unsaved)
        # The timer task wakes only for a deadline sooner than the one it waits for: most changes (a call queued, an
        # offer answered, an agent's state) add none or a later one, and a wake-up of its own per change cost a task
        # step, a timer armed and cancelled and a tick that found nothing due (README "Benchmarks"). A deadline that
        # went away leaves its timer armed: it wakes then, finds nothing due, and waits for the next one.
        deadline = self.engine.next_deadline()
        if deadline is not None and deadline < self._timer_at:
            self._replan.set()

    def _call_left(self, left: CallLeft) -> None:
        self.queue_resume.left(left.call_id)
        waiting = self.calls.get(left.call_id)
        if waiting is not None:
            waiting.left = True
        target = self._overflow_targets.pop(left.call_id, None)
        overflow_reason = self._overflow_reasons.pop(left.call_id, "max_wait")
        queue = self.queue_configs.get(left.queue)
        threshold = queue.service_level_seconds if queue else self.standards.service_level_seconds
        if not (left.outcome == "abandoned" and left.wait_seconds < self.standards.short_abandon_seconds):
            self.monitor.call_left(left.queue, self.clock.now(),
                                   answered_within=left.outcome == "answered" and left.wait_seconds <= threshold)
        self.records.left(left.call_id, left.outcome, left.wait_seconds, left.agent_id, target)
        wait = round(left.wait_seconds, 3)
        if left.outcome == "answered":
            channel = self.answering_channel.pop(left.call_id, None)
            self.publish("call.answered", call_id=left.call_id, agent_id=left.agent_id, queue=left.queue, wait=wait,
                         **({"agent_channel": channel} if channel else {}))
        elif left.outcome == "abandoned":
            self.publish("call.abandoned", call_id=left.call_id, queue=left.queue, wait=wait)
        elif waiting is not None and not (target or "").startswith("queue:"):
            # The flow decides where an overflowed caller goes (the queue's `overflow` is only a hint to
            # its queue node): the event names that place when the flow takes the caller there (IVR).
            waiting.session.pending_overflow = {"call_id": left.call_id, "queue": left.queue, "wait": wait}
        else:
            self.publish("call.overflowed", call_id=left.call_id, queue=left.queue, target=target or "", wait=wait,
                         reason=overflow_reason)

    def _publish_ringing(self, offer: Offer) -> None:
        waiting = self.calls.get(offer.call_id)
        pop = self.screen_pop(waiting.session, offer.queue, waiting.history) if waiting \
            else self.callbacks.screen_pop(offer.call_id, offer.queue) if self.callbacks else {}
        self.publish("call.ringing", call_id=offer.call_id, agent_id=offer.agent_id, queue=offer.queue,
                     endpoint=offer.endpoint, screen_pop=pop)

    def screen_pop(self, session: CallSession, queue: str,
                   history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """What the agent's screen shows for a ringing call: who calls, from where, what they said,
        and their last calls (when, who answered, the disposition left)."""
        region = caller_region(session.caller) if session.caller else None
        return {"caller": session.caller, "did": session.did, "queue": queue,
                "region": region.as_dict() if region else None,
                "tier": session.data.get("tier"), "data": screen_pop_data(session.data), "history": history or []}

    # -- the caller's side ----------------------------------------------------------------------------


    async def announce_to_caller(self, session: CallSession, prompt: Prompt,
                                  unless: Callable[[], bool] | None = None) -> None:
        """An announcement the call can go on without: when its speech cannot be rendered, it is skipped;
        so it is when `unless()` says so once it is rendered (rendering can take a while)."""
        try:
            media = await self.media_for(prompt)
        except TtsError as exc:
            log.error("call %s: announcement skipped: %s", session.call_id, exc)
            return
        if unless is not None and unless():
            return
        await session.play([media])


    def agent_done(self, waiting: QueueCall, agent_id: str) -> None:
        """The agent's part of the call is over (they hung up, or transferred it away while the caller
        stays with someone else): talk ends, ACW starts. Once per agent and call."""
        if self.engine.agent(agent_id).current_call != waiting.call_id:
            return  # already done (the agent may be on another call by now)
        self.records.talk_ended(waiting.call_id)
        with contextlib.suppress(AcdError):
            self.apply(self.engine.call_ended(agent_id))
        waiting.on_agent_done(agent_id)

    # -- the capabilities: queueing, call control, outbound (their own modules) -----------------------

    async def enqueue(self, session: CallSession, request: QueueRequest) -> QueueOutcome:
        """Queue the caller (`AcdQueueing.enqueue`): what the IVR's queue node calls."""
        return await self.queueing.enqueue(session, request)

    def pickup(self, call_id: str, agent_id: str) -> dict[str, Any]:
        """抢接 (`AcdQueueing.pickup`)."""
        return self.queueing.pickup(call_id, agent_id)

    def move(self, call_id: str, queue: str, *, by: str) -> dict[str, Any]:
        """A supervisor moves a waiting call to another queue (`AcdEngine.move`): the caller keeps their
        wait and goes on hearing the music; a callback (no caller on the line) keeps its queue."""
        if self.callbacks is not None and self.callbacks.owns(call_id):
            raise AcdError("a callback keeps the queue it was booked in")
        view = self.engine.call(call_id)
        if view is None or call_id not in self.calls:
            raise AcdError(f"call {call_id} is not waiting in a queue")
        self.apply(self.engine.move(call_id, queue))
        self.calls[call_id].session.records.event(call_id, "moved", queue=view.queue, to=queue, by=by)
        return {"call_id": call_id, "state": "moved", "queue": queue, "previous_queue": view.queue}

    async def control(self, call_id: str, action: str, *, target: str | None = None,
                      agent_id: str | None = None, timeout: float = 10.0,
                      options: dict[str, str] | None = None) -> dict[str, Any]:
        """An agent's command on their connected call (`AcdCallControl.control`)."""
        return await self.call_control.control(call_id, action, target=target, agent_id=agent_id,
                                               timeout=timeout, options=options)

    def dial_string(self, target: str) -> str:
        return self.call_control.dial_string(target)

    # -- agents' outbound calls (外呼): see `agent_outbound` -------------------------------------------------

    async def click_to_dial(self, agent_id: str, number: str) -> dict[str, Any]:
        """Ring the agent's phone, then the customer (`AgentOutbound.click_to_dial`)."""
        return await self.outbound.click_to_dial(agent_id, number)

    def agent_number_prompt(self, agent: AcdAgentConfig, language: str) -> Prompt:
        """"您好，<center> <工号>号为您服务" (domain.md's greeting standard)."""
        if language.startswith("en"):
            return Prompt("tts", f"Agent number {say_digits(agent.number, 'en')} is at your service.", "en")
        # 工号 digit by digit, 1 as 幺: "幺零零二号", not "一千零二号".
        return Prompt("tts", f"您好，{self.config.acd.center_name}{say_digits(agent.number, 'zh')}号为您服务。", "zh")

    # -- views -------------------------------------------------------------------------------------

    def agents_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for agent in self.engine.agents():
            counts[agent.state] = counts.get(agent.state, 0) + 1
        return dict(sorted(counts.items()))

    def describe_call(self, call_id: str) -> str:
        waiting = self.calls.get(call_id)
        return f"{call_id} ({mask_number(waiting.session.caller)})" if waiting else call_id
