"""Quality assurance (README "Quality assurance"): forms and their versions, the weighted score, refusals that
change nothing, the per-agent report; on a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from controller.plugins.access.state_persistor import AuditLog
from controller.plugins.qa.services import QaRefused, QaService, weighted_score
from controller.plugins.qa.state_persistor import QaRecords
from controller.store.db import Store

FORM = {"title": "Inbound", "criteria": [
    {"key": "greeting", "label": "Greeting", "weight": 1, "max_points": 5},
    {"key": "solution", "label": "Solved the problem", "weight": 3, "max_points": 10},
    {"key": "identity", "label": "Checked the caller's identity", "weight": 1, "max_points": 1, "critical": True}]}
RECORDINGS = {7: {"id": 7, "call_id": "call-7", "agents": ["1001", "1002"], "duration": 60.0, "deleted_at": None},
              9: {"id": 9, "call_id": "call-9", "agents": ["1001"], "duration": 30.0, "deleted_at": 1.0}}


class Clock:
    def __init__(self) -> None:
        self.at = 1_000_000.0

    def __call__(self) -> float:
        self.at += 1.0
        return self.at


@pytest.fixture
async def qa(tmp_path: Path) -> AsyncIterator[QaService]:
    store = Store(tmp_path / "store.sqlite3")
    await store.open()
    writer = asyncio.create_task(store.run_writer())

    async def recording(recording_id: int) -> dict[str, Any] | None:
        return RECORDINGS.get(recording_id)
    clock = Clock()
    yield QaService(QaRecords(store), AuditLog(store, clock), recording, clock)
    writer.cancel()
    await store.close()


async def audit_actions(qa: QaService) -> list[str]:
    return [row["action"] for row in await qa.audit.query()]


def test_the_score_is_weighted_and_a_failed_critical_criterion_makes_it_zero() -> None:
    criteria = [{**c, "critical": c.get("critical", False)} for c in FORM["criteria"]]  # type: ignore[attr-defined]
    # (1 * 4/5 + 3 * 5/10 + 1 * 1/1) / 5 = (0.8 + 1.5 + 1) / 5 = 66%
    assert weighted_score(criteria, {"greeting": 4, "solution": 5, "identity": 1}) == (66.0, False)
    assert weighted_score(criteria, {"greeting": 5, "solution": 10, "identity": 1}) == (100.0, False)
    assert weighted_score(criteria, {"greeting": 5, "solution": 10, "identity": 0}) == (0.0, True)


async def test_a_changed_form_is_a_new_version_and_old_scores_keep_theirs(qa: QaService) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    qa.publish = lambda type_, **fields: events.append((type_, fields))
    form, changed = await qa.put_form("user:lead", "supervisor", "inbound", FORM)
    assert (form["version"], changed, form["criteria"][0]["critical"]) == (1, True, False)
    assert (await qa.put_form("user:lead", "supervisor", "inbound", FORM))[1] is False  # the same: no version
    first = await qa.score("user:lead", "supervisor", {"recording_id": 7, "form": "inbound", "points": {
        "greeting": 4, "solution": 5, "identity": 1}, "comments": [{"at": 12.5, "text": "no name"},
                                                                    {"at": 3.0, "text": "good"}]})
    assert (first["score"], first["agent_id"], first["form"]["version"]) == (66.0, "1001", 1)
    assert [c["at"] for c in first["comments"]] == [3.0, 12.5]

    heavier = {**FORM, "criteria": [{**FORM["criteria"][0], "weight": 5}, *FORM["criteria"][1:]]}  # type: ignore[index]
    form, changed = await qa.put_form("user:lead", "supervisor", "inbound", heavier)
    assert (form["version"], changed) == (2, True)
    second = await qa.score("user:lead", "supervisor", {"recording_id": 7, "form": "inbound", "agent_id": "1002",
                                                        "points": {"greeting": 0, "solution": 10, "identity": 1}})
    assert (second["score"], second["form"]["version"]) == (44.4, 2)  # (0 + 3 + 1) / 9
    again = await qa.get_score(first["id"])
    assert again is not None and again["score"] == 66.0 and again["criteria"][0]["weight"] == 1  # its version
    assert await audit_actions(qa) == ["qa.score", "qa.form.put", "qa.score", "qa.form.put"]
    assert [(type_, fields["agent_id"], fields["score"]) for type_, fields in events] == [
        ("qa.scored", "1001", 66.0), ("qa.scored", "1002", 44.4)]


async def test_bad_forms_and_scores_are_refused_with_each_problem_and_change_nothing(qa: QaService) -> None:
    twice = {"criteria": [FORM["criteria"][0], FORM["criteria"][0]]}  # type: ignore[index]
    with pytest.raises(QaRefused) as refused:
        await qa.put_form("user:lead", "supervisor", "inbound", twice)
    assert refused.value.status == 422 and refused.value.problems == ["criteria[1].key: 'greeting' is given twice"]
    assert await qa.records.latest_forms() == []
    await qa.put_form("user:lead", "supervisor", "inbound", FORM)

    bad = {"recording_id": 7, "form": "inbound", "agent_id": "1003", "comments": [{"at": 99.0, "text": "late"}],
           "points": {"greeting": 6, "solution": 5, "courtesy": 1}}
    with pytest.raises(QaRefused) as refused:
        await qa.score("user:lead", "supervisor", bad)
    assert refused.value.problems == [
        "points.courtesy: the form has no criterion 'courtesy'", "points.greeting: 6 is more than its 5 points",
        "points.identity: missing (every criterion is scored)",
        "agent_id: '1003' is not an agent of this recording (1001, 1002)",
        "comments[0].at: 99.0 s is past the recording's end (62 s)"]
    for wrong, problem in (({"recording_id": 8}, "recording_id: no recording 8"),
                           ({"recording_id": 9}, "recording_id: no recording 9"),  # deleted by retention
                           ({"form": "outbound"}, "form: no QA form 'outbound'")):
        with pytest.raises(QaRefused) as refused:
            await qa.score("user:lead", "supervisor", {**bad, **wrong})
        assert refused.value.problems == [problem]
    assert await qa.scores() == []
    assert await audit_actions(qa) == ["qa.form.put"]

    await qa.retire_form("user:lead", "supervisor", "inbound")
    with pytest.raises(QaRefused) as refused:
        await qa.score("user:lead", "supervisor", {"recording_id": 7, "form": "inbound", "points": {
            "greeting": 4, "solution": 5, "identity": 1}})
    assert refused.value.problems == ["form: no QA form 'inbound'"]
    with pytest.raises(QaRefused) as refused:
        await qa.retire_form("user:lead", "supervisor", "inbound")
    assert refused.value.status == 409


async def test_the_report_gives_each_agent_their_count_average_and_lowest_criterion(qa: QaService) -> None:
    await qa.put_form("user:lead", "supervisor", "inbound", FORM)
    start = qa.now()
    for agent, points in (("1001", {"greeting": 5, "solution": 4, "identity": 1}),
                          ("1001", {"greeting": 3, "solution": 8, "identity": 0}),
                          ("1002", {"greeting": 5, "solution": 10, "identity": 1})):
        await qa.score("user:lead", "supervisor", {"recording_id": 7, "form": "inbound", "agent_id": agent,
                                                   "points": points})
    rows = await qa.report(start, qa.now())
    assert rows == [
        {"agent_id": "1001", "scored": 2, "average_score": 32.0, "critical_failed": 1,  # (64 + 0) / 2
         "lowest_criterion": {"key": "identity", "label": "Checked the caller's identity", "average_percent": 50.0}},
        {"agent_id": "1002", "scored": 1, "average_score": 100.0, "critical_failed": 0,
         "lowest_criterion": {"key": "greeting", "label": "Greeting", "average_percent": 100.0}}]
    assert await qa.report(qa.now(), qa.now() + 10) == []


async def test_two_changes_of_a_form_at_once_make_one_version_and_a_conflict(qa: QaService) -> None:
    await qa.put_form("user:lead", "supervisor", "inbound", FORM)
    titles = [{**FORM, "title": f"Inbound {n}"} for n in (1, 2)]
    answers = await asyncio.gather(*(qa.put_form("user:lead", "supervisor", "inbound", body) for body in titles),
                                   return_exceptions=True)
    refused = [answer for answer in answers if isinstance(answer, QaRefused)]
    assert len(refused) == 1 and refused[0].status == 409, answers
    latest = await qa.records.form("inbound")
    assert latest is not None and latest["version"] == 2
    assert await audit_actions(qa) == ["qa.form.put", "qa.form.put"]  # the refused change left no audit row
