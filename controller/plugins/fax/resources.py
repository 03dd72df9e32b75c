"""HTTP resources of faxes sent from the API (received faxes are inbox items: /api/inbox/{id}/document)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from controller.acd.dialing import number_refusal
from controller.config import DialingSettings
from controller.http.openapi import body_of, operation
from controller.http.server import caller_of, json_error, roles
from controller.plugins.fax import schemas
from controller.plugins.fax.services import FaxError, FaxService


def routes(faxes: FaxService, *, dialing: Callable[[], DialingSettings]) -> list[web.RouteDef]:
    def actor(request: web.Request) -> str:
        identity = caller_of(request)
        return identity.agent_id if identity.role == "agent" and identity.agent_id else identity.name

    @operation("Send a fax: a PDF (base64) to a number, through the trunk; the outcome is recorded", tag="fax",
               body=schemas.SEND_BODY, responses={202: schemas.FAX},
               errors={403: "the number may not be dialled (dialing policy)",
                       422: "the document is not a PDF, too large, has too many pages or cannot be converted"})
    @roles("agent", "supervisor", "integration")
    async def send(request: web.Request) -> web.Response:
        body = body_of(request)
        refusal = number_refusal(dialing(), body["number"])
        if refusal is not None:
            return json_error(403, f"this number may not be dialled: {refusal}")
        try:
            fax = await faxes.send(number=body["number"], document=body["document"], created_by=actor(request))
        except FaxError as exc:
            return json_error(422, str(exc))
        return web.json_response(fax, status=202)

    @operation("A fax sent from the API: status (sending, sent, failed), pages, pages taken, Asterisk's FAXSTATUS"
               " and error (an agent: their own faxes)", tag="fax", path=schemas.FAX_ID, responses={200: schemas.FAX})
    @roles("agent", "supervisor", "integration")
    async def get(request: web.Request) -> web.Response:
        fax = await faxes.records.fax(request.match_info["fax_id"])
        identity = caller_of(request)
        if fax is None or (identity.role == "agent" and fax["created_by"] != actor(request)):
            raise web.HTTPNotFound(reason="no fax with that id")
        return web.json_response(fax)

    return [web.post("/api/faxes", send), web.get("/api/faxes/{fax_id}", get)]
