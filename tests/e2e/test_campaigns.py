"""Outbound campaigns on the real Asterisk (README "Outbound campaigns"): a small progressive campaign whose
customers sit behind the loopback trunk (one SIPp UAS on 127.0.0.1:5090 that answers, is busy, does not
answer or rejects, by the number it is called on) and two SIPp agent phones."""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e import test_ivr_acd
from tests.e2e.conftest import ADMIN_TOKEN, ControllerProcess, demo_config
from tests.sipp import Phone, _next_ports, _Sipp, uas_scenario

pytestmark = pytest.mark.e2e
stop_after = test_ivr_acd.stop_after  # the fixture
rows = test_ivr_acd.rows

AGENTS = [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
          {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"general": 0}}]
#: The customer's behaviour is the 7th digit of their number: 1 answers, 2 busy (486), 3 never answers,
#: 4 rejects (603), 5 answers slowly (SLOW_EXTRA_MS later).
BEHAVIOURS = {"1": "answers", "2": "busy", "3": "no_answer", "4": "rejects"}
MIX = {"1": 5, "2": 3, "3": 2, "4": 1}
RING_SECONDS = 6.0
RETRY_SECONDS = 5.0
CUSTOMER_RING_MS = 800
SLOW_EXTRA_MS = 4000
BRANCHES = (("2", "busy"), ("3", "silent"), ("4", "reject"), ("5", "slow"))

_REPLY = """  <send>
    <![CDATA[
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      {cseq}
      Content-Length: 0

    ]]>
  </send>
"""


#: The answer to a CANCELled INVITE: its CSeq is the INVITE's, not the CANCEL's.
TERMINATED = _REPLY.format(status="487 Request Terminated", cseq="CSeq: [$invite_cseq] INVITE")


def number(behaviour: str, index: int) -> str:
    return f"138001{behaviour}38{index:02d}"


def customers_scenario() -> str:
    """One UAS for every customer: what it does depends on the number in the INVITE's request line. The
    answering phone of tests/sipp.py, with branches to a busy, a declining and a silent customer."""
    branches = "".join(f'      <ereg regexp="INVITE sip:\\+86138001{digit}" search_in="msg" check_it="false"'
                       f' assign_to="{name}"/>\n' for digit, name in BRANCHES)
    answering = uas_scenario(CUSTOMER_RING_MS)
    invite = '  <recv request="INVITE" crlf="true" rrs="true"/>\n'
    ringing_end = answering.index("  </send>\n") + len("  </send>\n")  # after the 180 Ringing
    assert answering.count(invite) == 1 and answering.endswith("</scenario>\n")
    head = answering[:ringing_end].replace(invite, f"""  <recv request="INVITE" crlf="true" rrs="true">
    <action>
{branches}      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/>
    </action>
  </recv>
""")
    answer = answering[ringing_end:-len("</scenario>\n")]
    return head + f"""  <nop next="busy" test="busy"/>
  <nop next="silent" test="silent"/>
  <nop next="reject" test="reject"/>
  <nop next="slow" test="slow"/>
  <nop next="answer"/>
  <label id="slow"/>
  <pause milliseconds="{SLOW_EXTRA_MS}"/>
  <label id="answer"/>
{answer}  <nop next="end"/>
  <label id="busy"/>
  <pause milliseconds="300"/>
{_REPLY.format(status="486 Busy Here", cseq="[last_CSeq:]")}  <recv request="ACK" next="end"/>
  <label id="reject"/>
  <pause milliseconds="300"/>
{_REPLY.format(status="603 Decline", cseq="[last_CSeq:]")}  <recv request="ACK" next="end"/>
  <label id="silent"/>
  <recv request="CANCEL" timeout="120000"/>
{_REPLY.format(status="200 OK", cseq="[last_CSeq:]")}{TERMINATED}  <recv request="ACK"/>
  <label id="end"/>
</scenario>
"""


class Customers(_Sipp):
    def __init__(self, calls: int) -> None:
        _, media_port = _next_ports()
        super().__init__(customers_scenario(), 5090, media_port, calls=calls, timeout_s=300)


def config(tmp_path: Path) -> Path:
    general = {"name": "general", "wrapup_seconds": 1, "ring_timeout": 10, "max_wait": 600, "announce_interval": 120,
               "no_agents": "wait", "announce_agent_number": False}
    return demo_config(tmp_path, acd={"center_name": "演示热线", "queues": [general], "agents": AGENTS})


