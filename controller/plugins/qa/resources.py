"""HTTP: quality assurance under /api/qa (README "Quality assurance").

    GET         /api/qa/forms                 each form's latest version
    GET|PUT|DELETE /api/qa/forms/{form}       one form (PUT: a new version; DELETE: no new scores on it)
    POST        /api/qa/scores                score a recording (supervisors)
    GET         /api/qa/scores, /{score_id}   scores (an agent: their own only)
    GET         /api/qa/report                per agent: scored, average, lowest criterion
"""

from __future__ import annotations

import time

from aiohttp import web

from controller.config import Role
from controller.http.list_query import TIME, list_query, list_window
from controller.http.openapi import MAX_ID, body_of, operation
from controller.http.server import caller_of, json_problems, roles
from controller.plugins.qa.schemas import (
    FORM,
    FORM_BODY,
    FORM_CHANGE,
    FORM_NAME,
    REPORT_ROW,
    SCORE,
    SCORE_BODY,
    SCORE_ID,
)
from controller.plugins.qa.services import QaRefused, QaService

TAG = "quality"
WRITERS: tuple[Role, ...] = ("admin", "supervisor")
FORM_PATH = {"form": FORM_NAME}
INVALID = {422: "invalid: `problems` lists each as `field.path: message`; nothing was changed"}


def refusal(exc: QaRefused) -> web.Response:
    return json_problems(exc.status, exc.message, exc.problems)


def routes(qa: QaService) -> list[web.RouteDef]:
    @operation("QA forms: each one's latest version (removed ones marked `retired`)", tag=TAG,
               responses={200: {"type": "object", "required": ["forms"],
                                "properties": {"forms": {"type": "array", "items": FORM}}}})
    @roles("admin", "supervisor", "integration", "agent")
    async def list_forms(request: web.Request) -> web.Response:
        return web.json_response({"forms": await qa.records.latest_forms()})

    @operation("A QA form: its latest version, or the one asked for", tag=TAG, path=FORM_PATH,
               query={"version": {"type": "integer", "minimum": 1, "maximum": MAX_ID}}, responses={200: FORM})
    @roles("admin", "supervisor", "integration", "agent")
    async def get_form(request: web.Request) -> web.Response:
        version = request.query.get("version")
        form = await qa.records.form(request.match_info["form"], int(version) if version else None)
        if form is None:
            return refusal(QaRefused(404, "no QA form with that name (and version)"))
        return web.json_response(form)

    @operation("Create or change a QA form: a new version (scores keep the version they were given with); the "
               "same criteria as the latest version add none", tag=TAG, path=FORM_PATH, body=FORM_BODY,
               responses={200: FORM_CHANGE}, errors=INVALID)
    @roles(*WRITERS)
    async def put_form(request: web.Request) -> web.Response:
        identity = caller_of(request)
        try:
            form, changed = await qa.put_form(identity.actor, identity.role, request.match_info["form"],
                                              body_of(request))
        except QaRefused as exc:
            return refusal(exc)
        request["audited"] = changed  # the service wrote the audit row with the change
        return web.json_response({"form": form, "changed": changed})

    @operation("Remove a QA form: no new scores on it; its scores keep it (a PUT brings it back as a new version)",
               tag=TAG, path=FORM_PATH, responses={200: FORM}, errors={409: "already removed"})
    @roles(*WRITERS)
    async def delete_form(request: web.Request) -> web.Response:
        identity = caller_of(request)
        try:
            form = await qa.retire_form(identity.actor, identity.role, request.match_info["form"])
        except QaRefused as exc:
            return refusal(exc)
        request["audited"] = True
        return web.json_response(form)

    @operation("Score a recording on a QA form's latest version: points per criterion, comments at offsets of "
               "the recording; the weighted score is computed by the controller", tag=TAG, body=SCORE_BODY,
               responses={201: SCORE}, errors=INVALID)
    @roles(*WRITERS)
    async def add_score(request: web.Request) -> web.Response:
        identity = caller_of(request)
        try:
            score = await qa.score(identity.actor, identity.role, body_of(request))
        except QaRefused as exc:
            return refusal(exc)
        request["audited"] = True
        return web.json_response(score, status=201)

    @operation("QA scores, newest first (an agent: their own only)", tag=TAG,
               query={"agent": {"type": "string", "maxLength": 64},
                      "recording_id": {"type": "integer", "minimum": 1, "maximum": MAX_ID}, **list_query()},
               responses={200: {"type": "object", "required": ["scores"],
                                "properties": {"scores": {"type": "array", "items": SCORE}}}})
    @roles("admin", "supervisor", "integration", "agent")
    async def list_scores(request: web.Request) -> web.Response:
        identity = caller_of(request)
        agent = (identity.agent_id or "") if identity.role == "agent" else request.query.get("agent")
        recording = request.query.get("recording_id")
        window = list_window(request)
        return web.json_response({"scores": await qa.scores(
            agent_id=agent, recording_id=int(recording) if recording else None, start=window.start, end=window.end,
            limit=window.limit)})

    @operation("One QA score (an agent: their own only)", tag=TAG, path={"score_id": SCORE_ID},
               responses={200: SCORE})
    @roles("admin", "supervisor", "integration", "agent")
    async def get_score(request: web.Request) -> web.Response:
        score = await qa.get_score(request.match_info["score_id"])
        if score is None:
            return refusal(QaRefused(404, "no QA score with that id"))
        identity = caller_of(request)
        if identity.role == "agent" and score["agent_id"] != identity.agent_id:
            return refusal(QaRefused(403, "an agent may read only their own QA scores"))
        return web.json_response(score)

    @operation("QA figures per agent for a period (scores given in it): how many calls were scored, the average "
               "score, critical failures, the criterion with the lowest average share of its points", tag=TAG,
               query={"from": {**TIME, "description": "epoch seconds (default: today 00:00)"},
                      "to": {**TIME, "description": "epoch seconds (default: now)"}},
               responses={200: {"type": "object", "required": ["agents", "start", "end"],
                                "properties": {"agents": {"type": "array", "items": REPORT_ROW}}}})
    @roles("admin", "supervisor", "integration")
    async def report(request: web.Request) -> web.Response:
        now = qa.now()
        midnight = time.mktime((*time.localtime(now)[:3], 0, 0, 0, 0, 0, -1))
        start = float(request.query.get("from", midnight))
        end = float(request.query.get("to", now))
        return web.json_response({"agents": await qa.report(start, end), "start": start, "end": end})

    return [web.get("/api/qa/forms", list_forms), web.get("/api/qa/forms/{form}", get_form),
            web.put("/api/qa/forms/{form}", put_form), web.delete("/api/qa/forms/{form}", delete_form),
            web.post("/api/qa/scores", add_score), web.get("/api/qa/scores", list_scores),
            web.get("/api/qa/scores/{score_id}", get_score), web.get("/api/qa/report", report)]
