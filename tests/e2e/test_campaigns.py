"""Outbound campaigns on the real Asterisk (README "Outbound campaigns"): a progressive campaign of 100 contacts
whose customers sit behind the loopback trunk (one SIPp UAS on 127.0.0.1:5090 that answers, is busy, does not
answer or rejects, by the number it is called on) and three SIPp agent phones, with its report; a campaign
carried on across a SIGTERM and a SIGKILL of the controller with calls in flight."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.browser import Browser
from tests.e2e import test_ivr_acd
from tests.e2e.conftest import ADMIN_TOKEN, ControllerProcess, demo_config
from tests.sipp import Phone, _next_ports, _Sipp, uas_scenario

pytestmark = pytest.mark.e2e
stop_after = test_ivr_acd.stop_after  # the fixture
rows = test_ivr_acd.rows

AGENTS = [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
          {"id": "1002", "name": "李娜", "number": "1002", "endpoint": "8002", "queues": {"general": 0}},
          {"id": "1003", "name": "张伟", "number": "1003", "endpoint": "8003", "queues": {"general": 0}}]
#: The customer's behaviour is the 7th digit of their number: 1 answers, 2 busy (486), 3 never answers,
#: 4 rejects (603), 5 answers slowly (SLOW_EXTRA_MS later).
BEHAVIOURS = {"1": "answers", "2": "busy", "3": "no_answer", "4": "rejects"}
#: 90 customers dialled; with 5 on do-not-call lists, 4 outside their calling hours and 1 the dialing policy
#: refuses (an international number), 100 contacts.
MIX = {"1": 40, "2": 20, "3": 15, "4": 15}
DNC, OUT_OF_HOURS = 5, 4
SUPERVISOR_TOKEN = "demo-supervisor-token"
RING_SECONDS = 5.0
RETRY_SECONDS = 5.0
HOLD_MS = 1500  # an agent's talk
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
    branches = "".join(f'      <ereg regexp="INVITE sip:(\\+86)?138001{digit}" search_in="msg" check_it="false"'
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
        super().__init__(customers_scenario(), 5090, media_port, calls=calls, timeout_s=600)
        self.extra = ["-trace_msg", "-message_file", str(self.workdir / "messages.log")]

    def dialled(self) -> list[str]:
        """The user part of each INVITE's request line (one per call: not its retransmissions): the numbers as
        the trunk was asked to dial them."""
        text = (self.workdir / "messages.log").read_text(errors="replace")
        calls = re.findall(r"^INVITE sip:([^@;>\s]+)@.*?^Call-ID:\s*(\S+)", text, re.MULTILINE | re.DOTALL)
        return [dialled for dialled, _ in dict.fromkeys(calls)]


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


def zone_at(local_hour: int) -> str:
    """A fixed-offset zone whose local time now is about `local_hour` (Etc/GMT-8 is UTC+8)."""
    offset = (local_hour - datetime.datetime.now(datetime.UTC).hour + 12) % 24 - 12
    return "Etc/GMT" + (f"-{offset}" if offset > 0 else f"+{-offset}" if offset < 0 else "")


async def test_a_progressive_campaign_of_100_contacts_reaches_each_with_retries_dnc_hours_ring_limit_and_report(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    began = time.monotonic()
    process = ControllerProcess(tmp_path / "data", config=config(tmp_path))
    stop_after.append(process)
    await process.start()
    # Calling hours 06:00-18:00 in the callee's zone: the contacts live where it is about noon now, except
    # OUT_OF_HOURS of them where it is about midnight (no call may be placed to them).
    noon, midnight = zone_at(12), zone_at(0)
    contacts = [(number(digit, index), f"客户{digit}{index}", BEHAVIOURS[digit])
                for digit, count in MIX.items() for index in range(count)]
    dnc_numbers = [number("1", 90 + i) for i in range(DNC)]  # would answer; on a do-not-call list
    late_numbers = [number("1", 95 + i) for i in range(OUT_OF_HOURS)]  # would answer; outside their hours
    abroad = "+12125551234"  # 0012125551234 dialled from China: dialing.denied_prefixes has 00
    csv_text = "number,name,plan,timezone\n" + "".join(f"{n},{name},{kind},{noon}\n" for n, name, kind in contacts) \
        + "".join(f"{n},勿扰,dnc,{noon}\n" for n in dnc_numbers) \
        + "".join(f"{n},夜里,late,{midnight}\n" for n in late_numbers) + f"{abroad},Bob,abroad,{noon}\n" \
        + f"{contacts[0][0]},重复,dup,{noon}\n" + f"12345,坏号,bad,{noon}\n"
    total = len(contacts) + DNC + OUT_OF_HOURS + 1
    assert total == 100

    settings = tmp_path / "spring.json"
    settings.write_text(json.dumps({
        "mode": "progressive", "hours": "06:00-18:00", "allow_holidays": True, "ring_seconds": RING_SECONDS,
        "max_attempts": 2, "wrapup_seconds": 1,
        "retry_seconds": {"busy": RETRY_SECONDS, "no_answer": RETRY_SECONDS, "rejected": RETRY_SECONDS}}))
    created = await ccctl(process, "campaign", "create", "spring", "--settings", str(settings),
                          "--agents", "1001,1002,1003")
    assert "campaign spring (progressive): draft" in created, created
    contacts_file = tmp_path / "spring.csv"
    contacts_file.write_text(csv_text, encoding="utf-8")
    imported = await ccctl(process, "campaign", "import", "spring", str(contacts_file), "--json")
    body = json.loads(imported)
    assert body["imported"] == total
    assert [(d["line"], d["first_line"]) for d in body["duplicates"]] == [(total + 2, 2)]
    assert [i["number"] for i in body["invalid"]] == ["12345"]
    status, body = await process.api("POST", "/api/dnc", json={"numbers": dnc_numbers[:-1], "reason": "asked"})
    assert status == 201 and body["added"] == ["+86" + n for n in dnc_numbers[:-1]], body
    status, body = await process.api("POST", "/api/dnc", json={"numbers": dnc_numbers[-1:], "campaign": "spring"})
    assert status == 201, body

    answered = MIX["1"]
    unanswered = sum(count for digit, count in MIX.items() if digit != "1")
    expected_attempts = answered + 2 * unanswered
    customers = Customers(calls=expected_attempts + 20)  # more than expected: an extra dial would be answered
    phones = [Phone(15000 + n, answer_after_ms=300, hold_ms=HOLD_MS, calls=answered, timeout_s=600)
              for n in (1, 2, 3)]
    await customers.start()
    for phone in phones:
        await phone.start()
    for agent_id in ("1001", "1002", "1003"):
        status, body = await process.api("POST", f"/api/agents/{agent_id}/login", json={"ready": True})
        assert status == 200, body
    started_at = time.time()
    assert "spring (progressive): running" in await ccctl(process, "campaign", "start", "spring")

    # The contacts outside their hours stay open: the campaign does not finish; wait for all the others.
    late = {"+86" + n for n in late_numbers}
    deadline = time.monotonic() + 600  # about 3 min alone; three e2e groups on 2 cores have taken over 7
    while True:
        status, listing = await process.api("GET", "/api/campaigns/spring/contacts")
        others_open = [c for c in listing["contacts"] if c["number"] not in late
                       and c["status"] in ("pending", "retry", "dialing")]
        if not others_open or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    await asyncio.sleep(1)  # ticks after the last one: the late contacts are still not called
    status, shown = await process.api("GET", "/api/campaigns/spring")
    run_seconds = time.monotonic() - began
    on_the_wire = customers.dialled()
    customers.kill()
    for phone in phones:
        phone.kill()
    assert others_open == [], others_open
    print(f"100-contact progressive campaign: {run_seconds:.0f} s from the controller's start to the last contact")

    await flushed(process)
    status, listing = await process.api("GET", "/api/campaigns/spring/contacts")
    final = {c["number"]: c for c in listing["contacts"]}
    for dnc_number in dnc_numbers:  # the global list and the campaign's
        assert (final["+86" + dnc_number]["status"], final["+86" + dnc_number]["attempts"]) == ("dnc", 0)
    assert (final[abroad]["status"], final[abroad]["last_outcome"], final[abroad]["attempts"]) == (
        "failed", "not_allowed", 0)
    for late_number in late:
        assert (final[late_number]["status"], final[late_number]["attempts"]) == ("pending", 0), final[late_number]
        assert final[late_number]["next_at"] > started_at  # due at the next opening of their hours
    expected = {"answers": ("done", 1, "answered"), "busy": ("failed", 2, "busy"),
                "no_answer": ("failed", 2, "no_answer"), "rejects": ("failed", 2, "rejected")}
    for customer, _, kind in contacts:
        contact = final["+86" + customer]
        assert (contact["status"], contact["attempts"], contact["last_outcome"]) == expected[kind], contact

    attempts = rows(process, "SELECT * FROM campaign_attempts WHERE campaign = 'spring' ORDER BY started_at")
    numbers_by_no = {c["contact_no"]: c["number"] for c in listing["contacts"]}
    dialled = {numbers_by_no[a["contact_no"]] for a in attempts}
    assert len(attempts) == expected_attempts
    assert dialled == {"+86" + n for n, _, _ in contacts}  # never a DNC, late or refused number
    assert all(a["ended_at"] is not None for a in attempts)
    # On the wire: the trunk was asked for each number in its national form (the dialing policy's), never
    # +86… (and the international one, 0012125551234, not at all).
    assert sorted(on_the_wire) == sorted(numbers_by_no[a["contact_no"]].removeprefix("+86") for a in attempts)
    # The ring limit: an unanswered customer's attempt ends at ring_seconds.
    silent = [a for a in attempts if a["outcome"] == "no_answer"]
    assert len(silent) == 2 * MIX["3"]
    assert all(RING_SECONDS - 0.5 <= a["ended_at"] - a["started_at"] <= RING_SECONDS + 3 for a in silent), silent
    # Retries after the configured delay.
    by_contact: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_contact.setdefault(attempt["contact_no"], []).append(attempt)
    retried = [a for a in by_contact.values() if len(a) == 2]
    assert len(retried) == unanswered
    assert all(second["started_at"] - first["ended_at"] >= RETRY_SECONDS - 0.1 for first, second in retried)
    # Answered customers were connected to the agent reserved for them, with the screen pop.
    connecting = campaign_events(process, "campaign.connecting")
    assert len(connecting) == answered
    assert {e["agent_id"] for e in connecting} == {"1001", "1002", "1003"}
    pops = {e["screen_pop"]["number"]: e["screen_pop"] for e in connecting}
    assert set(pops) == {"+86" + n for n, _, kind in contacts if kind == "answers"}
    assert all(p["fields"] == {"plan": "answers"} and p["name"].startswith("客户1") for p in pops.values())
    for attempt in attempts:
        if attempt["outcome"] == "answered":
            assert attempt["agent_id"] in ("1001", "1002", "1003") and attempt["answered_at"], attempt
    stats = shown["stats"]
    assert (stats["dialed"], stats["answered"], stats["connected"], stats["abandoned"], stats["left"]) == (
        expected_attempts, answered, answered, 0, OUT_OF_HOURS), stats
    assert (shown["status"], stats["in_flight"], stats["agents"]) == ("running", 0, 3), shown

    # The report (ccctl report, from the store): the figures of the mix.
    report = json.loads(await ccctl(process, "report", "--json"))
    [spring] = [r for r in report["campaigns"] if r["campaign"] == "spring"]
    reached_rate = round(answered / len(contacts), 4)
    assert (spring["contacts"], spring["contacts_dialled"], spring["contacts_reached"], spring["contacts_left"]) == (
        total, len(contacts), answered, OUT_OF_HOURS), spring
    assert (spring["dialed"], spring["answered"], spring["connected"], spring["abandoned"]) == (
        expected_attempts, answered, answered, 0), spring
    assert (spring["contact_rate"], spring["abandon_rate"]) == (reached_rate, 0.0), spring
    assert spring["attempts_per_contact"] == round(expected_attempts / len(contacts), 4), spring
    assert spring["results"] == {"done": answered, "failed:busy": MIX["2"], "failed:no_answer": MIX["3"],
                                 "failed:rejected": MIX["4"], "dnc": DNC, "failed:not_allowed": 1,
                                 "pending": OUT_OF_HOURS}, spring
    assert spring["by_outcome"] == {"answered": answered, "busy": 2 * MIX["2"], "no_answer": 2 * MIX["3"],
                                    "rejected": 2 * MIX["4"]}, spring
    # Talk: the agent's phone hangs up HOLD_MS after it answers.
    assert HOLD_MS / 1000 - 0.5 <= spring["avg_talk_seconds"] <= HOLD_MS / 1000 + 1.5, spring
    assert spring["talk_seconds"] == pytest.approx(spring["avg_talk_seconds"] * answered, abs=answered * 0.1)
    table = await ccctl(process, "report")
    assert "campaigns" in table and "spring results: " in table and f"done {answered}" in table, table

    shown_text = await ccctl(process, "campaign", "stats", "spring")
    assert "running" in shown_text and f"dialed {expected_attempts}, answered {answered}, abandoned 0" in shown_text
    status, body = await process.api("POST", "/api/campaigns/spring/start")  # running: a clear refusal
    assert status == 409 and "running" in body["error"], body

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
        *(("+86" + n, "") for n in dnc_numbers[:-1]), ("+86" + dnc_numbers[-1], "spring"),
        (first["number"], "spring")}, body
    _, report = await process.api("GET", "/api/reports/campaigns?campaign=spring")
    assert report["campaigns"][0]["results"]["do_not_call"] == 1  # the disposition is the contact's result now


async def flushed(process: ControllerProcess) -> None:
    """Everything the controller wrote is committed (its report API flushes the store's queue first): the
    tests read the store directly, and a busy machine's writer may lag behind the API's in-memory view."""
    status, body = await process.api("GET", "/api/reports/campaigns")
    assert status == 200, body


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


async def wait_until(what: str, check: Any, within: float, every: float = 0.1) -> Any:
    """Poll `check()` (sync) until it returns something truthy; that."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        await asyncio.sleep(every)
    raise AssertionError(f"not within {within} s: {what}")


async def test_a_campaign_goes_on_after_a_sigterm_and_a_sigkill_with_calls_in_flight(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:
    """Twelve customers who answer after a few rings, two agents. The controller is stopped (SIGTERM) while two
    customers ring, then killed (SIGKILL) while one talks to an agent: each time the restarted controller carries
    the campaign on; every call placed has its attempt row, each closed once; a contact whose old dial may still
    ring is not dialled again before its ring limit; the talking one is not dialled again; the agents end ready."""
    ring_limit = 10.0
    settings = config(tmp_path)
    process = ControllerProcess(tmp_path / "data", config=settings)
    stop_after.append(process)
    await process.start()
    status, body = await process.api("POST", "/api/campaigns", json={
        "name": "again", "agents": ["1001", "1002"], "hours": "00:00-24:00", "allow_holidays": True,
        "ring_seconds": ring_limit, "max_attempts": 3, "wrapup_seconds": 1})
    assert status == 201, body
    customers_numbers = [number("5", index) for index in range(12)]
    status, body = await process.api("POST", "/api/campaigns/again/contacts", json={
        "csv": "number,name\n" + "".join(f"{n},客户{i}\n" for i, n in enumerate(customers_numbers))})
    assert status == 200 and body["imported"] == 12, body
    customers = Customers(calls=80)
    phones = [Phone(15001, answer_after_ms=300, hold_ms=3000, calls=40, timeout_s=400),
              Phone(15002, answer_after_ms=300, hold_ms=3000, calls=40, timeout_s=400)]
    await customers.start()
    for phone in phones:
        await phone.start()
    for agent_id in ("1001", "1002"):
        status, body = await process.api("POST", f"/api/agents/{agent_id}/login", json={"ready": True})
        assert status == 200, body
    status, body = await process.api("POST", "/api/campaigns/again/start")
    assert status == 200, body

    def open_attempts(answered: bool) -> list[dict[str, Any]]:
        return rows(process, "SELECT * FROM campaign_attempts WHERE campaign = 'again' AND ended_at IS NULL"
                    + (" AND answered_at IS NOT NULL" if answered else " AND answered_at IS NULL"))

    # 1. SIGTERM while two customers' phones ring (each dial's row is in the store before the dial).
    ringing = await wait_until("two customers ringing", lambda: len(open_attempts(False)) == 2 and
                               open_attempts(False), 20)
    assert process.terminate() == 0
    stops = [(time.time(), [a["call_id"] for a in ringing])]
    await process.start()
    _, shown = await process.api("GET", "/api/campaigns/again")
    assert shown["status"] == "running", shown

    # 2. SIGKILL while a customer talks to an agent.
    talking = await wait_until("a customer talking to an agent", lambda: open_attempts(True), 60)
    process.kill()
    stops.append((time.time(), [a["call_id"] for a in talking]))
    await process.start()
    restarted_at = time.time()
    _, shown = await process.api("GET", "/api/campaigns/again")
    assert shown["status"] == "running", shown
    before = len(rows(process, "SELECT id FROM campaign_attempts WHERE campaign = 'again'"))
    assert shown["stats"]["dialed"] >= before  # the figures go on from the store's attempts

    # The wallboard: the campaign's live figures, counted from before the restarts, and going on.
    async with Browser() as browser:
        board = await browser.open(f"{process.url}/wallboard?token={SUPERVISOR_TOKEN}&lang=en")
        row = '#campaigns tr[data-campaign="again"]'
        dialed = f"Number(document.querySelector('{row} td.dialed')?.textContent)"
        await board.wait_for(f"{dialed} >= {before}")
        await board.wait_for(f"{dialed} > {before}", timeout=40)  # a dial of the new process, shown live
        cells = await board.evaluate(f"[...document.querySelectorAll('{row} td')].map((td) => td.textContent)")
        assert cells[0] == "again" and cells[1] == "running" and cells[7].endswith("/ 2"), cells
        assert cells[4] == "0" and cells[5] == "0.0%", cells  # nobody abandoned
        done = await until_finished(process, "again", 180)
        await board.wait_for(f"document.querySelector('{row}') === null")  # finished: off the board
    on_the_wire = customers.dialled()
    customers.kill()
    for phone in phones:
        phone.kill()
    assert done["status"] == "finished", done
    await flushed(process)
    attempts = rows(process, "SELECT * FROM campaign_attempts WHERE campaign = 'again' ORDER BY started_at, id")
    _, listing = await process.api("GET", "/api/campaigns/again/contacts")
    contacts = {c["contact_no"]: c for c in listing["contacts"]}
    # No attempt lost: every call placed on the trunk has its row; none counted twice: each row ended once.
    by_number: dict[str, int] = {}
    for dialled in on_the_wire:
        by_number[dialled] = by_number.get(dialled, 0) + 1
    assert by_number == {c["number"].removeprefix("+86"): c["attempts"] for c in contacts.values()}, by_number
    assert all(a["ended_at"] is not None and a["outcome"] for a in attempts), attempts
    assert {c["contact_no"]: c["attempts"] for c in contacts.values()} == {
        no: sum(1 for a in attempts if a["contact_no"] == no) for no in contacts}
    by_call = {a["call_id"]: a for a in attempts}
    killed_talk = by_call[stops[1][1][0]]
    assert killed_talk["outcome"] == "interrupted", killed_talk  # closed by the restart, not answered again
    talked_contact = contacts[killed_talk["contact_no"]]
    assert (talked_contact["status"], talked_contact["last_outcome"]) == ("done", "interrupted"), talked_contact
    assert max(a["started_at"] for a in attempts if a["contact_no"] == killed_talk["contact_no"]) == \
        killed_talk["started_at"]  # the customer who was talking is not dialled again
    for call_id in stops[0][1]:  # ringing at the graceful stop: closed by the restart, retried later
        assert by_call[call_id]["outcome"] == "interrupted", by_call[call_id]
    # Every customer answers: no dial of the restarted controller was lost (e.g. placed before the new process
    # had reconciled its calls with Asterisk, which took it for failed while the customer's phone rang on).
    assert {a["outcome"] for a in attempts} == {"answered", "interrupted"}, attempts
    # Never two dials of a contact at once: a dial interrupted before its answer may ring until its ring limit.
    for no in contacts:
        mine = [a for a in attempts if a["contact_no"] == no]
        for before, after in itertools.pairwise(mine):
            free_at = before["started_at"] + ring_limit if before["outcome"] == "interrupted" and \
                not before["answered_at"] else before["ended_at"]
            assert after["started_at"] >= free_at, (before, after)
    assert all(c["status"] == "done" for c in contacts.values()), contacts
    # The figures are the store's, across the restarts.
    stats = done["stats"]
    assert (stats["dialed"], stats["connected"]) == (
        len(attempts), sum(1 for a in attempts if a["outcome"] == "answered")), stats
    # The agents' states: both took calls after the kill, and are ready at the end.
    assert {a["agent_id"] for a in attempts if a["started_at"] > restarted_at} == {"1001", "1002"}
    await asyncio.sleep(2)  # the last wrap-up (1 s)
    _, agents = await process.api("GET", "/api/agents")
    assert {a["id"]: a["state"] for a in agents["agents"] if a["id"] in ("1001", "1002")} == {
        "1001": "ready", "1002": "ready"}, agents
