"""Quality assurance (README "Quality assurance"): supervisors score recorded calls on configurable forms.

A form is a list of criteria, each with a weight, a maximum of points and optionally `critical`. Changing
a form makes a new version; a score keeps the version it was given with, so old scores read as they were
given. The score is computed here, never taken from the client:

    score = 100 * sum(weight * points / max_points) / sum(weight)      (0 when a critical criterion got 0)

Agents read their own scores only; the report gives, per agent, how many calls were scored, the average
score and the criterion with the lowest average share of its points.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from controller.plugins.access.state_persistor import AuditLog
from controller.plugins.qa.state_persistor import QaRecords
from controller.store.db import StatementFailed

#: A recording's index entry by id (None: no such recording; `deleted_at` set: removed by retention).
RecordingLookup = Callable[[int], Awaitable[dict[str, Any] | None]]
#: Comments may point a little past the indexed duration (its rounding, a file still being closed).
OFFSET_SLACK_SECONDS = 2.0


class QaRefused(Exception):
    """Refused input or state: HTTP status, message, and for 422 each problem as `field.path: message`.
    Nothing was changed."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []


def form_problems(criteria: list[dict[str, Any]]) -> list[str]:
    """What the body's schema cannot say of a form's criteria."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, criterion in enumerate(criteria):
        if criterion["key"] in seen:
            problems.append(f"criteria[{index}].key: {criterion['key']!r} is given twice")
        seen.add(criterion["key"])
    return problems


def normalised_form(body: dict[str, Any]) -> dict[str, Any]:
    """A form's definition as stored (defaults filled in, so equal forms compare equal)."""
    return {"title": body.get("title", ""),
            "criteria": [{"key": c["key"], "label": c["label"], "weight": c["weight"], "max_points": c["max_points"],
                          "critical": bool(c.get("critical", False))} for c in body["criteria"]]}


def weighted_score(criteria: list[dict[str, Any]], points: dict[str, int]) -> tuple[float, bool]:
    """The score (0-100, one decimal) of `points` on `criteria`, and whether a critical criterion failed."""
    total_weight = sum(float(c["weight"]) for c in criteria)
    earned = sum(float(c["weight"]) * points[c["key"]] / c["max_points"] for c in criteria)
    critical_failed = any(c.get("critical") and points[c["key"]] == 0 for c in criteria)
    return (0.0 if critical_failed else round(100 * earned / total_weight, 1)), critical_failed


def points_problems(criteria: list[dict[str, Any]], points: dict[str, int]) -> list[str]:
    problems = [f"points.{key}: the form has no criterion {key!r}" for key in points
                if key not in {c["key"] for c in criteria}]
    for criterion in criteria:
        given = points.get(criterion["key"])
        if given is None:
            problems.append(f"points.{criterion['key']}: missing (every criterion is scored)")
        elif given > criterion["max_points"]:
            problems.append(f"points.{criterion['key']}: {given} is more than its {criterion['max_points']} points")
    return problems


