"""Callbacks (README "Callbacks"): virtual hold — the caller keeps their place — and scheduled callbacks.

A callback waiting its turn is an ordinary queued call of the routing engine (same priority, aging and
first-come-first-served rules as the callers on the line, counted on the wallboard and in /api/queues),
whose adapter here has no caller channel:

- **Virtual hold**: while a caller waits, a position announcement whose estimated wait reaches the queue's
  `callback_offer_after` offers a callback (1: this number, 2: another, checked by the dialing policy).
  On yes the caller hangs up and their engine call stays where it is, under their call id.
- **Scheduled**: the IVR's `callback` node (a time the caller picked) or an agent (API) books one; when due
  (business hours, working days of the Chinese calendar: `controller.workdays`) it is queued at its
  due time. A personal one (for one agent) is queued with a skill nobody has and picked up (抢接) for
  that agent when they are ready.
- **Serving**: when the engine offers it to an agent, `agent_first` rings the agent's phone (the screen pop
  says "callback", with the IVR data), then dials the customer through the trunk and bridges them;
  `customer_first` reserves the agent (talking on the callback), dials the customer, and rings the agent
  when the customer answers.
- **Retries**: busy, no answer or failure: queued again after `callback_retry_seconds` at its ORIGINAL
  place (its first enqueue time), `callback_retries` more times; then it is `failed`, on the list for a
  person (GET /api/callbacks?status=failed), who closes it with a note. So is one whose queue's `max_wait`
  passed (same rule as callers on the line).

Each transition rewrites the callback's row (`callback_records`): a restarted controller queues the
waiting ones again at their original place (the engine's `enqueued_at`), routed with the resumed callers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.acd.dialing import number_refusal
from controller.acd.engine import AcdError
from controller.acd.model import CancelOffer, Decision, Offer, Overflow
from controller.ari.errors import AriError
from controller.collector import RINGING
from controller.config import AcdQueueConfig
from controller.ids import unique_hex
from controller.ivr.flow import screen_pop_data
from controller.ivr.port import CallerHangup, Prompt
from controller.lookup import caller_region, is_phone_number
from controller.media.tts import TtsError
from controller.plugins.acd.agent_outbound import CUSTOMER_RING_SECONDS, NUMBER
from controller.plugins.acd.callback_records import CallbackRecords
from controller.plugins.acd.stasis import AcdWake
from controller.plugins.calls.legs import Leg, connect_and_talk
from controller.plugins.calls.session import DIAL_OUTCOME_BY_CAUSE, CallSession
from controller.workdays import due_time

if TYPE_CHECKING:
    from controller.plugins.acd.services import AcdService
    from controller.plugins.acd.stasis import QueueCall

log = logging.getLogger("controller.acd.callbacks")

#: How often due callbacks are queued and the IVR's requests taken over.
TICK_SECONDS = 1.0
#: Seconds the caller has for each key of the offer.
KEY_TIMEOUT = 6.0
#: The IVR's callback requests taken over: those of the last two days.
IVR_REQUESTS_KEPT_SECONDS = 2 * 86400.0
#: Callbacks that are still to be served (the others are history).
OPEN = ("waiting", "serving", "scheduled", "retry")

PROMPTS = {
    "offer": ("您可以保留排队位置并挂机等待回电：回拨本机号码请按1，回拨其他号码请按2，继续等待请不要按键。",
              "You can keep your place and be called back: press 1 to be called back on this number, 2 for"
              " another number, or stay on the line."),
    "number": ("请输入回拨号码，以井号键结束。", "Enter the number to call back, then the hash key."),
    "refused": ("该号码无法回拨，请继续等待。", "We cannot call that number back; please stay on the line."),
    "booked": ("已为您保留排队位置，轮到您时我们将回电，再见。",
               "Your place is kept; we will call you back when it is your turn. Goodbye."),
}


@dataclass
class Callback:
    """One callback; `key` is its call id in the engine (the caller's own for virtual hold)."""

    id: int
    key: str
    origin: str  # virtual_hold | ivr | agent
    queue: str
    number: str
    priority: int
    requested_at: float
    status: str
    enqueued_at: float | None = None
    due_at: float | None = None
    agent_id: str | None = None  # personal: only this agent
    attempts: int = 0
    outcome: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    serving_agent: str | None = None  # the agent the current offer went to

    def state(self) -> dict[str, Any]:
        return {"status": self.status, "enqueued_at": self.enqueued_at, "due_at": self.due_at,
                "attempts": self.attempts, "outcome": self.outcome, "agent_id": self.agent_id}


def _key_of(callback_id: int, origin: str, call_id: str) -> str:
    return call_id if origin == "virtual_hold" else f"callback-{callback_id}"


class CallbackService:
    def __init__(self, acd: AcdService, records: CallbackRecords) -> None:
        self.acd = acd
        self.records = records
        self.callbacks: dict[str, Callback] = {}  # engine key -> the open callbacks
        self._offered: weakref.WeakSet[QueueCall] = weakref.WeakSet()  # visits offered a callback (once each)
        self._tasks: set[asyncio.Task[None]] = set()
        acd.callbacks = self

    # -- the engine's side --------------------------------------------------------------------------

    def owns(self, call_id: str) -> bool:
        """Whether the engine's call is a callback (a virtual waiting call, or one being served)."""
        callback = self.callbacks.get(call_id)
        return callback is not None and callback.status in ("waiting", "serving")

    def signal(self, decision: Decision) -> None:
        """A decision of the engine about a callback (`AcdService.apply`)."""
        callback = self.callbacks.get(str(getattr(decision, "call_id", "")))
        if callback is None:
            return
        if isinstance(decision, Offer):
            callback.status, callback.serving_agent = "serving", decision.agent_id
            self.records.save(callback.id, callback.state())
            serve = self._customer_first if self._queue(callback).callback_order == "customer_first" \
                else self._agent_first
            # Nothing but its task stands between this and the phone dialled (the agent's, or the customer's):
            # no collector pass in between, as for a waiting caller's offer (`QueueCall.signal`).
            self._spawn(self._dial_held(serve(callback, decision), RINGING.hold()))
        elif isinstance(decision, CancelOffer) and decision.agent_id == callback.serving_agent:
            callback.status, callback.serving_agent = "waiting", None  # ring timeout: routed again from its place
            self.acd.records.offer(callback.key, decision.agent_id, 0.0, "no_answer")
            self.records.save(callback.id, callback.state())
        elif isinstance(decision, Overflow):
            self._to_person(callback, decision.reason)

    def screen_pop(self, call_id: str, queue: str) -> dict[str, Any]:
        """What the agent's screen shows for a callback: "callback", who, from where, the IVR data."""
        callback = self.callbacks.get(call_id)
        if callback is None:
            return {}
        region = caller_region(callback.number) if callback.number else None
        return {"callback": True, "callback_id": callback.id, "origin": callback.origin, "caller": callback.number,
                "did": "", "queue": queue, "region": region.as_dict() if region else None,
                "tier": callback.data.get("tier"), "data": screen_pop_data(callback.data), "history": [],
                "attempt": callback.attempts + 1, "requested_at": callback.requested_at}

    def _queue(self, callback: Callback) -> AcdQueueConfig:
        return self.acd.queue_configs[callback.queue]

    @staticmethod
    async def _dial_held(serve: Coroutine[Any, Any, None], hold: int) -> None:
        """Serve an offer with the collector held back (`hold`: `RINGING.hold()`) until it is over: `originate`
        returns once the phone is dialled, so the hold ends there (or at its limit)."""
        try:
            await serve
        finally:
            RINGING.release(hold)

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- virtual hold: the offer to a waiting caller ------------------------------------------------------

    async def offer(self, waiting: QueueCall, estimated_wait: float | None) -> bool:
        """Offer the waiting caller a callback when the estimated wait reaches the queue's threshold, or when
        there is no estimate because no agent is available to take the call (the wait is open-ended); once
        per visit. True when they took it: the caller has been hung up, their engine call stays queued."""
        queue, session = waiting.visited_queue, waiting.session
        short_wait = estimated_wait is not None and estimated_wait < queue.callback_offer_after
        if (not queue.callback_offer_after or short_wait
                or waiting in self._offered or waiting.offer_pending()):
            return False
        self._offered.add(waiting)
        number = await self._ask_number(waiting)
        view = self.acd.engine.call(session.call_id)
        if number is None or view is None or waiting.offer_pending():
            declined = self._declined(waiting)
            session.records.event(session.call_id, "callback_offered", accepted=False)
            self.acd.publish("callback.offered", call_id=session.call_id, queue=queue.name, callback_id=declined,
                             accepted=False, estimated_wait=estimated_wait)
            return False
        now = self.acd.clock.now()
        self.acd.publish("callback.offered", call_id=session.call_id, queue=queue.name,
                         callback_id=self.records.next_id(), accepted=True, estimated_wait=estimated_wait)
        callback = self._book(call_id=session.call_id, origin="virtual_hold", queue=queue.name, number=number,
                              priority=waiting.request.priority, status="waiting", requested_at=now,
                              enqueued_at=now - view.waited, data=dict(session.data))
        session.records.event(session.call_id, "callback_offered", accepted=True, callback_id=callback.id)
        await self._say(session, "booked")
        session.end_reason = "callback_requested"
        await session.hangup()
        return True

    def _declined(self, waiting: QueueCall) -> int:
        """A declined offer is a row too (the KPIs count offers)."""
        now = self.acd.clock.now()
        return self.records.create(call_id=waiting.call_id, origin="virtual_hold", queue=waiting.visited_queue.name,
                                   number="", priority=waiting.request.priority, status="declined", requested_at=now)

    async def _ask_number(self, waiting: QueueCall) -> str | None:
        """The offer: 1 = this number, 2 = another (ended with #); None when the caller did not take it or
        the number may not be dialled (they are told and stay in line)."""
        session = waiting.session
        key = await self._collect(waiting, "offer", max_digits=1)
        if key == "1" and is_phone_number(session.caller):
            number = session.caller
        elif key in ("1", "2"):
            number = await self._collect(waiting, "number", max_digits=21, terminator="#")
        else:
            return None
        if not NUMBER.fullmatch(number) or number_refusal(self.acd.config.dialing, number) is not None:
            await self._say(session, "refused")
            return None
        return number

    def _prompt(self, session: CallSession, name: str) -> Prompt:
        zh, en = PROMPTS[name]
        return Prompt("tts", en, "en") if session.language.startswith("en") else Prompt("tts", zh, "zh")

    async def _say(self, session: CallSession, name: str) -> None:
        with contextlib.suppress(TtsError):
            await session.play([await self.acd.media_for(self._prompt(session, name))])

    async def _collect(self, waiting: QueueCall, name: str, *, max_digits: int, terminator: str = "") -> str:
        """Play a prompt (a key interrupts it), then keys until `max_digits`, the terminator, or a pause; an agent
        free meanwhile ends it at once (the caller is connected rather than kept answering)."""
        session = waiting.session
        session.dtmf.clear()  # keys pressed before the offer do not answer it
        try:
            media = await self.acd.media_for(self._prompt(session, name))
        except TtsError as exc:
            log.error("call %s: callback offer not played: %s", session.call_id, exc)
            return ""
        digits = await session.play([media], barge_in=True) or ""
        while len(digits) < max_digits and not (terminator and digits.endswith(terminator)):
            if waiting.offer_pending():
                return ""
            if not session.dtmf:
                await session.wait_for(lambda event: bool(session.dtmf) or isinstance(event, AcdWake), KEY_TIMEOUT)
            if not session.dtmf:
                break
            digits += session.dtmf.pop(0)
        return digits.removesuffix(terminator) if terminator else digits

    # -- booking -----------------------------------------------------------------------------------

    def _book(self, *, call_id: str, origin: str, queue: str, number: str, priority: int, status: str,
              requested_at: float, enqueued_at: float | None = None, due_at: float | None = None,
              agent_id: str | None = None, data: dict[str, Any] | None = None) -> Callback:
        data = {**(data or {}), "callback": True}
        callback_id = self.records.create(call_id=call_id, origin=origin, queue=queue, number=number,
                                          priority=priority, status=status, requested_at=requested_at,
                                          enqueued_at=enqueued_at, due_at=due_at, agent_id=agent_id, data=data)
        callback = Callback(callback_id, _key_of(callback_id, origin, call_id), origin, queue, number, priority,
                            requested_at, status, enqueued_at, due_at, agent_id, data=data)
        self.callbacks[callback.key] = callback
        log.info("callback %d booked (%s, queue %s, %s)", callback_id, origin, queue,
                 "waiting" if status == "waiting" else f"due {due_at}")
        self.acd.publish("callback.requested", call_id=call_id, queue=queue, agent_id=agent_id,
                         callback_id=callback_id, origin=origin, due_at=due_at, personal=agent_id is not None)
        return callback

    def schedule(self, *, queue: str, number: str, when: str, agent_id: str | None = None,
                 call_id: str | None = None, data: dict[str, Any] | None = None, origin: str = "agent",
                 priority: int = 0) -> Callback:
        """Book a callback due at `when` ("asap", "next_morning", or a local ISO time), moved into the queue's
        business hours on a working day. ValueError on a bad queue, number, agent or time (nothing booked)."""
        settings = self.acd.queue_configs.get(queue)
        if settings is None:
            raise ValueError(f"no queue {queue!r}")
        if not NUMBER.fullmatch(number):
            raise ValueError("the number is not valid")
        if (refusal := number_refusal(self.acd.config.dialing, number)) is not None:
            raise ValueError(f"this number may not be dialled: {refusal}")
        if agent_id is not None and agent_id not in self.acd.agent_configs:
            raise ValueError(f"no agent {agent_id!r}")
        now = self.acd.clock.now()
        due = due_time(now, when, settings.business_hours)
        return self._book(call_id=call_id or "", origin=origin, queue=queue, number=number, priority=priority,
                          status="scheduled", requested_at=now, due_at=due, agent_id=agent_id, data=data)

    async def take_ivr_requests(self) -> None:
        """The IVR's `callback` node left requests (ivr_records): each becomes a scheduled callback."""
        # Requests older than that were left before callbacks were dialled (an upgrade): never dialled this late.
        since = self.acd.clock.now() - IVR_REQUESTS_KEPT_SECONDS
        for request in await self.records.ivr_requests(since):
            payload = request["payload"]
            queue = str(payload.get("queue") or next(iter(self.acd.queue_configs), ""))
            settings = self.acd.queue_configs.get(queue)
            number = str(payload.get("number") or "")
            if settings is None or not NUMBER.fullmatch(number):
                log.warning("IVR callback request %s: no queue %r or no valid number: left open", request["id"], queue)
                continue
            when = str(payload.get("when") or "")
            due = (due_time(self.acd.clock.now(), when, settings.business_hours) if when
                   else float(payload.get("due_at") or self.acd.clock.now()))
            self.records.ivr_request_taken(int(request["id"]), "queued")
            self._book(call_id=str(request["call_id"]), origin="ivr", queue=queue, number=number, priority=0,
                       status="scheduled", requested_at=float(request["created_at"]), due_at=due,
                       data={"flow": payload.get("flow"), "ivr_record_id": request["id"]})

    # -- the clock: due callbacks are queued ------------------------------------------------------------

    async def run(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.tick()
            ticks += 1
            if ticks % 5 == 1:
                with contextlib.suppress(Exception):  # a failing store: the requests wait for the next turn
                    await self.take_ivr_requests()

    def tick(self) -> None:
        now = self.acd.clock.now()
        for callback in list(self.callbacks.values()):
            if callback.status in ("scheduled", "retry") and (callback.due_at or 0.0) <= now:
                self._enqueue(callback)
            elif callback.status == "waiting" and callback.agent_id is not None:
                self._personal(callback)

    def _enqueue(self, callback: Callback, *, route: bool = True, new_visit: bool = True) -> None:
        """Into the engine at its place: the original enqueue time (a retry keeps its place), else its due time."""
        if callback.enqueued_at is None:
            callback.enqueued_at = callback.due_at or self.acd.clock.now()
        skills = {f"callback_for_{callback.agent_id}": 1} if callback.agent_id else {}
        try:
            decisions = self.acd.engine.enqueue(callback.key, callback.queue, priority=callback.priority,
                                                skills=skills, data=callback.data, enqueued_at=callback.enqueued_at,
                                                route=route)
        except AcdError as exc:
            log.error("callback %d cannot be queued: %s", callback.id, exc)
            self._to_person(callback, "not_queued")
            return
        callback.status = "waiting"
        self.records.save(callback.id, callback.state())
        if new_visit:
            self.acd.records.enqueued(callback.key, callback.queue, callback.priority)
        view = self.acd.engine.call(callback.key)
        self.acd.publish("call.queued", call_id=callback.key, queue=callback.queue, priority=callback.priority,
                         skills=skills, position=view.position if view else 0)
        self.acd.apply(decisions)

    def _personal(self, callback: Callback) -> None:
        """A personal callback goes to its agent as soon as they are ready (nobody else has its skill)."""
        assert callback.agent_id is not None
        agent = self.acd.engine.agent(callback.agent_id)
        view = self.acd.engine.call(callback.key)
        if agent.state == "ready" and view is not None and not view.agents_ringing:
            with contextlib.suppress(AcdError):
                self.acd.apply(self.acd.engine.pickup(callback.key, callback.agent_id))

    # -- serving --------------------------------------------------------------------------------------

    def _caller_id(self, callback: Callback) -> str | None:
        return self._queue(callback).callback_caller_id or self.acd.config.acd.outbound_caller_id or None

    def _trunk(self, callback: Callback) -> str:
        return self.acd.config.asterisk.trunk_dial.replace("{number}", callback.number)

    async def _agent_first(self, callback: Callback, offer: Offer) -> None:
        """Ring the reserved agent's phone (the screen pop went out with the offer); they answer, the customer
        is dialled."""
        assert self.acd.originate is not None
        endpoint = self.acd.config.asterisk.phone_dial.replace("{endpoint}", offer.endpoint)
        try:
            await self.acd.originate(endpoint, did=callback.number, caller_id=callback.number,
                                     timeout=offer.ring_timeout, call_id=unique_hex(),
                                     handler=lambda session: self._agent_answered(session, callback, offer.agent_id),
                                     on_failed=lambda _cause: self._agent_missed(callback, offer.agent_id))
        except AriError as exc:
            log.warning("callback %d: cannot ring agent %s: %s", callback.id, offer.agent_id, exc.message)
            self._agent_missed(callback, offer.agent_id)

    def _agent_missed(self, callback: Callback, agent_id: str) -> None:
        """The agent's phone did not answer: RONA, the callback is routed again from its place."""
        if callback.serving_agent != agent_id or callback.status != "serving":
            return  # the engine's ring timeout settled it first
        callback.status, callback.serving_agent = "waiting", None
        self.records.save(callback.id, callback.state())
        self.acd.records.offer(callback.key, agent_id, 0.0, "no_answer")
        self.acd.apply(self.acd.engine.no_answer(callback.key, agent_id))

    async def _agent_answered(self, session: CallSession, callback: Callback, agent_id: str) -> None:
        session.answered = True
        session.records.answered(session.call_id)
        try:
            self.acd.apply(self.acd.engine.answered(callback.key, agent_id))
        except AcdError:
            await session.hangup()  # the offer was taken back meanwhile (ring timeout)
            return
        session.data.update(callback.data)
        session.records.event(session.call_id, "callback", callback_id=callback.id, agent_id=agent_id)
        leg = Leg(session, self._trunk(callback), purpose="customer", caller_id=self._caller_id(callback),
                  ring_timeout=CUSTOMER_RING_SECONDS)
        outcome = "failed"
        try:
            self._dialing(callback, agent_id, session)
            dialled = await leg.dial()
            session.records.event(session.call_id, "customer_dialled", agent_id=agent_id, status=dialled.status,
                                  cause=dialled.cause)
            if dialled.answered:
                outcome = "answered"
                self._connected(callback, agent_id, session)
                await connect_and_talk(session, leg)
            else:
                outcome = {"BUSY": "busy", "NOANSWER": "no_answer", "TIMEOUT": "no_answer"}.get(dialled.status,
                                                                                                  "failed")
        except CallerHangup:
            outcome = "answered" if outcome == "answered" else "agent_hangup"
            raise
        finally:
            if outcome != "answered":
                self._attempt_failed(callback, outcome)
            self._free(callback, agent_id)
            await leg.hangup()
            await session.hangup()

    async def _customer_first(self, callback: Callback, offer: Offer) -> None:
        """Reserve the agent (talking on the callback), dial the customer; they answer, the agent's phone rings."""
        assert self.acd.originate is not None
        try:
            self.acd.apply(self.acd.engine.answered(callback.key, offer.agent_id))
        except AcdError:
            return
        self._dialing(callback, offer.agent_id, None)
        try:
            await self.acd.originate(self._trunk(callback), did=callback.number, caller_id=self._caller_id(callback),
                                     timeout=CUSTOMER_RING_SECONDS, call_id=unique_hex(),
                                     handler=lambda session: self._customer_answered(session, callback, offer),
                                     on_failed=lambda cause: self._customer_missed(callback, offer.agent_id, cause))
        except AriError as exc:
            log.warning("callback %d: cannot dial the customer: %s", callback.id, exc.message)
            self._customer_missed(callback, offer.agent_id, None)

    def _customer_missed(self, callback: Callback, agent_id: str, cause: int | None) -> None:
        self._attempt_failed(callback, DIAL_OUTCOME_BY_CAUSE.get(cause or 0, "failed"))
        self._free(callback, agent_id)

    async def _customer_answered(self, session: CallSession, callback: Callback, offer: Offer) -> None:
        session.answered = True
        session.records.answered(session.call_id)
        session.data.update(callback.data)
        session.records.event(session.call_id, "callback", callback_id=callback.id, agent_id=offer.agent_id)
        leg = Leg(session, self.acd.config.asterisk.phone_dial.replace("{endpoint}", offer.endpoint), purpose="agent",
                  caller_id=callback.number, ring_timeout=offer.ring_timeout)
        connected = False
        try:
            dialled = await leg.dial()
            if dialled.answered:
                connected = True
                self._connected(callback, offer.agent_id, session)
                await connect_and_talk(session, leg)
        finally:
            if not connected:
                self._attempt_failed(callback, "agent_no_answer")
            self._free(callback, offer.agent_id)
            await leg.hangup()
            await session.hangup()

    def _dialing(self, callback: Callback, agent_id: str, session: CallSession | None) -> None:
        callback.attempts += 1
        self.records.save(callback.id, callback.state())
        self.acd.publish("callback.dialing", call_id=session.call_id if session else callback.key,
                         agent_id=agent_id, queue=callback.queue, callback_id=callback.id, attempt=callback.attempts,
                         order=self._queue(callback).callback_order)

    def _connected(self, callback: Callback, agent_id: str, session: CallSession) -> None:
        now = self.acd.clock.now()
        callback.status, callback.outcome = "connected", "answered"
        self.callbacks.pop(callback.key, None)
        self.records.save(callback.id, {**callback.state(), "connected_at": now})
        record_id = callback.data.get("ivr_record_id")
        if isinstance(record_id, int):
            self.records.ivr_request_taken(record_id, "done")
        session.records.event(session.call_id, "bridged", leg="customer")
        log.info("callback %d connected to agent %s (attempt %d)", callback.id, agent_id, callback.attempts)
        self.acd.publish("callback.connected", call_id=session.call_id, agent_id=agent_id, queue=callback.queue,
                         callback_id=callback.id, attempt=callback.attempts, wait=round(now - callback.requested_at, 3))

    def _free(self, callback: Callback, agent_id: str) -> None:
        """The agent's part of this attempt is over: ACW, or ready."""
        if self.acd.engine.agent(agent_id).current_call == callback.key:
            self.acd.records.talk_ended(callback.key)
            with contextlib.suppress(AcdError):
                self.acd.apply(self.acd.engine.call_ended(agent_id))

    def _attempt_failed(self, callback: Callback, outcome: str) -> None:
        """Busy, no answer, failure: again after the interval at its original place, or to a person."""
        queue = self._queue(callback)
        callback.outcome, callback.serving_agent = outcome, None
        if callback.attempts > queue.callback_retries:
            self._to_person(callback, outcome)
            return
        callback.status, callback.due_at = "retry", self.acd.clock.now() + queue.callback_retry_seconds
        self.records.save(callback.id, callback.state())
        log.info("callback %d: attempt %d %s; again at %.0f", callback.id, callback.attempts, outcome,
                 callback.due_at)
        self.acd.publish("callback.retry", call_id=callback.key, queue=callback.queue, callback_id=callback.id,
                         attempt=callback.attempts, outcome=outcome, due_at=callback.due_at)

    def _to_person(self, callback: Callback, outcome: str) -> None:
        callback.status, callback.outcome = "failed", outcome
        self.callbacks.pop(callback.key, None)
        self.records.save(callback.id, callback.state())
        log.warning("callback %d failed (%s) after %d attempts: on the list for a person", callback.id, outcome,
                    callback.attempts)
        self.acd.publish("callback.failed", call_id=callback.key, queue=callback.queue, callback_id=callback.id,
                         attempts=callback.attempts, outcome=outcome)

    # -- a person's list ------------------------------------------------------------------------------

    async def close(self, callback_id: int, note: str, by: str) -> dict[str, Any]:
        """A person closes a callback (from the failed list, or cancels an open one). LookupError: no such
        callback; ValueError: already closed (nothing changed)."""
        row = await self.records.get(callback_id)
        if row is None:
            raise LookupError(f"no callback {callback_id}")
        if row["status"] in ("done", "connected", "declined"):
            raise ValueError(f"callback {callback_id} is {row['status']} already")
        key = _key_of(callback_id, row["origin"], row["call_id"])
        if (callback := self.callbacks.get(key)) is not None:
            if callback.status == "serving":
                raise ValueError(f"callback {callback_id} is being dialled now")
            self.callbacks.pop(key, None)
            if self.acd.engine.call(key) is not None:
                with contextlib.suppress(AcdError):
                    self.acd.apply(self.acd.engine.abandon(key))
        self.records.save(callback_id, {"status": "done", "note": f"{by}: {note}"[:500]})
        self.acd.publish("callback.done", call_id=row["call_id"] or key, queue=row["queue"], callback_id=callback_id)
        return {**row, "status": "done", "note": f"{by}: {note}"[:500]}

    # -- restart -------------------------------------------------------------------------------------

    async def restore(self) -> None:
        """The callbacks of a previous process: the waiting ones are queued again at their original place (not
        routed yet: `route_waiting` after the resume offers them in order with the resumed callers); one being
        served when the process ended is waiting again; scheduled ones and retries wait for their time."""
        await self.records.open()
        for row in await self.records.open_rows():
            if row["queue"] not in self.acd.queue_configs:
                log.error("callback %s: its queue %r is gone", row["id"], row["queue"])
                continue
            callback = Callback(int(row["id"]), _key_of(int(row["id"]), row["origin"], row["call_id"]),
                                row["origin"], row["queue"], row["number"], int(row["priority"]),
                                float(row["requested_at"]), row["status"], row["enqueued_at"], row["due_at"],
                                row["agent_id"], int(row["attempts"]), row["outcome"], row["data"])
            self.callbacks[callback.key] = callback
            if callback.status in ("waiting", "serving"):
                self._enqueue(callback, route=False, new_visit=callback.status == "serving")
        if self.callbacks:
            log.info("callbacks: %d carried on from before the restart", len(self.callbacks))