def campaign_events(process: ControllerProcess, kind: str) -> list[dict[str, Any]]:
    return [{**json.loads(row["data"]), "at": row["at"], "agent_id": row["agent_id"], "call_id": row["call_id"]}
            for row in rows(process, "SELECT * FROM cti_events WHERE type = ? ORDER BY seq", kind)]


async def until_finished(process: ControllerProcess, name: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        status, body = await process.api("GET", f"/api/campaigns/{name}")
        assert status == 200, body
        if body["status"] == "finished" or time.monotonic() > deadline:
            return dict(body)
        await asyncio.sleep(0.5)


async def test_a_progressive_campaign_reaches_every_contact_with_retries_dnc_and_the_ring_limit(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    process = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(process)
    await process.start()
    contacts = [(number(digit, index), f"客户{digit}{index}", BEHAVIOURS[digit])
                for digit, count in MIX.items() for index in range(count)]
    dnc_number = number("1", 9)  # would answer; on the global do-not-call list
    csv_text = "number,name,plan\n" + "".join(f"{n},{name},{kind}\n" for n, name, kind in contacts) \
        + f"{dnc_number},勿扰,dnc\n" + f"{contacts[0][0]},重复,dup\n" + "12345,坏号,bad\n"

    settings = tmp_path / "spring.json"
    settings.write_text(json.dumps({
        "mode": "progressive", "hours": "00:00-24:00", "allow_holidays": True, "ring_seconds": RING_SECONDS,
        "max_attempts": 2, "wrapup_seconds": 1,
        "retry_seconds": {"busy": RETRY_SECONDS, "no_answer": RETRY_SECONDS, "rejected": RETRY_SECONDS}}))
    created = await ccctl(process, "campaign", "create", "spring", "--settings", str(settings), "--agents", "1001,1002")
    assert "campaign spring (progressive): draft" in created, created
    contacts_file = tmp_path / "spring.csv"
    contacts_file.write_text(csv_text, encoding="utf-8")
    imported = await ccctl(process, "campaign", "import", "spring", str(contacts_file), "--json")
    body = json.loads(imported)
    assert body["imported"] == 12
    assert [(d["line"], d["first_line"]) for d in body["duplicates"]] == [(14, 2)]
    assert [i["number"] for i in body["invalid"]] == ["12345"]
    status, body = await process.api("POST", "/api/dnc", json={"numbers": [dnc_number], "reason": "asked"})
    assert status == 201 and body["added"] == ["+86" + dnc_number], body

    answered = MIX["1"]
    customers = Customers(calls=40)  # more than the 17 attempts expected: an extra dial would be answered
    phones = [Phone(15001, answer_after_ms=300, hold_ms=2000, calls=answered, timeout_s=240),
              Phone(15002, answer_after_ms=300, hold_ms=2000, calls=answered, timeout_s=240)]
    await customers.start()
    for phone in phones:
        await phone.start()
    for agent_id in ("1001", "1002"):
        status, body = await process.api("POST", f"/api/agents/{agent_id}/login", json={"ready": True})
        assert status == 200, body
    assert "spring (progressive): running" in await ccctl(process, "campaign", "start", "spring")

    done = await until_finished(process, "spring", 180)
    customers.kill()
    for phone in phones:
        phone.kill()
    assert done["status"] == "finished", done
    status, listing = await process.api("GET", "/api/campaigns/spring/contacts")
    final = {c["number"]: c for c in listing["contacts"]}
    dnc_contact = final["+86" + dnc_number]
    assert (dnc_contact["status"], dnc_contact["attempts"]) == ("dnc", 0), dnc_contact
    expected = {"answers": ("done", 1, "answered"), "busy": ("failed", 2, "busy"),
                "no_answer": ("failed", 2, "no_answer"), "rejects": ("failed", 2, "rejected")}
    for customer, _, kind in contacts:
        contact = final["+86" + customer]
        assert (contact["status"], contact["attempts"], contact["last_outcome"]) == expected[kind], contact

    attempts = rows(process, "SELECT * FROM campaign_attempts WHERE campaign = 'spring' ORDER BY started_at")
    numbers_by_no = {c["contact_no"]: c["number"] for c in listing["contacts"]}
    dialled = [numbers_by_no[a["contact_no"]] for a in attempts]
    assert len(attempts) == 17 and "+86" + dnc_number not in dialled  # the DNC number never dialled
    assert all(a["ended_at"] is not None for a in attempts)
    # The ring limit: an unanswered customer's attempt ends at ring_seconds.
    silent = [a for a in attempts if a["outcome"] == "no_answer"]
    assert len(silent) == 4
    assert all(RING_SECONDS - 0.5 <= a["ended_at"] - a["started_at"] <= RING_SECONDS + 3 for a in silent), silent
    # Retries after the configured delay.
    by_contact: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_contact.setdefault(attempt["contact_no"], []).append(attempt)
    retried = [a for a in by_contact.values() if len(a) == 2]
    assert len(retried) == 6
    assert all(second["started_at"] - first["ended_at"] >= RETRY_SECONDS - 0.1 for first, second in retried)
    # Answered customers were connected to the agent reserved for them, with the screen pop.
    connecting = campaign_events(process, "campaign.connecting")
    assert len(connecting) == answered
    assert {e["agent_id"] for e in connecting} <= {"1001", "1002"}
    pops = {e["screen_pop"]["number"]: e["screen_pop"] for e in connecting}
    assert set(pops) == {"+86" + n for n, _, kind in contacts if kind == "answers"}
    assert all(p["fields"] == {"plan": "answers"} and p["name"].startswith("客户1") for p in pops.values())
    for attempt in attempts:
        if attempt["outcome"] == "answered":
            assert attempt["agent_id"] in ("1001", "1002") and attempt["answered_at"], attempt
    stats = done["stats"]
    assert (stats["dialed"], stats["answered"], stats["abandoned"], stats["left"]) == (17, answered, 0, 0), stats
    shown = await ccctl(process, "campaign", "stats", "spring")
    assert "finished" in shown and "dialed 17, answered 5, abandoned 0" in shown, shown
    status, body = await process.api("POST", "/api/campaigns/spring/start")  # finished: a clear refusal
    assert status == 409 and "finished" in body["error"], body

    # Dispositions after the calls: "do not call me" closes the contact and lists the number for the campaign;
    # an unknown disposition is refused and changes nothing.
    first = final["+86" + contacts[0][0]]
    path = f"/api/campaigns/spring/contacts/{first['contact_no']}/disposition"
    status, body = await process.api("POST", path, json={"disposition": "maybe"})
    assert status == 400, body
    status, body = await process.api("POST", path, token="demo-agent-1001-token", json={"disposition": "do_not_call"})
    assert status == 200 and (body["status"], body["disposition"]) == ("dnc", "do_not_call"), body
    status, body = await process.api("GET", "/api/dnc")
    assert {(n["number"], n["campaign"]) for n in body["numbers"]} == {
        ("+86" + dnc_number, ""), (first["number"], "spring")}, body


async def ccctl(process: ControllerProcess, *args: str) -> str:
    """`ccctl` against the test's controller (in a thread: it blocks); its output, checked it succeeded."""
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "controller.cli.main", "--url", process.url,
                                                    "--token", ADMIN_TOKEN, *args],
                                   capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def test_no_call_outside_the_callees_calling_hours(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    """Two customers, the same hours: in Shanghai they have not begun (not dialled, due at the opening);
    two hours further east they have (dialled)."""
    process = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(process)
    await process.start()
    shanghai = datetime.datetime.now(ZoneInfo("Asia/Shanghai"))
    if shanghai.minute >= 58:  # the window below is one local hour: keep clear of its last minute
        await asyncio.sleep(125)
        shanghai = datetime.datetime.now(ZoneInfo("Asia/Shanghai"))
    opens = (shanghai.hour + 2) % 24
    status, body = await process.api("POST", "/api/campaigns", json={
        "name": "east", "agents": ["1001"], "hours": f"{opens:02d}:00-{opens:02d}:59", "allow_holidays": True,
        "max_attempts": 1})
    assert status == 201, body
    later, sooner = number("1", 1), number("2", 1)  # the second would be busy
    status, body = await process.api("POST", "/api/campaigns/east/contacts", json={
        "csv": f"number,name,timezone\n{later},上海,\n{sooner},东边,Etc/GMT-10\n"})
    assert status == 200 and body["imported"] == 2, body
    customers = Customers(calls=5)
    await customers.start()
    status, body = await process.api("POST", "/api/agents/1001/login", json={"ready": True})
    assert status == 200, body
    status, body = await process.api("POST", "/api/campaigns/east/start")
    assert status == 200, body
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        _, listing = await process.api("GET", "/api/campaigns/east/contacts")
        by_number = {c["number"]: c for c in listing["contacts"]}
        if by_number["+86" + sooner]["status"] == "failed":
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # ticks after the first dial: the other contact is still not called
    customers.kill()
    _, listing = await process.api("GET", "/api/campaigns/east/contacts")
    by_number = {c["number"]: c for c in listing["contacts"]}
    east, waiting = by_number["+86" + sooner], by_number["+86" + later]
    assert (east["status"], east["attempts"], east["last_outcome"]) == ("failed", 1, "busy"), east
    opening = datetime.datetime.combine(shanghai.date(), datetime.time(opens), shanghai.tzinfo)
    if opening <= shanghai:
        opening += datetime.timedelta(days=1)
    assert (waiting["status"], waiting["attempts"]) == ("pending", 0), waiting
    assert waiting["next_at"] == pytest.approx(opening.timestamp()), waiting
    attempts = rows(process, "SELECT contact_no FROM campaign_attempts WHERE campaign = 'east'")
    assert [a["contact_no"] for a in attempts] == [east["contact_no"]]


async def test_predictive_abandons_a_customer_with_no_free_agent_with_the_message_then_connects_them(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    """Predictive mode on Asterisk: the only agent goes not ready while their customer rings; the customer
    answers to nobody, hears the short message and is counted abandoned; retried, they reach the agent."""
    process = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(process)
    await process.start()
    status, body = await process.api("POST", "/api/campaigns", json={
        "name": "guess", "mode": "predictive", "agents": ["1001"], "hours": "00:00-24:00", "allow_holidays": True,
        "max_attempts": 2, "wrapup_seconds": 1, "retry_seconds": {"abandoned": RETRY_SECONDS}})
    assert status == 201, body
    slow = number("5", 1)
    status, body = await process.api("POST", "/api/campaigns/guess/contacts",
                                     json={"csv": f"number,name,plan\n{slow},慢,gold\n"})
    assert status == 200 and body["imported"] == 1, body
    customers = Customers(calls=4)
    phone = Phone(15001, answer_after_ms=300, hold_ms=2000, calls=1, timeout_s=120)
    await customers.start()
    await phone.start()
    status, body = await process.api("POST", "/api/agents/1001/login", json={"ready": True})
    assert status == 200, body
    status, body = await process.api("POST", "/api/campaigns/guess/start")
    assert status == 200, body
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, shown = await process.api("GET", "/api/campaigns/guess")
        if shown["stats"]["dialed"] >= 1:
            break
        await asyncio.sleep(0.1)
    status, body = await process.api("POST", "/api/agents/1001/not_ready", json={"reason": "meeting"})
    assert status == 200, body
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        _, shown = await process.api("GET", "/api/campaigns/guess")
        if shown["stats"]["abandoned"] >= 1:
            break
        await asyncio.sleep(0.2)
    assert shown["stats"]["abandoned"] == 1, shown
    status, body = await process.api("POST", "/api/agents/1001/ready")
    assert status == 200, body
    done = await until_finished(process, "guess", 40)
    customers.kill()
    phone.kill()
    assert done["status"] == "finished", done
    attempts = rows(process, "SELECT * FROM campaign_attempts WHERE campaign = 'guess' ORDER BY started_at")
    assert [a["outcome"] for a in attempts] == ["abandoned", "answered"], attempts
    assert attempts[1]["started_at"] - attempts[0]["ended_at"] >= RETRY_SECONDS - 0.1
    assert (attempts[0]["agent_id"], attempts[1]["agent_id"]) == (None, "1001")
    played = rows(process, "SELECT detail FROM call_events WHERE call_id = ? AND kind = 'playback'",
                  attempts[0]["call_id"])
    assert [json.loads(p["detail"])["state"] for p in played] == ["done"], played  # the message, to its end
    assert rows(process, "SELECT kind FROM call_events WHERE call_id = ? AND kind = 'playback'",
                attempts[1]["call_id"]) == []  # the connected one heard no such message
    stats = done["stats"]
    assert (stats["dialed"], stats["answered"], stats["abandoned"]) == (2, 2, 1), stats
    assert stats["abandon_rate"] == 0.5
