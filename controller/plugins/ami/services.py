"""One authenticated AMI connection, kept up, for what ARI does not give.

Trunk registration and qualify state, DAHDI/PRI span alarms, `core show channels` counts, and
dialplan reload after `dialplans/` changes. panoramisk reconnects by itself after the connection
drops (an Asterisk restart); `connected` says whether it is up now. Every action has a timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from panoramisk import Manager

from controller.config import AmiSettings

log = logging.getLogger("controller.ami")


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


class AmiService:
    def __init__(self, settings: AmiSettings, *, action_timeout: float = 5.0) -> None:
        self.settings = settings
        self.action_timeout = action_timeout
        self._manager: Manager | None = None
        self.logins = 0
        self._logged_in = asyncio.Event()
        self._link_up = False
        self._retry: asyncio.TimerHandle | None = None  # the first connect's retry (panoramisk does later ones)

    @property
    def connected(self) -> bool:
        # panoramisk keeps `authenticated` after the link drops (and queues actions until it is back):
        # our own flag follows its login and disconnect callbacks, so a dead link fails at once.
        return self._manager is not None and self._link_up

    async def connect(self) -> None:
        """Log in once; after that panoramisk reconnects by itself (every 2 s) when the link drops."""
        # Events off: we only send actions (their list responses still come). With events on,
        # Asterisk streams ~9 events per call that we would parse for nothing.
        manager = Manager(host=self.settings.host, port=self.settings.port, username=self.settings.user,
                          secret=self.settings.secret, ping_delay=10, reconnect_timeout=2, events="off")
        manager.on_login = self._on_login  # called at every (re)login
        manager.on_disconnect = self._on_disconnect
        self._manager = manager
        self._logged_in.clear()
        try:
            async with asyncio.timeout(self.action_timeout):
                await manager.connect()
                await self._logged_in.wait()
        except (OSError, TimeoutError) as exc:
            log.warning("AMI not reachable at %s:%d (%s); will retry", self.settings.host, self.settings.port,
                        type(exc).__name__)
            self._retry = manager.loop.call_later(2, manager.connect)

    def _on_login(self, manager: Manager) -> None:
        self.logins += 1
        self._link_up = True
        self._logged_in.set()
        log.info("AMI logged in (%d)", self.logins)

    def _on_disconnect(self, manager: Manager, exc: object) -> None:
        self._link_up = False
        log.warning("AMI connection lost; panoramisk reconnects every %d s", manager.reconnect_timeout)

    def close(self) -> None:
        self._link_up = False
        if self._retry is not None:
            self._retry.cancel()
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    async def action(self, action: dict[str, str]) -> Any:
        if not self.connected or self._manager is None:
            raise AmiUnavailable("AMI is not connected")
        try:
            async with asyncio.timeout(self.action_timeout):
                return await self._manager.send_action(action)
        except (TimeoutError, OSError) as exc:
            raise AmiUnavailable(f"AMI action {action.get('Action')} failed: {type(exc).__name__}") from exc

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
