"""AMI, logged in when used, for what ARI does not give.

Trunk registration and qualify state, DAHDI/PRI span alarms, `core show channels` counts, and
dialplan reload after `dialplans/` changes. The connection is opened by the first action and closed
after `idle_close` seconds without one: Asterisk 22.10 wakes every AMI session's thread for every AMI
event it publishes (`main/manager.c`, a SIGURG per event, whatever the session's `Events:` say), and
builds those events at all only while some session is logged in; an idle connection cost Asterisk
that on each of its ~40 events a call (README "Benchmarks"). Every action has a timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from panoramisk import Manager

from controller.config import AmiSettings

log = logging.getLogger("controller.ami")

#: Seconds without an action after which the AMI connection is closed (the next action logs in again). Enough
#: for the actions of one request, one after another, and for requests made together (the console's trunks and
#: status) to share a login; short, because Asterisk builds its AMI events, for every call, as long as a session
#: is up: at 2 s, an open console's poll every 10 s kept one up ~20 % of the time, now ~3 %.
IDLE_CLOSE_SECONDS = 0.25
#: Seconds after a failed login during which actions fail at once instead of trying again (as panoramisk's
#: reconnect period did): a status page or a guard's sweep does not wait for a dead server once per action.
RETRY_LOGIN_AFTER_SECONDS = 2.0


class AmiUnavailable(Exception):
    """AMI could not be reached or did not answer in time."""


@dataclass(frozen=True)
class TrunkState:
    name: str
    kind: str  # "pjsip" or "dahdi"
    registration: str  # Registered / Unregistered / Rejected / "-" (no outbound registration)
    qualify: str  # Reachable / Unreachable / Unknown / "-" (not qualified)
    contacts: str
    channels: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _OnDemandManager(Manager):  # type: ignore[misc]
    """panoramisk's Manager without its reconnect loop: a dropped link stays down until the next action."""

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # the login waiting for it reports the failure (panoramisk would retry on its own)
        super().connection_made(f)

    def connection_lost(self, exc: object) -> None:
        self._connected = False
        pinger: asyncio.TimerHandle | None = getattr(self, "pinger", None)
        if pinger is not None:
            pinger.cancel()
            self.pinger = None
        self.loop.call_soon(self.on_disconnect, self, exc)


