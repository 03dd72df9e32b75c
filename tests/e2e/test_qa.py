"""Quality assurance (README "Quality assurance"): a call recorded on the real Asterisk is scored by a supervisor
on the QA page in headless Chromium (listening in the page, comments at the player's position), the score is in
`ccctl report`, and the agent sees it on their page (another agent does not)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from controller.plugins.cti.schemas import event_schema
from tests.browser import Browser, Page
from tests.e2e.conftest import ControllerProcess
from tests.e2e.test_admin_page import sign_in as admin_sign_in
from tests.e2e.test_call_control import start
from tests.e2e.test_desk import SCREENSHOTS, assert_chinese_is_drawn
from tests.e2e.test_ivr_acd import ACD_DID, login, stop_after  # noqa: F401 (fixture)
from tests.e2e.test_recording import ccctl
from tests.sipp import Caller, Phone, WaitForBye

pytestmark = pytest.mark.e2e
SUPERVISOR = "demo-supervisor-token"
AGENT_1001, AGENT_1002 = "demo-agent-1001-token", "demo-agent-1002-token"
FORM = {"title": "来电质检 Inbound", "criteria": [
    {"key": "greeting", "label": "Greeting 问候", "weight": 1, "max_points": 5},
    {"key": "solution", "label": "Solved the problem 解决问题", "weight": 3, "max_points": 10},
    {"key": "identity", "label": "Checked identity 核实身份", "weight": 1, "max_points": 1, "critical": True}]}


async def sign_in(browser: Browser, controller: ControllerProcess, name: str, lang: str) -> Page:
    return await admin_sign_in(browser, controller, name, lang=lang, path="/qa")


async def comment_at(page: Page, seconds: float, text: str) -> None:
    """Move the player to `seconds` (as dragging its slider does), then comment there."""
    await page.evaluate(f"document.querySelector('#player').currentTime = {seconds}; true")
    await page.wait_for(f"Math.abs(document.querySelector('#player').currentTime - {seconds}) < 0.05"
                        " && !document.querySelector('#player').seeking")
    await page.fill("#comment-text", text)
    await page.click("#comment-add")


async def recorded_call(process: ControllerProcess) -> dict[str, Any]:
    """A real call through the queue to agent 1001, recorded (the queue records always), its index row."""
    await Phone(15001, answer_after_ms=300, hold_ms=6000, talk=True).start()  # 6 s of speech, then hangs up
    await login(process, "1001")
    assert (await Caller(ACD_DID, steps=[WaitForBye(40000)]).run()).ok
    await process.wait_for_records(1)  # the recording's row is complete before the call's record is closed
    _, found = await process.api("GET", "/api/recordings")
    (row,) = found["recordings"]
    assert row["agents"] == ["1001"] and row["duration"] > 4, row
    return dict(row)


async def test_a_recording_is_scored_in_the_page_and_the_score_is_in_the_report_and_the_agents_page(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path, recording="always")
    stop_after.append(process)
    recording = await recorded_call(process)

    # The form, through the API: an agent may not write it; a bad one is refused with its problem, changing nothing.
    assert (await process.api("PUT", "/api/qa/forms/inbound", token=AGENT_1001, json=FORM))[0] == 403
    twice = {"criteria": [FORM["criteria"][0], FORM["criteria"][0]]}  # type: ignore[index]
    status, body = await process.api("PUT", "/api/qa/forms/inbound", token=SUPERVISOR, json=twice)
    assert status == 422 and body["problems"] == ["criteria[1].key: 'greeting' is given twice"], body
    assert (await process.api("GET", "/api/qa/forms"))[1]["forms"] == []
    status, body = await process.api("PUT", "/api/qa/forms/inbound", token=SUPERVISOR, json=FORM)
    assert status == 200 and (body["changed"], body["form"]["version"]) == (True, 1), body

    async with Browser("--autoplay-policy=no-user-gesture-required") as browser:
        page = await sign_in(browser, process, "supervisor", "en")
        await page.wait_for(f"!!document.querySelector(\"#recordings-table tr[data-key='{recording['id']}']\")")
        assert not await page.visible("#scoring")
        await page.click(f"#recordings-table tr[data-key='{recording['id']}'] .score")
        # The recording plays in the page: fetched with the session from the recordings API (the whole file).
        duration = await page.wait_for("isFinite(document.querySelector('#player').duration)"
                                       " && document.querySelector('#player').duration")
        assert abs(float(duration) - recording["duration"]) < 1.0, (duration, recording)
        await page.evaluate("document.querySelector('#player').play().then(() => true)")
        await page.wait_for("document.querySelector('#player').currentTime > 1.0")
        await page.evaluate("document.querySelector('#player').pause(); true")
        await comment_at(page, 3.5, "did not give their name")
        await comment_at(page, 1.2, "friendly greeting")
        assert await page.evaluate("[...document.querySelectorAll('#comments .seek')].map((b) => b.textContent)") \
            == ["0:01", "0:03"]

        # Saving with a criterion left out: the API's problem next to the form, and nothing is saved.
        await page.fill("#criteria input[name=greeting]", "4")
        await page.fill("#criteria input[name=solution]", "5")
        await page.click("#save")
        problem = await page.wait_for("document.querySelector('#problems').textContent")
        assert "points.identity: missing" in problem, problem
        assert (await process.api("GET", "/api/qa/scores"))[1]["scores"] == []
        await page.fill("#criteria input[name=identity]", "1")
        await page.fill("#summary", "Solved it, but skipped the name.")
        await page.click("#save")
        saved = await page.wait_for("document.querySelector('#saved').dataset.score")
        assert await page.text("#problems") == ""
        assert await page.text("#saved") == "Saved, score 66"  # (1·4/5 + 3·5/10 + 1·1/1) / 5, computed by the server
        await page.wait_for(f"!!document.querySelector(\"#scores-table tr[data-key='{saved}'] .score\")")
        assert await page.text(f"#recordings-table tr[data-key='{recording['id']}'] .scored") == "✓"
        await page.screenshot(SCREENSHOTS / "qa-scored-en.png")

        # The form changed on the page: a key given twice is refused (nothing changes); the fixed one with a new
        # weight is version 2, and the score given on version 1 keeps it.
        await page.click("#forms-table tr[data-key='inbound'] .edit")
        await page.wait_for("document.querySelectorAll('#form-criteria tbody tr').length === 3")
        second = "#form-criteria tbody tr:nth-child(2)"
        await page.fill(f"{second} [name=key]", "greeting")
        await page.click("#form-save")
        problem = await page.wait_for("document.querySelector('#form-problems').textContent")
        assert problem == "criteria[1].key: 'greeting' is given twice", problem
        assert (await process.api("GET", "/api/qa/forms/inbound"))[1]["version"] == 1
        await page.fill(f"{second} [name=key]", "solution")
        await page.fill(f"{second} [name=weight]", "2")
        await page.click("#form-save")
        assert await page.wait_for("document.querySelector('#form-saved').dataset.version") == "2"
        assert await page.text("#form-problems") == ""
        await page.wait_for("document.querySelector(\"#forms-table tr[data-key='inbound'] .version\").textContent"
                            " === '2'")
        await page.evaluate("document.querySelector('#form-editor').scrollIntoView(); true")
        await page.screenshot(SCREENSHOTS / "qa-form-edited-en.png")
        _, form = await process.api("GET", "/api/qa/forms/inbound")
        assert [(c["key"], c["weight"]) for c in form["criteria"]] == [("greeting", 1), ("solution", 2),
                                                                       ("identity", 1)], form

        # The same page in Chinese (the session is the browser's): drawn with real glyphs.
        zh = await browser.open(f"{process.url}/qa?lang=zh")
        await zh.send("Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1, mobile=False)
        await zh.wait_for("document.body.dataset.ready === 'true'")
        await zh.click(f"#recordings-table tr[data-key='{recording['id']}'] .score")
        await zh.wait_for("document.querySelectorAll('#criteria input').length === 3")
        assert await zh.text("#comment-add") == "在当前位置批注"
        await assert_chinese_is_drawn(zh, "#panels", "qa-scoring-zh")

    status, score = await process.api("GET", f"/api/qa/scores/{saved}")
    assert status == 200 and (score["score"], score["agent_id"], score["scorer"]) == (66.0, "1001", "user:supervisor")
    assert [(c["at"], c["text"]) for c in score["comments"]] == [(1.2, "friendly greeting"),
                                                                 (3.5, "did not give their name")]
    assert (score["recording_id"], score["call_id"]) == (recording["id"], recording["call_id"])
    assert (score["form"]["version"], score["criteria"][1]["weight"]) == (1, 3)  # the version it was given on

    # The report: ccctl report's QA table and its JSON (GET /api/reports answers `qa`), and GET /api/qa/report.
    shown = await asyncio.to_thread(ccctl, process.url, "report", "--by", "agent")
    assert shown.returncode == 0, shown.stderr
    qa_part = shown.stdout.split("quality (QA)", 1)[1]
    line = next(row for row in qa_part.splitlines() if "1001" in row)
    assert "66.0" in line and "Solved the problem 解决问题 (50%)" in line, qa_part
    data = json.loads((await asyncio.to_thread(ccctl, process.url, "report", "--json")).stdout)
    assert data["qa"] == [{"agent_id": "1001", "scored": 1, "average_score": 66.0, "critical_failed": 0,
                           "lowest_criterion": {"key": "solution", "label": "Solved the problem 解决问题",
                                                "average_percent": 50.0}}]
    assert (await process.api("GET", "/api/qa/report", token=SUPERVISOR))[1]["agents"] == data["qa"]
    assert (await process.api("GET", "/api/qa/report", token=AGENT_1001))[0] == 403  # the floor's figures

    # The agent sees their score and its comments on their page, and hears their recording there.
    async with Browser() as browser:
        mine = await sign_in(browser, process, "1001", "zh")
        assert not await mine.visible("#recordings") and not await mine.visible("#scoring")
        assert await mine.text("#scores h2") == "我的质检评分"
        await mine.click(f"#scores-table tr[data-key='{saved}'] .open")
        await mine.wait_for("document.querySelectorAll('#detail-comments li').length === 2")
        texts = "[...document.querySelectorAll('#detail-comments .text')].map((s) => s.textContent)"
        assert await mine.evaluate(texts) == ["friendly greeting", "did not give their name"]
        await mine.wait_for("isFinite(document.querySelector('#detail-player').duration)")
        await assert_chinese_is_drawn(mine, "#panels", "qa-agent-scores-zh")
        # A new score shows on the agent's open page at once (the qa.scored event): a critical criterion failed.
        status, failed = await process.api("POST", "/api/qa/scores", token=SUPERVISOR, json={
            "recording_id": recording["id"], "form": "inbound", "points": {"greeting": 5, "solution": 10,
                                                                           "identity": 0}})
        assert status == 201 and (failed["score"], failed["critical_failed"], failed["form"]["version"]) == \
            (0.0, True, 2), failed
        await mine.wait_for(f"!!document.querySelector(\"#scores-table tr[data-key='{failed['id']}'] .score.bad\")")
    # Another agent sees none of it (and agent 1001's token does).
    assert (await process.api("GET", "/api/qa/scores", token=AGENT_1002))[1]["scores"] == []
    assert (await process.api("GET", f"/api/qa/scores/{saved}", token=AGENT_1002))[0] == 403
    _, own = await process.api("GET", "/api/qa/scores", token=AGENT_1001)
    assert [s["id"] for s in own["scores"]] == [failed["id"], saved]
    # The event went to the agent scored (and supervisors), not to another agent.
    _, theirs = await process.api("GET", "/api/events?since=0&types=qa.scored", token=AGENT_1001)
    assert [(e["data"]["score_id"], e["agent_id"]) for e in theirs["events"]] == [(saved, "1001"),
                                                                                  (failed["id"], "1001")]
    assert (await process.api("GET", "/api/events?since=0&types=qa.scored", token=AGENT_1002))[1]["events"] == []
    for event in theirs["events"]:
        jsonschema.validate(event, event_schema("qa.scored"))  # as documented in events.yml
    assert (await process.api("GET", f"/api/qa/scores/{saved}", token=AGENT_1001))[0] == 200
