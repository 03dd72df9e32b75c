"""The IVR on real calls: pick the flow for a call, run it on an `AriCallPort`, reload flows live.

A call runs on the snapshot of the flows taken when it started, so a reload never changes a call
in progress; an invalid new version is refused and the old one stays live. Whatever way a flow
ends, the caller is never left in silence: a flow error sends the call to the dialplan's fallback
route, and a flow that runs out of nodes hangs up after its last prompt.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from controller.clock import Clock
from controller.config import Config
from controller.ivr.flow import FlowSet, plain_variables, static_prompts
from controller.ivr.nodes.queue import QueueNode
from controller.ivr.port import HttpResponse, Prompt, QueueOutcome, QueueRequest
from controller.ivr.repository import FlowRepository, LoadResult
from controller.ivr.runner import FlowResult, NodeEntered, resume_point, run_flow
from controller.lookup import caller_region
from controller.plugins.calls.live_state import LiveCallState
from controller.plugins.calls.services import CallHandler, Resumption
from controller.plugins.calls.session import CallSession
from controller.plugins.ivr.ari_port import AriCallPort, Enqueuer
from controller.plugins.recordings.services import RecordingError, RecordingService
from controller.store.db import Store

log = logging.getLogger("controller.ivr")

Publish = Callable[..., Any]
#: What a call does when its talk, resumed by a new process, is over (see `AcdService.after_resumed_talk`).
AfterTalk = Callable[[CallSession, QueueOutcome, QueueRequest], Awaitable[None]]
MediaFor = Callable[[Prompt], Awaitable[str]]


def sound_exists_in(sounds_dir: Path) -> Callable[[str, str], bool]:
    """Whether Asterisk can find sound NAME for a language (sounds/<lang>/NAME.* or sounds/NAME.*)."""
    extensions = ("wav", "gsm", "ulaw", "alaw", "sln", "g722", "WAV")

    def exists(name: str, language: str) -> bool:
        for folder in (sounds_dir / language, sounds_dir / "en", sounds_dir):
            if any((folder / f"{name}.{ext}").exists() for ext in extensions):
                return True
        return False

    return exists


class IvrService:
    def __init__(self, *, config: Config, clock: Clock, store: Store, publish: Publish, media_for: MediaFor,
                 http: Callable[[], aiohttp.ClientSession], enqueue: Enqueuer | None,
                 fallback: Callable[[CallSession], Awaitable[None]]) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.publish = publish
        self.media_for = media_for
        self._http = http
        self._enqueue = enqueue
        self._fallback = fallback
        sounds = Path(config.asterisk.sounds_dir)
        self.repository = FlowRepository(Path(config.ivr.flows_dir),
                                         sound_exists=sound_exists_in(sounds) if sounds.is_dir() else None,
                                         did_overrides=config.dids, config_source=config.source)
        self.flows_run = 0
        self.http_outcomes: Counter[tuple[str, str, str]] = Counter()  # (flow, node, outcome) -> requests
        self.recordings: RecordingService | None = None  # set by the app: flows with `recording: always`
        # Set by the app: told of a call whose flow has a queue node as the flow starts (the ACD reads ahead).
        self.queue_ahead: Callable[[CallSession], None] | None = None
        self.prompts_ready = False  # every static prompt of the live flows is rendered
        self._warm_wanted = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.load_errors: list[str] = []  # of the last load or reload attempt
        self.live: LiveCallState | None = None  # the live-call picture: the "ivr" part (set by the app)
        self.flows_resumed = 0

    def load(self) -> list[str]:
        """Load the flows at start-up; errors are logged and the calls get the fallback route."""
        errors = self._note_errors(self.repository.load())
        self._warm_wanted.set()
        return errors

    def _note_errors(self, result: LoadResult) -> list[str]:
        """A load's or reload's errors as text: logged one per line, and kept for `status()`."""
        self.load_errors = [str(error) for error in result.errors]
        for error in self.load_errors:
            log.error("IVR flow: %s", error)
        return self.load_errors

    def status(self) -> dict[str, Any]:
        """For /api/status and `ccctl status`: how many flows are live, and the errors of the last load or
        reload (at start-up one bad file keeps every flow out: calls then get the fallback route)."""
        return {"live": len(self.repository.snapshot.flows), "errors": len(self.load_errors),
                "first_error": self.load_errors[0] if self.load_errors else None}

    async def run(self) -> None:
        """Render the live flows' prompts ahead of their first callers (at start and after each reload)."""
        while True:
            await self._warm_wanted.wait()
            self._warm_wanted.clear()
            self.prompts_ready = False
            await self.warm_prompts()
            self.prompts_ready = not self._warm_wanted.is_set()

    async def warm_prompts(self) -> int:
        """Render every static prompt (text to speech is slow the first time); returns how many failed."""
        failed = 0
        for flow in list(self.repository.snapshot.flows.values()):
            for node_id, prompt in static_prompts(flow):
                try:
                    await self.media_for(prompt)
                except Exception as exc:  # a prompt that cannot render now is rendered on demand
                    failed += 1
                    log.warning("IVR flow %s node %s: prompt not rendered ahead: %s", flow.id, node_id, exc)
        return failed

    async def reload(self) -> dict[str, Any]:
        """Reload the flows from disk. Reading and checking them runs in a worker thread (many large
        flows must not stall live calls), one reload at a time; the new set goes live atomically."""
        async with self._reload_lock:
            result = await asyncio.to_thread(self.repository.reload)
        errors = self._note_errors(result)
        if errors:
            log.error("IVR reload refused (the previous flows stay live): %d errors", len(errors))
        else:
            log.info("IVR flows reloaded: %s", ", ".join(sorted(self.repository.snapshot.flows)))
            self._warm_wanted.set()
        return {"ok": not errors, "errors": errors, "flows": sorted(self.repository.snapshot.flows)}

    def flows(self) -> list[dict[str, Any]]:
        snapshot = self.repository.snapshot
        dids = {flow_id: sorted(did for did, target in snapshot.by_did.items() if target == flow_id)
                for flow_id in snapshot.flows}
        return [{"id": flow.id, "language": flow.language, "dids": dids[flow.id], "nodes": len(flow.nodes),
                 "source": str(flow.source), "version": flow.version} for flow in snapshot.flows.values()]

    def flow_for_did(self, did: str) -> str | None:
        """The flow serving a DID: the configuration's `dids` first, then the flows' own."""
        flow = self.repository.flow_for_did(did)
        return flow.id if flow is not None else None

    def flow_exists(self, flow_id: str) -> bool:
        return flow_id in self.repository.snapshot.flows

    def did_problems(self, config: Config) -> list[str]:
        """The administration's cross check: each DID of `config.dids` must name a live flow (not checked
        before the flows were first read: the start applies the stored configuration before that)."""
        if self.repository.loaded_at is None and not self.load_errors:
            return []
        missing = self.repository.missing_flows(config.dids)
        loaded = ", ".join(sorted(self.repository.snapshot.flows)) or "none"
        return [f"dids[{did}]: flow {flow_id!r} is not loaded (loaded: {loaded})"
                for did, flow_id in sorted(missing.items())]

    async def apply_dids(self, old: Config, new: Config) -> None:
        """LiveConfig subscriber: the managed `dids` route the next calls (a call in a flow keeps its flow)."""
        if new.dids == self.repository.did_overrides:
            return
        async with self._reload_lock:  # not in the middle of a reload, which builds its set with the DIDs
            self.repository.set_did_overrides(new.dids)
        log.info("IVR DIDs now: %s", ", ".join(f"{did}->{flow}" for did, flow in sorted(new.dids.items())) or "none")

    # -- a call -------------------------------------------------------------------------------------

    async def handle(self, session: CallSession) -> None:
        """The inbound handler: the caller's flow, or the default greeting and fallback."""
        await self.serve(session)

    async def serve(self, session: CallSession) -> FlowResult | None:
        """Run the call's flow (`entry_flow`, else its DID's) and return how it went; None: no live flow
        (the default greeting and fallback). Outbound campaigns' IVR-only calls come here too."""
        snapshot = self.repository.snapshot
        flow_id = session.entry_flow or self.flow_for_did(session.did)
        if flow_id is None or flow_id not in snapshot.flows:
            await self._fallback(session)
            return None
        session.state = "ivr"
        session.records.set_flow(session.call_id, flow_id)
        if self.queue_ahead is not None and snapshot.flows[flow_id].can_queue:
            self.queue_ahead(session)
        region = caller_region(session.caller) if session.caller else None
        if region is not None:
            session.data.setdefault("region", region.as_dict())
        port = self._port(session)
        await session.answer()
        session.recording_policy = snapshot.flows[flow_id].recording
        if session.recording_policy == "always" and self.recordings is not None:
            try:
                await self.recordings.start(session, queue=None, agent_id=None, reason="flow_policy")
            except RecordingError as exc:
                log.error("call %s: %s", session.call_id, exc)  # the call goes on, unrecorded
        self.flows_run += 1
        result = await run_flow(snapshot, flow_id, port, on_node=self._saver(session, snapshot))
        await self._after_flow(session, flow_id, result)
        return result

    def _saver(self, session: CallSession, snapshot: FlowSet) -> NodeEntered:
        """Saves the "ivr" part of the live-call picture as each node starts: flow, its version, node, and
        the variables so far (sensitive ones are never stored: a resumed flow asks for them again)."""
        def save(flow_id: str, node: str, variables: dict[str, Any], attempts: int) -> None:
            if self.live is not None:
                flow = snapshot.flows.get(flow_id)
                self.live.save(session.call_id, "ivr", {
                    "flow": flow_id, "version": flow.version if flow else "", "node": node, "attempts": attempts,
                    "variables": plain_variables(variables)})
        return save

    async def resume(self, resumption: Resumption) -> CallHandler | None:
        """A caller of a previous process, in its flow: go on at the node they were in (its prompt played
        again) with the variables collected so far; if that flow changed, at the node of the same id;
        if that node is gone, at the flow's start (`resume_point`). A queue node takes the visit the ACD
        prepared (`QueueResume`), so a waiting caller keeps their place."""
        saved = resumption.parts["ivr"]
        snapshot = self.repository.snapshot
        point = resume_point(snapshot, saved)
        if point is None:
            resumption.notes.append(f"ivr: flow {saved.get('flow')!r} is no longer live")
            return None

        async def go_on(session: CallSession) -> None:
            self.flows_resumed += 1
            session.records.event(session.call_id, "flow_resumed", flow=point.flow_id, node=point.node, how=point.how)
            if point.node is None:  # the caller's flow starts again: their recording policy, too
                session.recording_policy = snapshot.flows[point.flow_id].recording
            result = await run_flow(snapshot, point.flow_id, self._port(session), start_node=point.node,
                                    variables=point.variables, on_node=self._saver(session, snapshot),
                                    attempts_used=point.attempts_used)
            await self._after_flow(session, point.flow_id, result)

        log.info("call %s: flow %s goes on at %s (%s)", resumption.session.call_id, point.flow_id,
                 point.node or "its start", point.how)
        return go_on

    def after_resumed_talk(self, otherwise: AfterTalk) -> AfterTalk:
        """What a call whose talk a new process resumed does when the talk is over: the flow goes on from
        its queue node as if the visit had ended in this process (`answered` route: a survey, goodbye…).
        A transfer to a queue, or a call with no flow to go on with, is left to `otherwise`."""
        async def go_on(session: CallSession, outcome: QueueOutcome, request: QueueRequest) -> None:
            snapshot = self.repository.snapshot
            saved = (await self.live.load_all()).get(session.call_id, {}).get("ivr") if self.live else None
            point = resume_point(snapshot, saved) if saved else None
            node = snapshot.flows[point.flow_id].nodes.get(point.node) if point and point.node else None
            if point is None or not isinstance(node, QueueNode) \
                    or (outcome.overflow_target or "").startswith("queue:"):
                await otherwise(session, outcome, request)
                return
            session.records.event(session.call_id, "flow_resumed", flow=point.flow_id, node=point.node,
                                  how=point.how, after="talk")
            result = await run_flow(snapshot, point.flow_id, self._port(session), start_node=point.node,
                                    variables=point.variables, on_node=self._saver(session, snapshot),
                                    settled=lambda _node, ctx: node.after(ctx, outcome))
            await self._after_flow(session, point.flow_id, result)
        return go_on

    async def _after_flow(self, session: CallSession, flow_id: str, result: FlowResult) -> None:
        """The flow has ended: keep its variables, record how, and never leave the caller in silence."""
        session.data.update(plain_variables(result.variables))
        self._overflow_went(session, result.ended)  # the flow ended right after the queue overflowed
        session.records.event(session.call_id, "flow_ended", flow=flow_id, ended=result.ended, error=result.error,
                              visited=list(result.visited))
        if result.ended == "error":
            log.error("call %s: flow %s failed at %s: %s", session.call_id, flow_id,
                      result.visited[-1] if result.visited else "?", result.error)
            await session.to_fallback("flow-error")
        elif not session.caller_gone:
            await session.hangup()

    def _port(self, session: CallSession) -> AriCallPort:
        return AriCallPort(
            session, clock=self.clock, store=self.store, media_for=self.media_for, http_request=self.http_request,
            enqueue=self._enqueue, emit=self._emit, trunk_dial=self.config.asterisk.trunk_dial,
            phone_dial=self.config.asterisk.phone_dial)

    def _emit(self, session: CallSession, event: str, fields: dict[str, Any]) -> None:
        """IVR events to CTI and to the call's record (the path the call took)."""
        if event == "ivr.node_entered":
            node_type = str(fields.get("type", ""))
            self._overflow_went(session, node_type if node_type in ("voicemail", "callback")
                                else f"node:{fields.get('node', '')}")
            # The call's phase follows the flow: a caller back from an agent (survey, goodbye) is
            # no longer talking; nodes that serve the caller alone name the phase (ccctl calls).
            session.state = PHASE_OF_NODE.get(str(fields.get("type", "")), "ivr")
            session.records.event(session.call_id, "node", node=fields.get("node"), type=fields.get("type"))
            self.publish("ivr.node_entered", call_id=session.call_id, flow=str(fields.get("flow", "")),
                         node=str(fields.get("node", "")), node_type=str(fields.get("type", "")))
        elif event == "ivr.http_result":
            self._http_result(session, fields)
        elif event == "ivr.input_collected":
            variable = fields.get("variable")
            value = fields.get("value")
            session.records.event(session.call_id, "input", node=fields.get("node"), variable=variable, value=value,
                                  **({"sensitive": True} if fields.get("sensitive") else {}))
            if variable:
                session.data[str(variable)] = value
            # A sensitive input (its value arrives masked) goes out without digits at all.
            digits = {} if fields.get("sensitive") else {"digits": str(value if value is not None else "")}
            self.publish("ivr.input_collected", call_id=session.call_id, flow=str(fields.get("flow", "")),
                         node=str(fields.get("node", "")), variable=str(variable or ""), **digits)

    def _overflow_went(self, session: CallSession, target: str) -> None:
        """Publish call.overflowed, if one waits, with where the flow took the caller: voicemail,
        callback, node:ID, or how the flow ended (caller_hangup, end…)."""
        pending, session.pending_overflow = session.pending_overflow, None
        if pending is not None:
            session.records.event(session.call_id, "overflowed", queue=pending["queue"], target=target)
            self.publish("call.overflowed", target=target, **pending)

    def _http_result(self, session: CallSession, fields: dict[str, Any]) -> None:
        """An http node's request: counted by flow, node and outcome (/metrics); a failure is logged
        (node and error, no caller data), kept with the call's record and published (ivr.http_failed)."""
        flow, node, outcome = str(fields.get("flow", "")), str(fields.get("node", "")), str(fields.get("outcome"))
        self.http_outcomes[(flow, node, outcome)] += 1
        if outcome == "ok":
            return
        status, error = int(fields.get("status") or 0), str(fields.get("error") or "")
        log.warning("call %s: IVR flow %s node %s: back-end request failed (%s): %s", session.call_id, flow, node,
                    outcome, error)
        session.records.event(session.call_id, "http_failed", node=node, outcome=outcome, status=status, error=error)
        self.publish("ivr.http_failed", call_id=session.call_id, flow=flow, node=node, outcome=outcome, status=status,
                     error=error)

    async def http_request(self, *, method: str, url: str, headers: Mapping[str, str], body: Any,
                           timeout_seconds: float) -> HttpResponse:
        """An IVR back-end request; failures are an answer (status 0), never an exception."""
        try:
            async with self._http().request(
                    method, url, headers=dict(headers), json=body if body is not None else None,
                    timeout=aiohttp.ClientTimeout(total=timeout_seconds)) as response:
                text = await response.text()
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = None
                return HttpResponse(response.status, payload, text)
        except TimeoutError:
            return HttpResponse(0, error=f"timed out after {timeout_seconds:g} s", timed_out=True)
        except aiohttp.ClientConnectorError as exc:
            return HttpResponse(0, error=f"cannot connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc}")
        except aiohttp.ClientError as exc:
            # Not str(exc): some name the URL, and its query may carry the caller's number.
            return HttpResponse(0, error=type(exc).__name__)


#: The live call's state (`ccctl calls`, /api/calls) while the flow runs a node of this type; other
#: nodes are "ivr" (the queue node then sets "queued", "talking"… itself).
PHASE_OF_NODE = {"survey": "survey", "voicemail": "voicemail", "callback": "callback"}
