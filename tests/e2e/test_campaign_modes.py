"""Campaign modes on the real Asterisk (README "Outbound campaigns"): preview (the agent dials or skips the
offered contact), IVR-only (a notification whose customer presses 1 and reaches an agent through the
flow's queue node) and answering-machine detection (Asterisk's AMD() in a dialplan hop).

One controller for the module. The customers sit behind the loopback trunk: one SIPp UAS on 127.0.0.1:5090
whose behaviour is the 7th digit of the number it is called on: 1 a person (a short "Hello?" then silence),
6 an answering machine (a long spoken greeting, then silence), 7 presses 1 after the IVR's greeting starts,
8 listens and says nothing. The voices are espeak-ng's, turned into A-law RTP captures with sox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Browser
from tests.e2e.conftest import ControllerProcess, demo_config, running_controller
from tests.e2e.test_campaigns import AGENTS, campaign_events, rows, until_finished
from tests.e2e.test_toolbar_controls import sign_in
from tests.sipp import PCAP_DIR, Phone, _next_ports, _Sipp, audio_pcap, uas_scenario

pytestmark = pytest.mark.e2e

PERSON, MACHINE, PRESSES_1, LISTENS = "1", "6", "7", "8"
AGENT_1001 = "demo-agent-1001-token"
SUPERVISOR = "demo-supervisor-token"
FLOW = """
flow: notice
language: en
start: notice
nodes:
  notice:
    type: menu
    prompt: ["Your parcel arrives tomorrow. To talk to someone, press 1."]
    options: {"1": agent}
    timeout: 3
    retries: 1
    default: goodbye
  agent:
    type: queue
    queue: general
    answered: goodbye
    otherwise: goodbye
  goodbye:
    type: hangup
    prompt: ["Goodbye."]
"""
MACHINE_GREETING = ("Hello, you have reached the voice mailbox of John Smith. I am not able to take your call "
                    "right now. Please leave your name, your number and a short message after the tone.")


def number(behaviour: str, index: int) -> str:
    return f"138001{behaviour}38{index:02d}"


def spoken_alaw(text: str, folder: Path, *, before: float, after: float) -> bytes:
    """`text` said by espeak-ng as 8 kHz A-law samples, with `before` / `after` seconds of silence."""
    wav, raw = folder / "speech.wav", folder / "speech.al"
    subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), text], check=True, timeout=30)
    subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", "-t", "al", str(raw), "pad", str(before), str(after)],
                   check=True, timeout=30)
    return raw.read_bytes()


def customers_scenario(folder: Path) -> str:
    """The answering phone of tests/sipp.py (A-law), with a branch per behaviour after the ACK."""
    person = audio_pcap(spoken_alaw("Hello?", folder, before=0.6, after=6), folder / "person.pcap")
    machine = audio_pcap(spoken_alaw(MACHINE_GREETING, folder, before=0.3, after=5), folder / "machine.pcap")
    branches = "".join(f'      <ereg regexp="INVITE sip:(\\+86)?138001{digit}" search_in="msg" check_it="false"'
                       f' assign_to="{name}"/>\n'
                       for digit, name in ((PERSON, "person"), (MACHINE, "machine"), (PRESSES_1, "presses")))
    answering = uas_scenario(300, talk=True)
    invite = '  <recv request="INVITE" crlf="true" rrs="true"/>\n'
    ack = '  <recv request="ACK" rtd="true" crlf="true"/>\n'
    assert answering.count(invite) == 1 and answering.count(ack) == 1
    play = '  <nop><action><exec play_pcap_audio="{}"/></action></nop>\n'
    return answering.replace(invite, f"""  <recv request="INVITE" crlf="true" rrs="true">
    <action>
{branches}    </action>
  </recv>
