"""`ccc-guard --config FILE`: watch the controller; move stranded callers to the fallback route.

Reads the controller's own configuration file (ARI, the fallback context, `guard:`). Runs until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time

import aiohttp

from controller.ari.client import AriClient
from controller.ari.errors import AriError
from controller.config import AmiSettings, Config, load_config
from controller.guard.selection import Stray, strays
from controller.logs import setup_logging
from controller.plugins.ami.services import AmiService, AmiUnavailable
from controller.settings import load_from_command_line

log = logging.getLogger("controller.guard")

#: Set on each caller moved, for the fallback route's CDR userfield (`ccc-fallback:<reason>`).
FALLBACK_REASON = "no-controller"


class Guard:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.settings = config.guard
        # Read-only is enough: it lists channels and bridges (the moves go through AMI).
        self.ari = AriClient(config.ari.url, self.settings.ari_user or config.ari.user,
                             self.settings.ari_password or config.ari.password,
                             request_timeout=config.ari.request_timeout, pool_size=4)
        self.ami = AmiService(AmiSettings(host=config.ami.host, port=config.ami.port,
                                          user=self.settings.ami_user, secret=self.settings.ami_secret))
        self.last_seen = time.monotonic()  # a guard starting without a controller waits the full timeout too
        self.controller_up: bool | None = None
        self.moved = 0
        self._ari_failing = False  # log an ARI outage once, not at every check
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def controller_healthy(self, http: aiohttp.ClientSession) -> bool:
        """A controller answers /healthz and says it is connected to ARI (owns the application), or is a
        standby that reaches the store (it takes the application over within the lease, README
        "Active/standby controllers": moving callers meanwhile would take them from the call center)."""
        try:
            async with http.get(self.config.health_url) as response:
                return controller_present(response.status, await response.json(content_type=None))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False

    async def check_ami_permission(self) -> bool:
        """Whether the guard's AMI user may run call actions: a Setvar on a channel that does not
        exist answers "does not exist" with write permission `call`, "Permission denied" without."""
        try:
            response = await self.ami.action({"Action": "Setvar", "Channel": "ccc-guard-permission-check",
                                              "Variable": "CCC_GUARD_CHECK", "Value": "1"})
        except AmiUnavailable as exc:
            log.warning("AMI not available yet (%s): the guard cannot move callers until it is", exc)
            return False
        if "Permission denied" in str(response.get("Message", "")):
            log.error("AMI user %s lacks write permission `call` (manager.conf): the guard cannot move callers "
                      "to the fallback route", self.settings.ami_user)
            return False
        return True

    async def run(self) -> None:
        self.ari.open()
        await self.ami.connect()
        await self.check_ami_permission()
        log.info("guard watching %s (takeover after %.0f s without a controller)", self.config.health_url,
                 self.settings.takeover_timeout)
        timeout = aiohttp.ClientTimeout(total=min(2.0, self.settings.check_interval * 2))
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                while not self._stop.is_set():
                    await self.check(http)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), self.settings.check_interval)
        finally:
            self.ami.close()
            await self.ari.close()
            log.info("guard stopped")

    async def check(self, http: aiohttp.ClientSession) -> None:
        healthy = await self.controller_healthy(http)
        now = time.monotonic()
        if healthy:
            self.last_seen = now
        if healthy != self.controller_up:
            seen = "not seen since the guard started" if self.controller_up is None else "last seen up"
            self.controller_up = healthy
            if healthy:
                log.info("controller is up")
            else:
                log.warning("no controller owns ARI application %s (%s %.3f s ago); callers go to the fallback route"
                            " in %.0f s", self.config.ari.app, seen, now - self.last_seen,
                            self.settings.takeover_timeout - (now - self.last_seen))
        if not healthy and now - self.last_seen >= self.settings.takeover_timeout:
            await self.sweep()

    async def sweep(self) -> int:
        """Move every stranded caller to the fallback route; returns how many moved."""
        try:
            channels, bridges = await self.ari.channels(), await self.ari.bridges()
        except AriError as exc:
            if not self._ari_failing:
                log.warning("cannot read channels from ARI (%s); trying again every %.0f s",
                            exc.message or exc.status, self.settings.check_interval)
            self._ari_failing = True
            return 0
        self._ari_failing = False
        # A queue's holding bridge stays (emptied, or with callers the next sweeps move) for the next controller
        # to use or remove: the guard's ARI user only reads, and AMI BridgeDestroy on a Stasis bridge leaks a
        # reference in Asterisk 22.10.
        moved = 0
        for stray in strays(channels, bridges, self.config.ari.app):
            if await self._redirect(stray):
                moved += 1
        self.moved += moved
        return moved

    async def _redirect(self, stray: Stray) -> bool:
        fallback = self.config.asterisk.fallback_context
        try:
            await self.ami.action({"Action": "Setvar", "Channel": stray.channel_name,
                                   "Variable": "CCC_FALLBACK", "Value": FALLBACK_REASON})
            response = await self.ami.action({"Action": "Redirect", "Channel": stray.channel_name,
                                              "Context": fallback, "Exten": stray.did, "Priority": "1"})
        except AmiUnavailable as exc:
            log.warning("cannot move channel %s to %s: %s", stray.channel_id, fallback, exc)
            return False
        if response.get("Response") != "Success":
            # Gone meanwhile (hung up), or the AMI user lacks write permission `call`.
            log.warning("AMI Redirect of channel %s to %s refused: %s", stray.channel_id, fallback,
                        response.get("Message"))
            return False
        log.warning("no controller for %.0f s: channel %s moved to the fallback route (%s)%s",
                    self.settings.takeover_timeout, stray.channel_id, fallback,
                    f" out of holding bridge {stray.queue_bridge}" if stray.queue_bridge else "")
        return True


def controller_present(status: int, body: object) -> bool:
    """Whether a /healthz answer says a controller owns the calls now or is about to (a standby)."""
    if not isinstance(body, dict):
        return False
    if status == 200 and body.get("ari_connected"):
        return True
    return body.get("status") == "standby" and bool(body.get("store_reachable"))


def main(argv: list[str] | None = None) -> int:
    config = load_from_command_line(load_config, "ccc-guard", __doc__, argv)
    if config is None:
        return 2
    if not config.guard.ami_secret:
        print("configuration errors:\n  guard.ami_secret: the guard's AMI user needs a secret "
              "(manager.conf user with write = call)", file=sys.stderr)
        return 2
    setup_logging(config.logging.level, config.logging.format, config.logging.show_caller_numbers)
    return asyncio.run(_run(Guard(config)))


async def _run(guard: Guard) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, guard.stop)
    await guard.run()
    return 0
