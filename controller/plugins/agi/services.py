"""The FastAGI entry points existing dialplan can call.

    AGI(agi://127.0.0.1/route)              which flow / extension serves this caller and DID
    AGI(agi://127.0.0.1/ivr?flow=hotline)   hand the call to a flow (the controller takes it into Stasis)
    AGI(agi://127.0.0.1/lookup)             the caller's region and customer tier

Every entry point sets CCC_STATUS (OK or FAILED) and, on failure, CCC_ERROR with the reason, then
returns: the dialplan always continues, so it can branch on CCC_STATUS. Nothing waits forever.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Iterator

from controller.logs import mask_number
from controller.lookup import caller_region, is_phone_number
from controller.plugins.agi.server import AgiRequest, FastAgiServer

log = logging.getLogger("controller.agi")

FlowForDid = Callable[[str], str | None]
FlowExists = Callable[[str], bool]
TierOf = Callable[[str], Awaitable[str]]
#: Tells the calls service that this channel is handed over with this flow (a context manager:
#: the promise ends when the hand-over does).
ExpectHandover = Callable[[str, str], contextlib.AbstractContextManager[None]]
_DID = re.compile(r"[0-9]{1,32}")


@contextlib.contextmanager
def _no_handover_check(channel_id: str, flow: str) -> Iterator[None]:
    yield


class AgiService:
    def __init__(self, *, app_name: str, flow_for_did: FlowForDid, flow_exists: FlowExists, tier_of: TierOf,
                 connected: Callable[[], bool], expect_handover: ExpectHandover = _no_handover_check,
                 handover_timeout: float = 4 * 3600.0) -> None:
        self.app_name = app_name
        self.flow_for_did = flow_for_did
        self.flow_exists = flow_exists
        self.tier_of = tier_of
        self.connected = connected
        self.expect_handover = expect_handover
        self.handover_timeout = handover_timeout

    def install(self, server: FastAgiServer) -> None:
        server.route("route", self.route)
        server.route("ivr", self.ivr)
        server.route("lookup", self.lookup)

    async def route(self, agi: AgiRequest) -> None:
        """Sets CCC_ROUTE (flow | fallback), CCC_FLOW, CCC_DID."""
        did = agi.query.get("did") or agi.did
        if not did:
            await _failed(agi, "no DID: pass ?did=NUMBER or call from an extension")
            return
        if not _DID.fullmatch(did):
            await _failed(agi, "the DID must be digits only")
            return
        flow = self.flow_for_did(did)
        await agi.set_variable("CCC_DID", did)
        await agi.set_variable("CCC_FLOW", flow or "")
        await agi.set_variable("CCC_ROUTE", "flow" if flow and self.connected() else "fallback")
        await agi.set_variable("CCC_STATUS", "OK")
        log.info("AGI route: %s for DID %s -> %s", mask_number(agi.caller), did, flow or "fallback")

    async def ivr(self, agi: AgiRequest) -> None:
        """Takes the call into Stasis with the flow; returns when the controller lets it go."""
        flow = agi.query.get("flow", "")
        if not flow:
            await _failed(agi, "missing flow: use agi://HOST/ivr?flow=FLOW_ID")
            return
        if not self.flow_exists(flow):
            await _failed(agi, f"unknown flow {flow[:60]!r}")
            return
        if not self.connected():
            await _failed(agi, "the controller is not connected to ARI")
            return
        did = agi.query.get("did")
        if did is not None and not _DID.fullmatch(did):
            await _failed(agi, "the DID must be digits only")
            return
        if did is None:
            did = agi.did if _DID.fullmatch(agi.did) else "s"
        # Stasis() returns when the call leaves the controller: bounded by the longest call we allow.
        with self.expect_handover(agi.channel_id, flow):
            await agi.command(f"EXEC Stasis {self.app_name},{did},flow={flow}", timeout=self.handover_timeout)
        status = await agi.get_variable("STASISSTATUS")
        if status == "FAILED":
            await _failed(agi, "the Stasis application was not available")
            return
        await agi.set_variable("CCC_STATUS", "OK")

    async def lookup(self, agi: AgiRequest) -> None:
        """Sets CCC_REGION, CCC_PROVINCE, CCC_CITY, CCC_CARRIER and CCC_TIER for the caller."""
        number = agi.query.get("number") or agi.caller
        if not number:
            await _failed(agi, "no caller number to look up")
            return
        if not is_phone_number(number):
            await _failed(agi, "not a phone number")
            return
        region = caller_region(number)
        await agi.set_variable("CCC_REGION", region.description)
        await agi.set_variable("CCC_PROVINCE", region.province)
        await agi.set_variable("CCC_CITY", region.city)
        await agi.set_variable("CCC_CARRIER", region.carrier)
        await agi.set_variable("CCC_TIER", await self.tier_of(number))
        await agi.set_variable("CCC_STATUS", "OK")


async def _failed(agi: AgiRequest, message: str) -> None:
    log.warning("AGI %s failed: %s", agi.route, message)
    await agi.set_variable("CCC_STATUS", "FAILED")
    await agi.set_variable("CCC_ERROR", message)