""").replace(ack, ack + f"""  <nop next="person" test="person"/>
  <nop next="machine" test="machine"/>
  <nop next="presses" test="presses"/>
  <nop next="up"/>
  <label id="person"/>
{play.format(person)}  <nop next="up"/>
  <label id="machine"/>
{play.format(machine)}  <nop next="up"/>
  <label id="presses"/>
  <pause milliseconds="2500"/>
{play.format(PCAP_DIR / "dtmf_2833_1.pcap")}  <label id="up"/>
""")


class Customers(_Sipp):
    def __init__(self, folder: Path, calls: int) -> None:
        _, media_port = _next_ports()
        super().__init__(customers_scenario(folder), 5090, media_port, calls=calls, timeout_s=120)


@pytest.fixture(scope="module")
def shared(asterisk: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    folder = tmp_path_factory.mktemp("campaign-modes")
    flows = folder / "flows"
    flows.mkdir()
    (flows / "notice.yaml").write_text(FLOW)
    general = {"name": "general", "wrapup_seconds": 1, "ring_timeout": 10, "max_wait": 600, "announce_interval": 0,
               "no_agents": "wait", "announce_agent_number": False}
    config = demo_config(folder, ivr={"flows_dir": str(flows)}, acd={"center_name": "演示热线", "queues": [general],
                                                                      "agents": AGENTS})
    with running_controller(folder, config) as process:
        yield process


@pytest.fixture
def sipp_folder(tmp_path: Path) -> Path:
    return tmp_path


async def create(process: ControllerProcess, name: str, numbers: list[str], **settings: Any) -> None:
    status, body = await process.api("POST", "/api/campaigns", json={
        "name": name, "hours": "00:00-24:00", "allow_holidays": True, "max_attempts": 1, "wrapup_seconds": 1,
        **settings})
    assert status == 201, body
    status, body = await process.api("POST", f"/api/campaigns/{name}/contacts", json={
        "csv": "number,name,plan\n" + "".join(f"{n},客户{i},p{i}\n" for i, n in enumerate(numbers))})
    assert status == 200 and body["imported"] == len(numbers), body


async def offered(process: ControllerProcess, agent_id: str, *, within: float = 10) -> dict[str, Any]:
    """The agent's offered contact, asked with their own token (1001) or a supervisor's."""
    deadline = time.monotonic() + within
    token = AGENT_1001 if agent_id == "1001" else SUPERVISOR
    while True:
        status, body = await process.api("GET", f"/api/agents/{agent_id}/preview", token=token)
        if status == 200 or time.monotonic() > deadline:
            assert status == 200, body
            return dict(body)
        await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def customers_and_agent(process: ControllerProcess, folder: Path, *, calls: int, agent_id: str,
                              phone_port: int, log_in: bool = True) -> AsyncIterator[None]:
    """The customers' UAS and the agent's phone (answers, talks 2 s, hangs up) running, the agent logged in
    and ready (unless the test does it); afterwards all stopped and the agent logged out (after the wrap-up)."""
    customers = Customers(folder, calls=calls)
    phone = Phone(phone_port, answer_after_ms=300, hold_ms=2000, calls=1, timeout_s=90)
    await customers.start()
    await phone.start()
    try:
        if log_in:
            status, body = await process.api("POST", f"/api/agents/{agent_id}/login", json={"ready": True})
            assert status == 200, body
        yield
    finally:
        customers.kill()
        phone.kill()
        deadline = time.monotonic() + 15
        while (await process.api("POST", f"/api/agents/{agent_id}/logout"))[0] != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.3)


async def test_preview_each_agent_sees_their_own_contact_skips_one_and_dials_the_next(
        shared: ControllerProcess, sipp_folder: Path) -> None:
    """Two agents are offered two different contacts; 1002 logs out (their offer is withdrawn); 1001 skips
    theirs on the toolbar (headless Chromium), is offered 1002's and dials it through the API."""
    first, second = number(PERSON, 1), number(PERSON, 2)
    await create(shared, "look", [first, second], mode="preview", agents=["1001", "1002"])
    status, body = await shared.api("GET", "/api/agents/1001/preview", token=AGENT_1001)
    assert status == 404, body  # nothing is offered before the campaign runs
    async with customers_and_agent(shared, sipp_folder, calls=2, agent_id="1001", phone_port=15001, log_in=False), \
            Browser() as browser:
        toolbar = await browser.open(f"{shared.url}/toolbar?agent=1001&lang=en")
        await sign_in(toolbar)
        assert not await toolbar.visible("#preview-row")
        status, body = await shared.api("POST", "/api/agents/1002/login", json={"ready": True})
        assert status == 200, body
        status, body = await shared.api("POST", "/api/campaigns/look/start")
        assert status == 200, body
        mine, theirs = await offered(shared, "1001"), await offered(shared, "1002")
        numbers = {mine["screen_pop"]["number"], theirs["screen_pop"]["number"]}
        assert numbers == {"+86" + first, "+86" + second}, (mine, theirs)  # a contact is claimed by one agent
        index = 0 if mine["screen_pop"]["number"] == "+86" + first else 1
        assert (mine["campaign"], mine["screen_pop"]["fields"]) == ("look", {"plan": f"p{index}"}), mine
        shown = mine["screen_pop"]["number"]
        await toolbar.wait_for(f"document.querySelector('#preview-contact').textContent.includes('{shown}')")
        assert await toolbar.text("#preview-contact") == f"look · 客户{index} · {shown} · plan=p{index}"
        status, body = await shared.api("GET", "/api/agents/1002/preview", token=AGENT_1001)
        assert status == 403, body  # another agent's offer
        await asyncio.sleep(1.5)  # ticks later: the same contacts, still offered once each, and nothing dialled
        assert (await offered(shared, "1001"), await offered(shared, "1002")) == (mine, theirs)
        assert [e for e in campaign_events(shared, "campaign.dialing") if e["campaign"] == "look"] == []

        status, body = await shared.api("POST", "/api/agents/1002/logout")
        assert status == 200, body
        await toolbar.click("#preview-skip")
        passed_on = theirs["screen_pop"]["number"]  # withdrawn from 1002, offered to 1001 next
        await toolbar.wait_for(f"document.querySelector('#preview-contact').textContent.includes('{passed_on}')")
        offer = await offered(shared, "1001")
        assert offer["screen_pop"]["number"] == passed_on, offer
        status, dialled = await shared.api("POST", "/api/agents/1001/preview/dial", token=AGENT_1001)
        assert status == 202 and dialled["contact"]["status"] == "dialing", dialled
        status, body = await shared.api("POST", "/api/agents/1001/preview/dial", token=AGENT_1001)
        assert status == 404, body  # dialled once: no offer left
        await toolbar.wait_for("document.querySelector('#preview-row').hidden")
        done = await until_finished(shared, "look", 40)
        assert done["status"] == "finished", done
    _, listing = await shared.api("GET", "/api/campaigns/look/contacts")
    final = {c["number"]: c for c in listing["contacts"]}
    skipped, called = final[mine["screen_pop"]["number"]], final[passed_on]
    assert (skipped["status"], skipped["last_outcome"], skipped["attempts"]) == ("skipped", "skipped", 0), final
    assert (called["status"], called["last_outcome"], called["attempts"]) == ("done", "answered", 1), final
    attempts = rows(shared, "SELECT * FROM campaign_attempts WHERE campaign = 'look'")
    assert [(a["call_id"], a["agent_id"], a["outcome"]) for a in attempts] == [
        (dialled["call_id"], "1001", "answered")]
    previews = sorted((e["agent_id"], e["screen_pop"]["number"])
                      for e in campaign_events(shared, "campaign.preview") if e["campaign"] == "look")
    assert previews == sorted([("1001", skipped["number"]), ("1002", passed_on), ("1001", passed_on)]), previews
    ended = sorted((e["agent_id"], e["contact_no"], e["how"]) for e in campaign_events(
        shared, "campaign.preview_ended") if e["campaign"] == "look")
    assert ended == sorted([("1002", called["contact_no"], "withdrawn: agent logged out"),
                            ("1001", skipped["contact_no"], "skipped"),
                            ("1001", called["contact_no"], "dialled")]), ended
    connecting = [e for e in campaign_events(shared, "campaign.connecting") if e["campaign"] == "look"]
    assert [(e["agent_id"], e["call_id"]) for e in connecting] == [("1001", dialled["call_id"])]


