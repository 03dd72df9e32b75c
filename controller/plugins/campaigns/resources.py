"""HTTP: outbound campaigns (README "Outbound campaigns"): create, import contacts, start, pause, stop,
stats, dispositions, do-not-call lists; an agent's previewed contact (dial or skip it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from controller.http.openapi import MAX_ID, body_of, operation
from controller.http.server import caller_of, json_error, roles
from controller.plugins.campaigns.errors import CampaignError
from controller.plugins.campaigns.schemas import CAMPAIGN, CONTACTS, CREATE, DISPOSITION, DNC, NAME, PREVIEW
from controller.plugins.campaigns.services import CampaignService

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PATH = {"name": NAME}
AGENT_PATH = {"agent_id": {"type": "string", "minLength": 1, "maxLength": 40}}


def routes(campaigns: CampaignService) -> list[web.RouteDef]:
    @operation("Campaigns with their status and figures", tag="campaigns",
               responses={200: {"type": "object", "required": ["campaigns"]}})
    @roles("supervisor")
    async def list_campaigns(request: web.Request) -> web.Response:
        return web.json_response({"campaigns": [campaigns.view(name) for name in sorted(campaigns.campaigns)]})

    @operation("Create a campaign (draft): mode, agents, calling hours, ring limit, attempts and retry delays",
               tag="campaigns", body=CREATE, responses={201: CAMPAIGN},
               errors={409: "a campaign of that name exists", 422: "settings that do not fit together"})
    @roles("supervisor")
    async def create(request: web.Request) -> web.Response:
        try:
            return web.json_response(await campaigns.create(body_of(request)), status=201)
        except CampaignError as exc:
            return json_error(422 if exc.status == 400 else exc.status, str(exc))

    @operation("A campaign: settings, status and figures (dialed, answered, abandoned, abandon rate, left)",
               tag="campaigns", path=PATH, responses={200: CAMPAIGN})
    @roles("supervisor")
    async def show(request: web.Request) -> web.Response:
        try:
            return web.json_response(campaigns.view(request.match_info["name"]))
        except CampaignError as exc:
            return json_error(exc.status, str(exc))

    @operation("Import contacts from CSV: numbers normalised; invalid rows and duplicates reported, not imported",
               tag="campaigns", path=PATH, body=CONTACTS,
               responses={200: {"type": "object", "required": ["imported", "invalid", "duplicates"]}},
               errors={422: "a file without a number column, or too large"})
    @roles("supervisor")
    async def import_contacts(request: web.Request) -> web.Response:
        try:
            return web.json_response(await campaigns.import_csv(request.match_info["name"], body_of(request)["csv"]))
        except CampaignError as exc:
            return json_error(422 if exc.status == 400 else exc.status, str(exc))

    @operation("A campaign's contacts and their progress", tag="campaigns", path=PATH,
               responses={200: {"type": "object", "required": ["contacts"]}})
    @roles("supervisor")
    async def contacts(request: web.Request) -> web.Response:
        try:
            campaign = campaigns.campaign(request.match_info["name"])
        except CampaignError as exc:
            return json_error(exc.status, str(exc))
        return web.json_response({"contacts": [c.view() for c in campaign.contacts.values()]})

    def transition(action: str) -> Handler:
        @operation(f"{action.capitalize()} a campaign", tag="campaigns", path=PATH, responses={200: CAMPAIGN},
                   errors={409: "not in a state it can be done from",
                           422: "a mode not run on Asterisk yet (preview, IVR-only)",
                           503: "outbound calls are not available"})
        @roles("supervisor")
        async def change(request: web.Request) -> web.Response:
            try:
                return web.json_response(await campaigns.change(request.match_info["name"], action))
            except CampaignError as exc:
                return json_error(exc.status, str(exc))
        return change

    @operation("An agent's disposition of a campaign contact after the call: callback reopens it, do_not_call"
               " adds the number to the campaign's do-not-call list", tag="campaigns",
               path={**PATH, "contact_no": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}, body=DISPOSITION,
               errors={409: "the contact's call is still going on"})
    @roles("agent", "supervisor")
    async def disposition(request: web.Request) -> web.Response:
        caller = caller_of(request)
        name, number = request.match_info["name"], int(request.match_info["contact_no"])
        try:
            campaign = campaigns.campaign(name)
            if caller.role == "agent" and caller.agent_id not in campaign.settings.agents:
                return json_error(403, "not an agent of this campaign")
            body = body_of(request)
            return web.json_response(await campaigns.disposition(name, number, body["disposition"],
                                                                 retry_at=body.get("retry_at"), by=caller.name))
        except CampaignError as exc:
            return json_error(exc.status, str(exc))

    @operation("Do-not-call lists (global: campaign '')", tag="campaigns",
               responses={200: {"type": "object", "required": ["numbers"]}})
    @roles("supervisor")
    async def list_dnc(request: web.Request) -> web.Response:
        return web.json_response({"numbers": await campaigns.records.dnc()})

    @operation("Add numbers to the global or a campaign's do-not-call list (checked at dial time)", tag="campaigns",
               body=DNC, responses={201: {"type": "object", "required": ["added"]}},
               errors={422: "a number that is not a valid phone number (nothing is added)"})
    @roles("supervisor")
    async def add_dnc(request: web.Request) -> web.Response:
        body = body_of(request)
        try:
            added = await campaigns.add_dnc(body["numbers"], body.get("campaign", ""), body.get("reason", ""))
        except CampaignError as exc:
            return json_error(422 if exc.status == 400 else exc.status, str(exc))
        return web.json_response({"added": added}, status=201)

    def own_agent(request: web.Request) -> str:
        """The agent in the path, refused when an agent's token names another agent."""
        agent_id = request.match_info["agent_id"]
        identity = caller_of(request)
        if identity.role == "agent" and identity.agent_id != agent_id:
            raise web.HTTPForbidden(reason="an agent's token may act only on its own agent")
        return agent_id

    @operation("Preview mode: the contact offered to the agent (claimed for them; its screen pop)", tag="campaigns",
               path=AGENT_PATH, responses={200: PREVIEW},
               errors={404: "no contact is offered to the agent now"})
    @roles("agent", "supervisor")
    async def preview(request: web.Request) -> web.Response:
        offered = campaigns.preview.current(own_agent(request))
        if offered is None:
            return json_error(404, "no contact is offered to this agent now")
        return web.json_response(offered)

    @operation("Preview mode: dial the offered contact (the agent's phone rings when the customer answers)",
               tag="campaigns", path=AGENT_PATH,
               responses={202: {"type": "object", "required": ["call_id", "contact"]}},
               errors={404: "no contact is offered to the agent now",
                       409: "the campaign is not running, or the agent cannot place a call now"})
    @roles("agent", "supervisor")
    async def preview_dial(request: web.Request) -> web.Response:
        try:
            return web.json_response(campaigns.preview.dial(own_agent(request)), status=202)
        except CampaignError as exc:
            return json_error(exc.status, str(exc))

    @operation("Preview mode: skip the offered contact (closed as skipped, never dialled); the next is offered",
               tag="campaigns", path=AGENT_PATH, responses={200: {"type": "object"}},
               errors={404: "no contact is offered to the agent now"})
    @roles("agent", "supervisor")
    async def preview_skip(request: web.Request) -> web.Response:
        try:
            return web.json_response(campaigns.preview.skip(own_agent(request)))
        except CampaignError as exc:
            return json_error(exc.status, str(exc))

    return [web.get("/api/campaigns", list_campaigns), web.post("/api/campaigns", create),
            web.get("/api/campaigns/{name}", show),
            web.post("/api/campaigns/{name}/contacts", import_contacts),
            web.get("/api/campaigns/{name}/contacts", contacts),
            *[web.post(f"/api/campaigns/{{name}}/{action}", transition(action)) for action in ("start", "pause",
                                                                                               "stop")],
            web.post("/api/campaigns/{name}/contacts/{contact_no}/disposition", disposition),
            web.get("/api/dnc", list_dnc), web.post("/api/dnc", add_dnc),
            web.get("/api/agents/{agent_id}/preview", preview),
            web.post("/api/agents/{agent_id}/preview/dial", preview_dial),
            web.post("/api/agents/{agent_id}/preview/skip", preview_skip)]