class QaService:
    def __init__(self, records: QaRecords, audit: AuditLog, recording: RecordingLookup,
                 now: Callable[[], float], publish: Callable[..., object] = lambda *_a, **_k: None) -> None:
        self.records = records
        self.audit = audit
        self.recording = recording
        self.now = now
        self.publish = publish  # CTI events (qa.scored)

    # -- forms ------------------------------------------------------------------------------------------

    async def put_form(self, actor: str, role: str, name: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """A new version of the form (its first, or the next); the same as the latest one: no new version.
        Answers the form and whether a version was added."""
        problems = form_problems(body["criteria"])
        if problems:
            raise QaRefused(422, "invalid form", problems)
        definition = normalised_form(body)
        latest = await self.records.form(name)
        if latest is not None and not latest["retired"] and \
                {"title": latest["title"], "criteria": latest["criteria"]} == definition:
            return latest, False
        version = 1 if latest is None else latest["version"] + 1
        at = self.now()
        try:
            await self.records.commit([
                QaRecords.put_form(name, version, definition, at, actor),
                self.audit.statement(actor, role, "qa.form.put", target=f"qa_form:{name}",
                                     before=None if latest is None else {"version": latest["version"],
                                                                         "criteria": latest["criteria"]},
                                     after={"version": version, **definition}, status=200)])
        except StatementFailed as exc:  # another change made this version first (the key is name and version)
            raise QaRefused(409, f"the QA form {name!r} was changed at the same time: read it and try again") \
                from exc
        form = await self.records.form(name, version)
        assert form is not None
        return form, True

    async def retire_form(self, actor: str, role: str, name: str) -> dict[str, Any]:
        """No new scores on the form; its scores keep it (a later PUT brings it back as a new version)."""
        latest = await self.records.form(name)
        if latest is None:
            raise QaRefused(404, f"no QA form {name!r}")
        if latest["retired"]:
            raise QaRefused(409, f"the QA form {name!r} is already removed")
        await self.records.commit([
            QaRecords.retire_form(name, latest["version"], self.now()),
            self.audit.statement(actor, role, "qa.form.remove", target=f"qa_form:{name}",
                                 before={"version": latest["version"]}, after=None, status=200)])
        return {**latest, "retired": True}

    # -- scores -----------------------------------------------------------------------------------------

    async def score(self, actor: str, role: str, body: dict[str, Any]) -> dict[str, Any]:
        """Score a recording on a form's latest version; answers the score as `public_score` shows it."""
        form = await self.records.form(body["form"])
        if form is None or form["retired"]:
            raise QaRefused(422, "invalid score", [f"form: no QA form {body['form']!r}"])
        recording = await self.recording(body["recording_id"])
        if recording is None or recording.get("deleted_at") is not None:  # retention removed its file
            raise QaRefused(422, "invalid score", [f"recording_id: no recording {body['recording_id']}"])
        agents = list(recording["agents"])
        agent_id = body.get("agent_id") or (agents[0] if agents else None)
        problems = points_problems(form["criteria"], body["points"])
        if agent_id is None:
            problems.append("agent_id: the recording has no agent to score")
        elif agent_id not in agents:
            problems.append(f"agent_id: {agent_id!r} is not an agent of this recording ({', '.join(agents)})")
        longest = float(recording.get("duration") or 86400) + OFFSET_SLACK_SECONDS
        problems += [f"comments[{index}].at: {comment['at']} s is past the recording's end ({longest:g} s)"
                     for index, comment in enumerate(body.get("comments", [])) if comment["at"] > longest]
        if problems:
            raise QaRefused(422, "invalid score", problems)
        assert agent_id is not None
        value, critical_failed = weighted_score(form["criteria"], body["points"])
        score = {"id": secrets.token_hex(16), "recording_id": recording["id"], "call_id": recording["call_id"],
                 "agent_id": agent_id, "form": form["name"], "form_version": form["version"], "scorer": actor,
                 "scored_at": self.now(), "score": value, "critical_failed": critical_failed,
                 "points": {c["key"]: body["points"][c["key"]] for c in form["criteria"]},
                 "comments": sorted(body.get("comments", []), key=lambda comment: comment["at"]),
                 "summary": body.get("summary", "")}
        await self.records.commit([
            QaRecords.put_score(score),
            self.audit.statement(actor, role, "qa.score", target=f"recording:{recording['id']}", before=None,
                                 after={"score_id": score["id"], "agent_id": agent_id, "score": value,
                                        "form": f"{form['name']} v{form['version']}"}, status=201)])
        self.publish("qa.scored", call_id=score["call_id"], agent_id=agent_id, score_id=score["id"],
                     recording_id=score["recording_id"], score=value, critical_failed=critical_failed,
                     form=form["name"], form_version=form["version"])
        return public_score(score, form)

    async def scores(self, **filters: Any) -> list[dict[str, Any]]:
        rows = await self.records.scores(**filters)
        forms = await self.records.forms_of({(row["form"], row["form_version"]) for row in rows})
        return [public_score(row, forms[row["form"], row["form_version"]]) for row in rows]

    async def get_score(self, score_id: str) -> dict[str, Any] | None:
        row = await self.records.score(score_id)
        if row is None:
            return None
        form = await self.records.form(row["form"], row["form_version"])
        assert form is not None
        return public_score(row, form)

    # -- the report ---------------------------------------------------------------------------------------

    async def report(self, start: float, end: float) -> list[dict[str, Any]]:
        """Per agent scored in [start, end): scores, average score, critical failures, lowest criterion."""
        rows = await self.records.scores(start=start, end=end, limit=1_000_000)
        forms = await self.records.forms_of({(row["form"], row["form_version"]) for row in rows})
        return agent_figures([public_score(row, forms[row["form"], row["form_version"]]) for row in rows])


def public_score(row: dict[str, Any], form: dict[str, Any]) -> dict[str, Any]:
    """A score as the API answers it: each criterion with its label and maximum from the form's version."""
    criteria = [{"key": c["key"], "label": c["label"], "weight": c["weight"], "max_points": c["max_points"],
                 "critical": c["critical"], "points": row["points"].get(c["key"])} for c in form["criteria"]]
    return {"id": row["id"], "recording_id": row["recording_id"], "call_id": row["call_id"],
            "agent_id": row["agent_id"], "form": {"name": form["name"], "version": form["version"],
                                                  "title": form["title"]},
            "scorer": row["scorer"], "scored_at": row["scored_at"], "score": row["score"],
            "critical_failed": row["critical_failed"], "criteria": criteria, "comments": row["comments"],
            "summary": row["summary"]}


def agent_figures(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's rows, by agent: the lowest criterion is the one with the lowest average share of its
    maximum across the agent's scores (by key; its label from the newest score that has it)."""
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for score in scores:
        by_agent[score["agent_id"]].append(score)
    rows: list[dict[str, Any]] = []
    for agent_id, mine in sorted(by_agent.items()):
        shares: dict[str, list[float]] = defaultdict(list)
        labels: dict[str, str] = {}
        for score in sorted(mine, key=lambda s: s["scored_at"]):
            for criterion in score["criteria"]:
                if criterion["points"] is not None:
                    shares[criterion["key"]].append(criterion["points"] / criterion["max_points"])
                    labels[criterion["key"]] = criterion["label"]
        averages = {key: sum(values) / len(values) for key, values in shares.items()}
        lowest = min(averages, key=lambda key: (averages[key], key)) if averages else None
        rows.append({"agent_id": agent_id, "scored": len(mine),
                     "average_score": round(sum(s["score"] for s in mine) / len(mine), 1),
                     "critical_failed": sum(1 for s in mine if s["critical_failed"]),
                     "lowest_criterion": None if lowest is None else {
                         "key": lowest, "label": labels[lowest], "average_percent": round(100 * averages[lowest], 1)}})
    return rows