async def test_an_ivr_only_notification_whose_customer_presses_1_reaches_an_agent(
        shared: ControllerProcess, sipp_folder: Path) -> None:
    presses, listens = number(PRESSES_1, 1), number(LISTENS, 1)
    status, body = await shared.api("POST", "/api/campaigns", json={
        "name": "nomatch", "mode": "ivr", "flow": "no-such-flow", "hours": "00:00-24:00"})
    assert status == 201, body
    status, body = await shared.api("POST", "/api/campaigns/nomatch/start")
    assert status == 422 and "no-such-flow" in body["error"], body  # a flow that is not live: refused
    await create(shared, "parcel", [presses, listens], mode="ivr", flow="notice", ivr_lines=2)
    async with customers_and_agent(shared, sipp_folder, calls=2, agent_id="1002", phone_port=15002):
        status, body = await shared.api("POST", "/api/campaigns/parcel/start")
        assert status == 200, body
        done = await until_finished(shared, "parcel", 60)
        assert done["status"] == "finished", done
    _, listing = await shared.api("GET", "/api/campaigns/parcel/contacts")
    final = {c["number"]: c for c in listing["contacts"]}
    assert (final["+86" + presses]["status"], final["+86" + presses]["last_outcome"]) == ("done", "transferred")
    assert (final["+86" + listens]["status"], final["+86" + listens]["last_outcome"]) == ("done", "completed")
    attempts = {a["contact_no"]: a for a in rows(shared, "SELECT * FROM campaign_attempts WHERE campaign = 'parcel'")}
    transferred = attempts[final["+86" + presses]["contact_no"]]
    # the customer was put through to agent 1002 by the flow's queue node (the ACD's own events)
    answered = rows(shared, "SELECT * FROM cti_events WHERE type = 'call.answered' AND call_id = ?",
                    transferred["call_id"])
    assert [a["agent_id"] for a in answered] == ["1002"], answered
    nodes = [json.loads(r["data"])["node"] for r in rows(
        shared, "SELECT data FROM cti_events WHERE type = 'ivr.node_entered' AND call_id = ? ORDER BY seq",
        transferred["call_id"])]
    assert nodes[:2] == ["notice", "agent"], nodes
    listened = attempts[final["+86" + listens]["contact_no"]]
    assert rows(shared, "SELECT * FROM cti_events WHERE type = 'call.answered' AND call_id = ?",
                listened["call_id"]) == []


