"""Call recording: one mixed file per call, across holds and transfers, with pause/resume.

A snoop channel on the caller's channel (spy both: what the caller says and hears) is recorded
by Asterisk into `<recordings_dir>/<name>.wav`. The caller's channel stays the same whoever the
caller talks to, so one file covers the whole call. "Pause" mutes the recording rather than
stopping it: the paused span is written as silence, so the file keeps the call's timeline (a
card number read during a pause is never written) and offsets in the index match the audio.

Policy per flow and per queue (`recording: always | never | on_demand`): `always` starts when the
call enters the flow (or the first agent of the queue answers) and cannot be stopped through the
API; `never` cannot be started through the API; `on_demand` when an agent (or supervisor, or
integration) asks through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.ari.client import AriClient, new_id
from controller.ari.errors import AriError
from controller.config import DEFAULT_NODE, Config
from controller.plugins.calls.legs import start_snoop
from controller.plugins.calls.live_state import LiveCallState
from controller.plugins.calls.services import CallHandler, Resumption, stored_node
from controller.plugins.calls.session import CallSession
from controller.plugins.recordings.state_persistor import RecordingIndex

log = logging.getLogger("controller.recordings")

Publish = Callable[..., Any]


class RecordingError(Exception):
    """The operation does not fit the call (not recording, already paused, …): nothing changed."""


def effective_policy(flow_policy: str, queue_policy: str | None) -> str:
    """A call's recording policy: its flow's `never` or `always` decides; otherwise the policy of the
    queue it is in (`on_demand` outside queues). The same rule as the automatic path (a `never` flow
    is not recorded by an `always` queue; an `always` flow records whatever the queue says)."""
    if flow_policy in ("never", "always"):
        return flow_policy
    return queue_policy or "on_demand"


def policy_refusal(policy: str, action: str) -> str | None:
    """Why the API may not `action` (start, pause, resume, stop) a recording under `policy` (None: it may).
    Pausing an `always` recording stays possible: that is how a card number is kept out of it."""
    if action == "start" and policy == "never":
        return "the call's recording policy is 'never' (its flow or queue): it may not be recorded"
    if action == "stop" and policy == "always":
        return ("the call's recording policy is 'always' (its flow or queue): the recording cannot be stopped"
                " (pause it while sensitive data is read)")
    return None


@dataclass
class LiveCallRecording:
    name: str
    call_id: str
    snoop_id: str
    started: float  # monotonic
    agents: list[str] = field(default_factory=list)
    pauses: list[list[float | None]] = field(default_factory=list)  # [start, end] seconds into the file
    queue: str | None = None
    node: str = DEFAULT_NODE  # the Asterisk server the call and its snoop are on

    @property
    def paused(self) -> bool:
        return bool(self.pauses) and self.pauses[-1][1] is None

    def offset(self) -> float:
        return round(time.monotonic() - self.started, 3)


class RecordingService:
    def __init__(self, *, config: Config, ari: AriClient, index: RecordingIndex, publish: Publish) -> None:
        self.config = config
        self.ari = ari
        self.node_client: Callable[[str], AriClient] = lambda _node: self.ari  # several nodes: set by the app
        self.index = index
        self.publish = publish
        self.live: dict[str, LiveCallRecording] = {}  # call id -> its recording
        self.picture: LiveCallState | None = None  # the live-call picture: the "recording" part is ours

    def _save(self, recording: LiveCallRecording) -> None:
        """Persist the "recording" part (started, agents and pauses changed)."""
        if self.picture is not None:
            self.picture.save(recording.call_id, "recording", {
                "name": recording.name, "snoop_id": recording.snoop_id, "agents": recording.agents,
                "pauses": recording.pauses, "started_at": time.time() - (time.monotonic() - recording.started),
                "queue": recording.queue})

    def file_of(self, name: str) -> Path:
        return Path(self.config.asterisk.recordings_dir) / f"{name}.wav"

    async def start(self, session: CallSession, *, queue: str | None, agent_id: str | None,
                    reason: str) -> LiveCallRecording:
        """Record the call from now to its end (or `stop`); a call already recording keeps its file."""
        current = self.live.get(session.call_id)
        if current is not None:
            if agent_id and agent_id not in current.agents:
                current.agents.append(agent_id)
                self.index.agents(current.name, current.agents)
                self._save(current)
            return current
        name = f"call-{time.strftime('%Y%m%d-%H%M%S')}-{session.call_id[:12]}"
        snoop_id = new_id("snoop")
        # The snoop channel and the recording report to the call's own inbox (and are ignored there).
        session.dispatcher.claim(name, session)
        try:
            await start_snoop(session, session.channel_id, snoop_id, spy="both", app=self.config.ari.app)
            await session.ari.record(snoop_id, name, fmt="wav", if_exists="overwrite")
        except AriError as exc:
            session.dispatcher.release(snoop_id)
            session.dispatcher.release(name)
            with contextlib.suppress(AriError):
                await session.ari.hangup(snoop_id)
            raise RecordingError(f"cannot record the call: {exc.message}") from exc
        recording = LiveCallRecording(name, session.call_id, snoop_id, time.monotonic(),
                                      [agent_id] if agent_id else [], queue=queue, node=session.ari.node)
        self.live[session.call_id] = recording
        self._save(recording)
        self.index.started(name=name, call_id=session.call_id, caller=session.caller, queue=queue,
                           agents=recording.agents, file=str(self.file_of(name)), reason=reason)
        session.records.event(session.call_id, "recording_started", recording=name, reason=reason)
        session.on_finish.append(lambda: self.stop(session.call_id))
        self.publish("recording.started", call_id=session.call_id, agent_id=agent_id, recording=name)
        log.info("call %s: recording %s (%s)", session.call_id, name, reason)
        return recording

    def _live(self, call_id: str) -> LiveCallRecording:
        recording = self.live.get(call_id)
        if recording is None:
            raise RecordingError("the call is not being recorded")
        return recording

    async def pause(self, call_id: str) -> LiveCallRecording:
        recording = self._live(call_id)
        if recording.paused:
            raise RecordingError("the recording is already paused")
        await self.node_client(recording.node).request("recordings.mute", {"recordingName": recording.name})
        recording.pauses.append([recording.offset(), None])
        self.index.pauses(recording.name, recording.pauses)
        self._save(recording)
        self.publish("recording.paused", call_id=call_id, recording=recording.name)
        return recording

    async def resume(self, call_id: str) -> LiveCallRecording:
        recording = self._live(call_id)
        if not recording.paused:
            raise RecordingError("the recording is not paused")
        await self.node_client(recording.node).request("recordings.unmute", {"recordingName": recording.name})
        recording.pauses[-1][1] = recording.offset()
        self.index.pauses(recording.name, recording.pauses)
        self._save(recording)
        self.publish("recording.resumed", call_id=call_id, recording=recording.name)
        return recording

    async def stop(self, call_id: str) -> LiveCallRecording | None:
        """End the recording (at the end of the call, or on demand) and complete its index row."""
        recording = self.live.pop(call_id, None)
        if recording is None:
            return None
        duration = time.monotonic() - recording.started
        if recording.paused:
            recording.pauses[-1][1] = round(duration, 3)
        with contextlib.suppress(AriError):  # gone already when the caller hung up: the file is complete
            await self.node_client(recording.node).stop_recording(recording.name)
        with contextlib.suppress(AriError):
            await self.node_client(recording.node).hangup(recording.snoop_id)
        await self._restrict(self.file_of(recording.name))
        self.index.finished(recording.name, duration=duration, pauses=recording.pauses)
        if self.picture is not None:
            self.picture.drop(call_id, "recording")
        self.publish("recording.stopped", call_id=call_id, recording=recording.name, duration=round(duration, 3))
        return recording

    # -- resume after a restart ---------------------------------------------------------------------

    async def resume_recording(self, resumption: Resumption) -> CallHandler | None:
        """The call's recording goes on in the same file: Asterisk kept recording the snoop while no process
        was there; take the snoop and the recording over (pauses so far kept). Takes no call over (None)."""
        session, part = resumption.session, resumption.parts["recording"]
        name, snoop_id = str(part.get("name")), str(part.get("snoop_id"))
        started_at = float(part.get("started_at") or time.time())
        pauses = [list(pause) for pause in part.get("pauses") or []]
        if snoop_id not in resumption.channels:
            # The recording ended while we were away (its snoop is gone): complete its index row.
            await self._finish_unattended(name, started_at, pauses)
            if self.picture is not None:
                self.picture.drop(session.call_id, "recording")
            return None
        session.dispatcher.claim(snoop_id, session)
        session.dispatcher.claim(name, session)
        recording = LiveCallRecording(name, session.call_id, snoop_id,
                                      time.monotonic() - max(0.0, time.time() - started_at),
                                      list(part.get("agents") or []), pauses, queue=part.get("queue"),
                                      node=session.ari.node)
        self.live[session.call_id] = recording
        session.on_finish.append(lambda: self.stop(session.call_id))
        log.info("call %s: recording %s goes on", session.call_id, name)
        return None

    async def close_recording(self, call_id: str, parts: dict[str, dict[str, Any]]) -> str | None:
        """The call ended while no process was there: the file is complete; complete its index row."""
        part = parts["recording"]
        snoop_id = part.get("snoop_id")
        if snoop_id:
            with contextlib.suppress(AriError):
                await self.node_client(stored_node(parts)).hangup(str(snoop_id))
        await self._finish_unattended(str(part.get("name")), float(part.get("started_at") or time.time()),
                                      [list(pause) for pause in part.get("pauses") or []])
        return None

    async def _finish_unattended(self, name: str, started_at: float, pauses: list[list[Any]]) -> None:
        """Complete the index row of a recording that ended unobserved: its duration is the file's."""
        path = self.file_of(name)
        try:
            duration = await asyncio.to_thread(wav_seconds, path)
        except (OSError, wave.Error, EOFError):
            duration = max(0.0, time.time() - started_at)
        if pauses and pauses[-1][1] is None:
            pauses[-1][1] = round(duration, 3)
        await self._restrict(path)
        self.index.finished(name, duration=duration, pauses=pauses)

    async def _restrict(self, path: Path) -> None:
        """Recordings are readable by their owner only (run Asterisk and the controller as one user)."""
        try:
            await asyncio.to_thread(os.chmod, path, 0o600)
        except FileNotFoundError:
            pass  # nothing was written (the caller hung up at once)
        except OSError as exc:
            log.warning("recording %s: cannot restrict its permissions: %s", path.name, exc)

    async def run(self, every_seconds: float = 3600.0) -> None:
        """The retention job: every hour, delete recordings older than `recordings_retention_days`."""
        days = self.config.asterisk.recordings_retention_days
        if days <= 0:
            return
        while True:
            try:
                removed = await self.purge(days)
            except Exception as exc:  # e.g. the store cannot be read: try again next time, never end the controller
                log.error("recordings: retention stopped early (%s: %s); trying again in %g s",
                          type(exc).__name__, exc, every_seconds)
            else:
                if removed:
                    log.info("recordings: %d older than %g days deleted", removed, days)
            await asyncio.sleep(every_seconds)

    async def purge(self, older_than_days: float, now: float | None = None) -> int:
        """Retention: delete recordings (files and index rows marked) older than this many days."""
        cutoff = (now if now is not None else time.time()) - older_than_days * 86400
        removed = 0
        for row in await self.index.older_than(cutoff):
            await asyncio.to_thread(Path(row["file"]).unlink, missing_ok=True)
            self.index.deleted(row["id"])
            removed += 1
        return removed


def wav_seconds(path: Path) -> float:
    """A WAV file's length in seconds (from its header)."""
    with wave.open(str(path), "rb") as audio:
        return round(audio.getnframes() / float(audio.getframerate() or 8000), 3)
