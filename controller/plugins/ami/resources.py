"""HTTP resources backed by AMI: trunks and span alarms, Asterisk channel counts."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from controller.http.openapi import operation
from controller.http.server import json_error, roles
from controller.plugins.ami.services import AmiService, AmiUnavailable


def routes(ami: AmiService, is_phone: Callable[[str], bool] = lambda name: False) -> list[web.RouteDef]:
    """`is_phone`: whether an endpoint name is an agent's phone rather than a trunk."""
    @operation("Trunks (PJSIP registrations and qualify, DAHDI span alarms) and Asterisk's channel counts",
               tag="asterisk", errors={503: "Asterisk's AMI is not reachable"})
    @roles("supervisor", "integration")
    async def trunks(request: web.Request) -> web.Response:
        try:
            pjsip = [trunk.as_dict() for trunk in await ami.trunks(is_phone)]
            spans = await ami.dahdi_spans()
            counts = await ami.channel_counts()
        except AmiUnavailable as exc:
            return json_error(503, f"Asterisk AMI unavailable: {exc}")
        return web.json_response({
            "pjsip": pjsip,
            "dahdi": spans,
            "dahdi_loaded": spans is not None,
            "channels": counts,
        })

    return [web.get("/api/asterisk/trunks", trunks)]