class AmiService:
    def __init__(self, settings: AmiSettings, *, action_timeout: float = 5.0,
                 idle_close: float = IDLE_CLOSE_SECONDS) -> None:
        self.settings = settings
        self.action_timeout = action_timeout
        self.idle_close = idle_close
        self._manager: Manager | None = None
        self.logins = 0
        self._link_up = False
        self._reachable: bool | None = None  # the last login's outcome (None: not tried yet)
        self._login_failed_at = float("-inf")  # time.monotonic() of the last failed login
        self._login_lock = asyncio.Lock()
        self._in_flight = 0
        self._idle_timer: asyncio.TimerHandle | None = None

    @property
    def connected(self) -> bool:
        """Whether a connection is logged in now (it is closed between uses)."""
        return self._manager is not None and self._link_up

    @property
    def reachable(self) -> bool:
        """Whether the last login worked: the connection is up, or was closed for being idle."""
        return self.connected or bool(self._reachable)

    async def connect(self) -> None:
        """Log in now (a check of the address and credentials at start-up: a failure is logged, and each
        action tries again); the connection closes once idle."""
        try:
            await self._ensure_logged_in()
        except AmiUnavailable as exc:
            log.warning("AMI not reachable at %s:%d (%s); each action tries again", self.settings.host,
                        self.settings.port, exc)
            return
        self._arm_idle_close()

    async def _ensure_logged_in(self) -> Manager:
        async with self._login_lock:
            if self._manager is not None and self._link_up:
                return self._manager
            if time.monotonic() - self._login_failed_at < RETRY_LOGIN_AFTER_SECONDS:
                raise AmiUnavailable("AMI login failed moments ago")
            self._drop()
            # Events off: we only send actions (their list responses still come).
            manager = _OnDemandManager(host=self.settings.host, port=self.settings.port,
                                       username=self.settings.user, secret=self.settings.secret, ping_delay=10,
                                       events="off")
            logged_in = asyncio.Event()
            manager.on_login = lambda m: self._on_login(m, logged_in)
            manager.on_disconnect = self._on_disconnect
            self._manager = manager
            try:
                async with asyncio.timeout(self.action_timeout):
                    await manager.connect()
                    await logged_in.wait()
            except (OSError, TimeoutError) as exc:
                self._reachable = False
                self._login_failed_at = time.monotonic()
                self._drop()
                raise AmiUnavailable(f"AMI login failed: {type(exc).__name__}") from exc
            return manager

    def _on_login(self, manager: Manager, logged_in: asyncio.Event) -> None:
        if manager is not self._manager:
            return
        self.logins += 1
        self._link_up = self._reachable = True
        logged_in.set()
        log.debug("AMI logged in (%d)", self.logins)

    def _on_disconnect(self, manager: Manager, exc: object) -> None:
        if manager is not self._manager:
            return  # one we closed
        self._link_up = False
        self._manager = None
        log.warning("AMI connection lost (%s); the next action logs in again", exc)

    def _arm_idle_close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = asyncio.get_running_loop().call_later(self.idle_close, self._close_if_idle)

    def _close_if_idle(self) -> None:
        self._idle_timer = None
        if self._in_flight:
            return  # the last one to finish arms it again
        self._drop()

    def _drop(self) -> None:
        self._link_up = False
        if self._manager is not None:
            manager, self._manager = self._manager, None
            manager.close()

    def close(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._drop()

    async def action(self, action: dict[str, str]) -> Any:
        self._in_flight += 1
        try:
            manager = await self._ensure_logged_in()
            async with asyncio.timeout(self.action_timeout):
                return await manager.send_action(action)
        except (TimeoutError, OSError) as exc:
            raise AmiUnavailable(f"AMI action {action.get('Action')} failed: {type(exc).__name__}") from exc
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._arm_idle_close()

    async def command(self, cli: str) -> list[str]:
        return command_output(await self.action({"Action": "Command", "Command": cli}))

    async def channel_counts(self) -> dict[str, int]:
        """Parse `core show channels count`: active channels, active calls, calls processed."""
        counts: dict[str, int] = {}
        for line in await self.command("core show channels count"):
            number, _, label = line.partition(" ")
            if number.isdigit():
                counts[label.strip().replace(" ", "_")] = int(number)
        return counts

    async def reload_dialplan(self) -> list[str]:
        return await self.command("dialplan reload")

    async def trunks(self, is_phone: Callable[[str], bool] = lambda name: False) -> list[TrunkState]:
        """PJSIP endpoints that are trunks: not numbered phones (8001) nor what `is_phone` says is one (an
        agent's browser phone, `webrtc-1001`)."""
        registrations: dict[str, str] = {}
        for item in _events(await self.action({"Action": "PJSIPShowRegistrationsOutbound"})):
            if item.get("Event") == "OutboundRegistrationDetail":
                registrations[item.get("Endpoint") or item.get("ObjectName", "")] = item.get("Status", "?")
        trunks = []
        for item in _events(await self.action({"Action": "PJSIPShowEndpoints"})):
            if item.get("Event") != "EndpointList":
                continue
            name = item.get("ObjectName", "")
            if name.isdigit() or is_phone(name):  # phones: numbered endpoints, agents' browser phones
                continue
            contacts = item.get("Contacts", "").rstrip(",")
            trunks.append(TrunkState(
                name=name, kind="pjsip", registration=registrations.get(name, "-"),
                qualify=_device_state_to_qualify(item.get("DeviceState", "")),
                contacts=contacts or "-", channels=int(item.get("ActiveChannels") or 0)))
        return trunks

    async def dahdi_spans(self) -> list[dict[str, str]] | None:
        """DAHDI span alarms, or None when chan_dahdi is not loaded on this Asterisk."""
        response = await self.action({"Action": "DAHDIShowStatus"})
        if not isinstance(response, list):
            return None if response.get("Response") == "Error" else []
        return [dict(item) for item in response if item.get("Event") == "DAHDIShowStatus"]


def command_output(response: Any) -> list[str]:
    """The lines a `Command` action printed (none when it was refused)."""
    output = response.get("Output", [])
    return [output] if isinstance(output, str) else list(output)


def _events(response: Any) -> list[dict[str, str]]:
    items = response if isinstance(response, list) else [response]
    return [dict(item) for item in items]


def _device_state_to_qualify(state: str) -> str:
    if state in ("Unavailable",):
        return "Unreachable"
    if state in ("Not in use", "In use", "Busy", "Ringing", "Ring+Inuse", "On Hold"):
        return "Reachable"
    return state or "Unknown"