async def test_amd_leaves_a_message_on_a_machine_and_passes_a_person_to_the_agent(
        shared: ControllerProcess, sipp_folder: Path) -> None:
    person, machine, machine_hung_up = number(PERSON, 3), number(MACHINE, 1), number(MACHINE, 2)
    await create(shared, "robots", [person, machine], agents=["1001"], amd="message",
                 amd_message="Hello, this is the parcel service. Please call us back.")
    await create(shared, "robots2", [machine_hung_up], agents=["1001"], amd="hangup")
    async with customers_and_agent(shared, sipp_folder, calls=3, agent_id="1001", phone_port=15001):
        for name in ("robots", "robots2"):
            status, body = await shared.api("POST", f"/api/campaigns/{name}/start")
            assert status == 200, body
        for name in ("robots", "robots2"):
            done = await until_finished(shared, name, 90)
            assert done["status"] == "finished", done
    contacts = {}
    for name in ("robots", "robots2"):
        _, listing = await shared.api("GET", f"/api/campaigns/{name}/contacts")
        contacts.update({c["number"]: c for c in listing["contacts"]})
    outcomes = {n: (contacts["+86" + n]["status"], contacts["+86" + n]["last_outcome"])
                for n in (person, machine, machine_hung_up)}
    assert outcomes == {person: ("done", "answered"), machine: ("done", "machine_message"),
                        machine_hung_up: ("failed", "machine")}, outcomes
    verdicts = {(e["campaign"], e["contact_no"]): (e["status"], e["handling"])
                for e in campaign_events(shared, "campaign.amd")}
    by_contact = {n: contacts["+86" + n]["contact_no"] for n in (person, machine, machine_hung_up)}
    assert verdicts == {("robots", by_contact[person]): ("HUMAN", "agent"),
                        ("robots", by_contact[machine]): ("MACHINE", "message"),
                        ("robots2", by_contact[machine_hung_up]): ("MACHINE", "hangup")}, verdicts
    attempts = {a["contact_no"]: a for a in rows(shared, "SELECT * FROM campaign_attempts WHERE campaign = 'robots'")}
    machine_call = attempts[by_contact[machine]]["call_id"]
    played = rows(shared, "SELECT detail FROM call_events WHERE call_id = ? AND kind = 'playback'", machine_call)
    assert [json.loads(p["detail"])["state"] for p in played] == ["done"], played  # the message, to its end
    connecting = [e for e in campaign_events(shared, "campaign.connecting") if e["campaign"] == "robots"]
    assert [e["call_id"] for e in connecting] == [attempts[by_contact[person]]["call_id"]]  # only the person
