"""An AMI endpoint speaking app_queue's part of the Asterisk Manager Interface, for wallboards.

Wallboards built for app_queue (qpanel, home-made ones) log in to AMI, poll `QueueStatus` /
`QueueSummary` and listen to the queue events. With the controller as the ACD, Asterisk's own AMI
has none of that, so the controller serves it: point the wallboard at this port instead of 5038.

Actions: Login, Logoff, Ping, Events, QueueStatus, QueueSummary. Events (app_queue's names and
main fields): QueueCallerJoin, QueueCallerLeave, QueueCallerAbandon, AgentCalled, AgentConnect,
AgentComplete, AgentRingNoAnswer, QueueMemberAdded, QueueMemberRemoved, QueueMemberPause,
QueueMemberStatus. They are made from the queue_log entries and CTI events (see services.py).

Off by default (`compat.ami_port: 0`). Logins are checked against `compat.ami_users` in constant
time; a failed login closes the connection; a client that does not read its events is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from controller.config import CompatSettings, Config
from controller.plugins.acd.services import AcdService
from controller.plugins.compat.queue_log import QueueLogEntry
from controller.plugins.cti.services import CtiEvent

log = logging.getLogger("controller.compat.ami")

BANNER = "Asterisk Call Manager/11.0.0\r\n"
#: A client whose unread events pass this many bytes is dropped (a wallboard that hung).
MAX_BACKLOG = 1 << 20
#: Asterisk's device states (QueueMember Status, QueueMemberStatus) for our agent states.
DEVICE_STATE = {"ready": 1, "not_ready": 1, "acw": 1, "talking": 2, "on_hold": 8, "ringing": 6, "logged_out": 5}
#: Our strategies as app_queue names them.
STRATEGY = {"longest_idle": "leastrecent", "fewest_calls": "fewestcalls", "round_robin": "rrmemory",
            "ring_all": "ringall", "skills": "linear"}
COMPLETE_REASON = {"COMPLETECALLER": "caller", "COMPLETEAGENT": "agent", "BLINDTRANSFER": "transfer",
                   "ATTENDEDTRANSFER": "transfer"}

Message = list[tuple[str, str]]


def encode(message: Message) -> bytes:
    return ("".join(f"{key}: {value}\r\n" for key, value in message) + "\r\n").encode()


@dataclass(eq=False)
class _Session:
    writer: asyncio.StreamWriter
    user: str | None = None
    events: bool = True

    def send(self, message: Message) -> bool:
        """Queue a message; False when the client is too far behind (it is then dropped)."""
        if self.writer.is_closing():
            return False
        if self.writer.transport.get_write_buffer_size() > MAX_BACKLOG:
            self.writer.close()
            return False
        self.writer.write(encode(message))
        return True


class AmiServer:
    def __init__(self, config: Config, acd: AcdService) -> None:
        self.settings: CompatSettings = config.compat
        self.acd = acd
        self.agent_format = config.compat.queue_log.agent_format
        self._sessions: set[_Session] = set()
        self._callers: dict[str, str] = {}
        self._server: asyncio.Server | None = None
        self.logins = 0

    # -- the server ----------------------------------------------------------------------------------

    async def serve(self) -> asyncio.Server:
        self._server = await asyncio.start_server(self._client, self.settings.ami_listen, self.settings.ami_port)
        log.info("AMI queue events on %s:%d", self.settings.ami_listen, self.settings.ami_port)
        return self._server

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self._sessions):
            session.writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        self._sessions.add(session)
        writer.write(BANNER.encode())
        try:
            while True:
                request = await self._read_message(reader)
                if request is None:
                    break
                if not await self._handle(session, request):
                    break
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._sessions.discard(session)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    async def _read_message(reader: asyncio.StreamReader) -> dict[str, str] | None:
        """One request: `Key: value` lines up to a blank line (keys case-insensitive, as Asterisk reads them)."""
        fields: dict[str, str] = {}
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=3600)
            if not line:
                return None
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if not text:
                if fields:
                    return fields
                continue
            key, _, value = text.partition(":")
            fields[key.strip().lower()] = value.strip()
            if len(fields) > 64:
                raise ValueError("request too large")

    async def _handle(self, session: _Session, request: dict[str, str]) -> bool:
        """Answer one action; False to close the connection."""
        action = request.get("action", "").lower()
        ids = [("ActionID", request["actionid"])] if "actionid" in request else []
        if action == "login":
            return self._login(session, request, ids)
        if action == "logoff":
            session.send([("Response", "Goodbye"), *ids, ("Message", "Thanks for all the fish.")])
            return False
        if session.user is None:
            session.send([("Response", "Error"), *ids, ("Message", "Permission denied")])
            return True
        if action == "ping":
            session.send([("Response", "Success"), *ids, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])
        elif action == "events":
            session.events = request.get("eventmask", "on").lower() not in ("off", "none")
            session.send([("Response", "Success"), *ids, ("Events", "On" if session.events else "Off")])
        elif action == "queuestatus":
            self._send_list(session, ids, "Queue status will follow", "QueueStatusComplete",
                             self.queue_status(request.get("queue") or None))
        elif action == "queuesummary":
            self._send_list(session, ids, "Queue summary will follow", "QueueSummaryComplete",
                            self.queue_summary(request.get("queue") or None))
        else:
            session.send([("Response", "Error"), *ids, ("Message", "Invalid/unknown command")])
        return True

    def _login(self, session: _Session, request: dict[str, str], ids: Message) -> bool:
        user, secret = request.get("username", ""), request.get("secret", "")
        expected = self.settings.ami_users.get(user)
        # Compare even for an unknown user, so the time taken says nothing about which users exist.
        matches = hmac.compare_digest(secret.encode(), (expected or "\0" + secret).encode())
        if expected is None or not matches:
            log.warning("AMI login refused for user %r", user)
            session.send([("Response", "Error"), *ids, ("Message", "Authentication failed")])
            return False
        session.user = user
        session.events = request.get("events", "on").lower() not in ("off", "none")
        self.logins += 1
        session.send([("Response", "Success"), *ids, ("Message", "Authentication accepted")])
        if session.events:
            session.send([("Event", "FullyBooted"), ("Privilege", "system,all"), ("Status", "Fully Booted")])
        return True

    @staticmethod
    def _send_list(session: _Session, ids: Message, intro: str, complete: str, items: list[Message]) -> None:
        session.send([("Response", "Success"), *ids, ("EventList", "start"), ("Message", intro)])
        for item in items:
            session.send([item[0], *ids, *item[1:]])
        session.send([("Event", complete), *ids, ("EventList", "Complete"), ("ListItems", str(len(items)))])

    # -- state, as app_queue reports it --------------------------------------------------------------

    @property
    def endpoints(self) -> dict[str, str]:
        """The agents' phones as configured now (live configuration)."""
        return {agent.id: agent.endpoint for agent in self.acd.agent_configs.values()}

    @property
    def agent_queues(self) -> dict[str, dict[str, int]]:
        """Each agent's queues and penalties as configured now (live configuration)."""
        return {agent.id: dict(agent.queues) for agent in self.acd.agent_configs.values()}

    def member_name(self, agent_id: str) -> str:
        return self.agent_format.format(id=agent_id)

    def interface(self, agent_id: str) -> str:
        return f"PJSIP/{self.endpoints.get(agent_id, agent_id)}"

    def _members(self, queue: str) -> Iterable[tuple[str, int]]:
        for agent_id, queues in self.agent_queues.items():
            if queue in queues:
                yield agent_id, queues[queue]

    def queue_status(self, only: str | None) -> list[Message]:
        engine = self.acd.engine
        items: list[Message] = []
        for stats in engine.queues():
            if only is not None and stats.name != only:
                continue
            queue = self.acd.queue_configs[stats.name]
            items.append([("Event", "QueueParams"), ("Queue", stats.name), ("Max", "0"),
                          ("Strategy", STRATEGY.get(queue.strategy, queue.strategy)), ("Calls", str(stats.waiting)),
                          ("Holdtime", "0"), ("TalkTime", "0"), ("Completed", str(stats.answered)),
                          ("Abandoned", str(stats.abandoned)), ("ServiceLevel", str(int(queue.service_level_seconds))),
                          ("ServicelevelPerf", f"{(stats.service_level or 0.0) * 100:.1f}"), ("Weight", "0")])
            for agent_id, penalty in self._members(stats.name):
                agent = engine.agent(agent_id)
                if agent.state == "logged_out":
                    continue
                items.append([("Event", "QueueMember"), ("Queue", stats.name), ("Name", self.member_name(agent_id)),
                              ("Location", self.interface(agent_id)), ("StateInterface", self.interface(agent_id)),
                              ("Membership", "dynamic"), ("Penalty", str(penalty)),
                              ("CallsTaken", str(agent.calls_answered)), ("LastCall", "0"), ("LastPause", "0"),
                              ("LoginTime", str(int(agent.logged_in_at or 0))),
                              ("InCall", "1" if agent.state in ("talking", "on_hold") else "0"),
                              ("Status", str(DEVICE_STATE.get(agent.state, 5))),
                              ("Paused", "1" if agent.state == "not_ready" else "0"),
                              ("PausedReason", agent.reason or "" if agent.state == "not_ready" else ""),
                              ("Wrapuptime", str(int(queue.wrapup_seconds)))])
            for call in engine.waiting(stats.name):
                caller = self._callers.get(call.call_id, "")
                items.append([("Event", "QueueEntry"), ("Queue", stats.name), ("Position", str(call.position)),
                              ("Channel", f"ccc/{call.call_id}"), ("Uniqueid", call.call_id),
                              ("CallerIDNum", caller or "unknown"), ("CallerIDName", "unknown"),
                              ("ConnectedLineNum", "unknown"), ("ConnectedLineName", "unknown"),
                              ("Wait", str(int(call.waited))),
                              ("Priority", str(call.priority))])
        return items

    def queue_summary(self, only: str | None) -> list[Message]:
        items: list[Message] = []
        for stats in self.acd.engine.queues():
            if only is None or stats.name == only:
                items.append([("Event", "QueueSummary"), ("Queue", stats.name),
                              ("LoggedIn", str(stats.agents_logged_in)), ("Available", str(stats.agents_ready)),
                              ("Callers", str(stats.waiting)), ("HoldTime", "0"), ("TalkTime", "0"),
                              ("LongestHoldTime", str(int(stats.longest_wait)))])
        return items

    # -- events -------------------------------------------------------------------------------------

    def on_event(self, event: CtiEvent, entries: list[QueueLogEntry]) -> None:
        """From the compat service: a CTI event and the queue_log entries it made."""
        if event.type == "call.offered" and event.call_id:
            self._callers[event.call_id] = str(event.data.get("caller") or "")
        elif event.type == "call.ended" and event.call_id:
            self._callers.pop(event.call_id, None)
        if not any(session.user and session.events for session in self._sessions):
            return  # nobody listens: nothing is built
        messages = list(self._messages(event, entries))
        for session in list(self._sessions):
            if session.user and session.events:
                for message in messages:
                    if not session.send(message):
                        self._sessions.discard(session)
                        break

    def _messages(self, event: CtiEvent, entries: list[QueueLogEntry]) -> Iterable[Message]:
        agent_id = event.agent_id or ""
        member: Message = [("Interface", self.interface(agent_id)), ("MemberName", self.member_name(agent_id))]
        caller = [("Uniqueid", event.call_id or ""), ("CallerIDNum", self._callers.get(event.call_id or "", ""))]
        if event.type == "call.ringing" and event.queue:
            yield [("Event", "AgentCalled"), ("Privilege", "agent,all"), ("Queue", event.queue), *caller, *member]
        elif event.type == "agent.state_changed":
            state = str(event.data.get("state"))
            for queue, penalty in self.agent_queues.get(agent_id, {}).items():
                yield [("Event", "QueueMemberStatus"), ("Privilege", "agent,all"), ("Queue", queue), *member,
                       ("StateInterface", self.interface(agent_id)), ("Penalty", str(penalty)),
                       ("Status", str(DEVICE_STATE.get(state, 5))), ("Paused", "1" if state == "not_ready" else "0"),
                       ("InCall", "1" if state in ("talking", "on_hold") else "0")]
        for entry in entries:
            yield from self._from_entry(entry, caller, member)

    def _count(self, queue: str) -> str:
        """How many callers wait in the queue now (Count of QueueCallerJoin / Leave)."""
        return str(self.acd.engine.queue_stats(queue).waiting) if queue in self.acd.queue_configs else "0"

    def _from_entry(self, entry: QueueLogEntry, caller: Message, member: Message) -> Iterable[Message]:
        queue, data, name = entry.queuename, entry.data, entry.event
        head: Message = [("Privilege", "agent,all"), ("Queue", queue)]
        if name == "ENTERQUEUE":
            yield [("Event", "QueueCallerJoin"), *head, *caller, ("Position", data[2]), ("Count", self._count(queue))]
        elif name == "CONNECT":
            yield [("Event", "QueueCallerLeave"), *head, *caller, ("Position", "1"), ("Count", self._count(queue))]
            yield [("Event", "AgentConnect"), *head, *caller, *member, ("HoldTime", data[0]), ("RingTime", data[2]),
                   ("DestUniqueid", data[1])]
        elif name in COMPLETE_REASON:
            hold, talk = (data[0], data[1]) if name.startswith("COMPLETE") else (data[-3], data[-2])
            yield [("Event", "AgentComplete"), *head, *caller, *member, ("HoldTime", hold), ("TalkTime", talk),
                   ("Reason", COMPLETE_REASON[name])]
        elif name in ("ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY"):
            # app_queue counts a timed-out caller as abandoned too (record_abandoned): same events.
            yield [("Event", "QueueCallerAbandon"), *head, *caller, ("Position", data[0]),
                   ("OriginalPosition", data[1]), ("HoldTime", data[2])]
            yield [("Event", "QueueCallerLeave"), *head, *caller, ("Position", data[0]), ("Count", self._count(queue))]
        elif name == "RINGNOANSWER":
            yield [("Event", "AgentRingNoAnswer"), *head, *caller, *member, ("RingTime", data[0])]
        elif name in ("ADDMEMBER", "REMOVEMEMBER"):
            yield [("Event", "QueueMemberAdded" if name == "ADDMEMBER" else "QueueMemberRemoved"), *head, *member,
                   ("Paused", "1" if data and data[0] == "PAUSED" else "0")]
        elif name in ("PAUSE", "UNPAUSE"):
            yield [("Event", "QueueMemberPause"), *head, *member, ("Paused", "1" if name == "PAUSE" else "0"),
                   ("PausedReason", data[0] if data else "")]

