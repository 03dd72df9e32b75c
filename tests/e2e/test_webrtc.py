"""The browser phone: the toolbar's WebRTC phone (JsSIP) registers to the real Asterisk over its SIP WebSocket,
a SIPp caller goes through the IVR to the queue, the call rings in the page with the screen pop, the agent
answers, holds, mutes, sends DTMF and hangs up there, and audio flows both ways (DTLS-SRTP, ICE).

Chromium runs headless with a fake microphone (a beep) and WebRTC over the loopback (tests/browser.py
WEBRTC_ARGS); the caller plays SIPp's speech capture until the agent hangs up.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.browser import WEBRTC_ARGS, Browser, Page
from tests.e2e.conftest import ARI_HEADERS, REPO, ControllerProcess, channel_events, demo_config, sandbox
from tests.e2e.test_call_control import start, wait_for_state
from tests.e2e.test_desk import AGENT_PASSWORD, DESK_DID, DESK_FLOW, SCREENSHOTS, assert_chinese_is_drawn
from tests.e2e.test_ivr_acd import rows, stop_after  # noqa: F401 (fixture)
from tests.e2e.test_users import Browserish
from tests.sipp import Caller, TalkUntilBye

pytestmark = pytest.mark.e2e  # needs Debian's chromium and `make desk-js` (JsSIP)
ENDPOINT = "webrtc-1001"  # the demo's softphone.endpoint for agent 1001
NEW_AGENT = {"name": "赵敏", "number": "1006", "endpoint": "8005", "skills": {}, "queues": {"general": 0},
             "enabled": True}
NEW_PASSWORD = "new-agent-1006-pass"


@pytest.fixture
def media_interface() -> Iterator[None]:
    """An address besides the loopback for the calls' media. Asterisk's ICE lists its host candidates from
    the machine's interfaces but never the loopback, so in the tests' network namespace (only `lo`) it
    would offer the browser nothing to connect to; there a veth pair gives it 10.213.0.1. Elsewhere (a
    machine with a network) nothing is added."""
    addresses = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True,
                               text=True, check=True).stdout
    if addresses.strip():
        yield
        return
    subprocess.run(["ip", "link", "add", "cccw0", "type", "veth", "peer", "name", "cccw1"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "10.213.0.1/24", "dev", "cccw0"], check=True)
        for link in ("cccw0", "cccw1"):
            subprocess.run(["ip", "link", "set", link, "up"], check=True)
        yield
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["ip", "link", "del", "cccw0"], check=True)


def channel_stats(prefix: str) -> dict[str, int]:
    """Asterisk's RTP counters of the channel whose name starts with `prefix` (pjsip show channelstats):
    packets received from and sent to that leg."""
    listing = sandbox.cli("pjsip show channelstats")
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) > 10 and fields[1].startswith(prefix):
            # Bridge ChannelId ... UpTime.. Codec.. Count Lost Pct Jitter | Count Lost Pct Jitter RTT
            numbers = [f for f in fields[2:] if re.fullmatch(r"[\d.]+[KM]?", f)]
            return {"rx": _count(numbers[-9]), "tx": _count(numbers[-5])}
    raise AssertionError(f"no channel {prefix} in:\n{listing}")


def _count(text: str) -> int:
    scale = {"K": 1000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


async def page_audio(page: Page) -> dict[str, Any]:
    """The page's own RTP figures: packets in and out, the energy of what it received and of what its
    (fake) microphone gave it to send."""
    return dict(await page.evaluate("""(async () => {
      const stats = await phone.session.connection.getStats();
      const out = {received: 0, sent: 0, energy: 0, microphone: 0};
      stats.forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "audio") { out.received = s.packetsReceived;
                                                              out.energy = s.totalAudioEnergy || 0; }
        if (s.type === "outbound-rtp" && s.kind === "audio") out.sent = s.packetsSent;
        if (s.type === "media-source" && s.kind === "audio") out.microphone = s.totalAudioEnergy || 0;
      });
      return out;
    })()"""))


async def dtmf_on(channel_prefix: str, count: int) -> list[str]:
    """The first `count` DTMF digits Asterisk receives on a channel whose name starts with the prefix."""
    digits: list[str] = []
    async with channel_events("ccc-webrtc-test") as ws:
        async for message in ws:
            event = json.loads(message.data)
            if event.get("type") == "ChannelDtmfReceived" and event["channel"]["name"].startswith(channel_prefix):
                digits.append(event["digit"])
                if len(digits) == count:
                    break
    return digits


async def phone_status(page: Page, status: str, timeout: float = 15) -> None:
    try:
        await page.wait_for(f"document.querySelector('#phone-status').dataset.status === {status!r}", timeout)
    except AssertionError as failed:
        # Which step stopped: the sign-in (its form still shown, or its error), or the phone's own status.
        shown = await page.evaluate("JSON.stringify({phone: document.querySelector('#phone-status').dataset.status,"
                                    " signin_shown: !document.querySelector('#signin').hidden,"
                                    " error: document.querySelector('#error').textContent})")
        raise AssertionError(f"{failed}\nthe page shows: {shown}") from None


async def test_the_agent_answers_a_queue_call_in_the_browser_and_audio_flows_both_ways(
        media_interface: None, fresh_asterisk: Path, tmp_path: Path,
        stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    process = await start(tmp_path)
    stop_after.append(process)
    (tmp_path / "flows" / "desktest.yaml").write_text(DESK_FLOW)
    status, body = await process.api("POST", "/api/flows/reload")
    assert status == 200, body

    # The phone's details only for the agent's own session: not without one, not for a user who is no agent.
    assert (await process.api("GET", "/api/me/phone", token=""))[0] == 401
    assert (await process.api("GET", "/api/me/phone"))[0] == 403  # the admin token: no agent, no phone
    # Asterisk's endpoints from the agents as they are now (admin only), with the passwords the pages get.
    status, body = await process.api("GET", "/api/softphone/pjsip")
    sections = body["pjsip_webrtc_conf"]
    assert body["agents"] == ["1001", "1002"]
    assert status == 200 and all(f"[webrtc-{a}](webrtc-endpoint)" in sections for a in ("1001", "1002"))
    assert (await process.api("GET", "/api/softphone/pjsip", token="demo-agent-1001-token"))[0] == 403
    session = Browserish(process.url)
    try:
        assert (await session.login("1001", AGENT_PASSWORD))[0] == 200
        status, mine = await session.request("GET", "/api/me/phone")
        assert status == 200 and mine["endpoint"] == ENDPOINT and mine["uri"] == f"sip:{ENDPOINT}@127.0.0.1"
        assert mine["websocket_url"] == "ws://127.0.0.1:8088/ws" and len(mine["password"]) == 32
        assert f"password = {mine['password']}" in sections.split("[webrtc-1002]")[0]
    finally:
        await session.close()

    async with Browser(*WEBRTC_ARGS) as browser:
        toolbar = await browser.open(f"{process.url}/toolbar?agent=1001&lang=zh")
        html = await toolbar.evaluate("document.documentElement.outerHTML")
        assert mine["password"] not in html and mine["password"] not in await toolbar.evaluate("location.href")
        await toolbar.evaluate("document.querySelector('#phone-choice').value = 'browser'; true")
        await toolbar.fill("#password", AGENT_PASSWORD)
        await toolbar.click("#login")
        await phone_status(toolbar, "registered")
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")
        assert await toolbar.text("#phone-status") == "已注册" and await toolbar.text("#error") == ""
        # Registered to the real Asterisk, and the agent logged in on that endpoint: the ACD rings it.
        aor = sandbox.cli(f"pjsip show aor {ENDPOINT}")
        assert re.search(r"contact\s+: sip:\S+@127\.0\.0\.1:\d+;transport=ws", aor), aor
        assert (await wait_for_state(process, "1001", "ready"))["endpoint"] == ENDPOINT
        await assert_chinese_is_drawn(toolbar, "#softphone", "toolbar-phone-registered-zh")

        caller = Caller(DESK_DID, caller="13800138000", steps=[TalkUntilBye()])
        await caller.start()
        # It rings in the page, with the screen pop, and waits for the agent (no auto-answer).
        await phone_status(toolbar, "ringing")
        await toolbar.wait_for("!document.querySelector('#pop').hidden")
        assert await toolbar.text("#pop-caller") == "13800138000"
        assert await toolbar.visible("#phone-answer") and await toolbar.text("#phone-answer") == "接听"
        assert (await wait_for_state(process, "1001", "ringing"))["current_call"]
        await toolbar.screenshot(SCREENSHOTS / "toolbar-phone-ringing-zh.png")

        await toolbar.click("#phone-answer")
        await phone_status(toolbar, "in_call")
        talking = await wait_for_state(process, "1001", "talking")
        assert talking["current_call"]
        assert not await toolbar.visible("#phone-answer") and await toolbar.visible("#phone-hangup")
        await toolbar.screenshot(SCREENSHOTS / "toolbar-phone-talking-zh.png")

        # Audio both ways: the page hears the caller (packets with energy), Asterisk hears the page's
        # microphone and sends it on to the caller.
        heard = await toolbar.wait_for(
            "(async () => { const s = await phone.session.connection.getStats(); let ok = null;"
            " s.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.packetsReceived > 100"
            " && r.totalAudioEnergy > 0) ok = r.packetsReceived; }); return ok; })()", timeout=20)
        assert heard > 100
        assert await toolbar.evaluate("document.querySelector('#phone-audio').srcObject.getAudioTracks().length") == 1
        assert await toolbar.evaluate("document.querySelector('#phone-audio').paused") is False  # it plays
        audio = await page_audio(toolbar)
        assert audio["sent"] > 100 and audio["energy"] > 0 and audio["microphone"] > 0, audio
        agent_leg, caller_leg = channel_stats(f"{ENDPOINT}-"), channel_stats("loopback-trunk-")
        assert agent_leg["rx"] > 100 and agent_leg["tx"] > 100, agent_leg  # from and to the browser
        assert caller_leg["rx"] > 100 and caller_leg["tx"] > 100, caller_leg  # from and to the caller

        # Mute, DTMF, and the ACD's hold (the truth about the call) with the page's phone still up.
        await toolbar.click("#phone-mute")
        await toolbar.wait_for("!document.querySelector('#phone-unmute').hidden")
        assert await toolbar.evaluate("phone.session.isMuted().audio") is True
        await toolbar.click("#phone-unmute")
        assert await toolbar.evaluate("phone.session.isMuted().audio") is False
        dtmf_heard = asyncio.ensure_future(dtmf_on(f"PJSIP/{ENDPOINT}-", 2))
        await asyncio.sleep(0.5)  # subscribed before the keys go
        await toolbar.fill("#dtmf", "1#")
        await toolbar.click("#dtmf-send")
        # Asterisk gets the keys (RFC 4733) on the browser's leg: an ARI application subscribed to everything.
        digits = await asyncio.wait_for(dtmf_heard, 10)
        assert digits == ["1", "#"], digits
        await toolbar.click("#hold")
        await wait_for_state(process, "1001", "on_hold")
        await toolbar.click("#resume")
        await wait_for_state(process, "1001", "talking")
        assert await toolbar.evaluate("phone.status") == "in_call"

        await toolbar.click("#phone-hangup")  # the agent hangs up in the page
        await phone_status(toolbar, "registered")
        await wait_for_state(process, "1001", "acw")
        assert (await caller.wait()).ok  # the caller got the BYE after the agent left
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'acw'")
        assert await toolbar.text("#error") == ""

        # English, after a reload (the language switch): the page's phone registers again by itself.
        # What the 中文/English link does: the choice kept, the page opened again without ?lang.
        await toolbar.evaluate("localStorage.setItem('ccc.lang', 'en'); window.cccBeforeReload = true; true")
        await toolbar.send("Page.navigate", url=f"{process.url}/toolbar?agent=1001")
        await toolbar.wait_for("window.cccBeforeReload === undefined && document.readyState === 'complete'")
        assert await toolbar.evaluate("document.documentElement.lang") == "en"
        await phone_status(toolbar, "registered")
        assert await toolbar.text("#phone-status") == "registered"
        await toolbar.screenshot(SCREENSHOTS / "toolbar-phone-registered-en.png")

        # Logged out: the page's phone unregisters (the ACD has nobody to ring on it any more).
        await toolbar.click("#logout")
        await toolbar.wait_for("!document.querySelector('#signin').hidden")
        await phone_status(toolbar, "off")
        assert "transport=ws" not in sandbox.cli(f"pjsip show aor {ENDPOINT}")

    (visit,) = rows(process, "SELECT queue, outcome, agent_id FROM queue_calls")
    assert visit == {"queue": "general", "outcome": "answered", "agent_id": "1001"}


async def test_an_agent_added_live_gets_a_browser_phone_without_a_restart(
        fresh_asterisk: Path, tmp_path: Path, stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """softphone.pjsip_conf: the controller rewrites Asterisk's pjsip_webrtc.conf and reloads res_pjsip (ARI)
    when an agent is added or removed in the administration; the new agent's page registers at once."""
    conf = fresh_asterisk / "etc/asterisk/pjsip_webrtc.conf"
    softphone = {**yaml.safe_load((REPO / "demo/controller.yaml").read_text())["softphone"],
                 "websocket_url": "ws://127.0.0.1:8088/ws", "secret": "demo-webrtc-secret-not-for-production",
                 "pjsip_conf": str(conf)}
    process = ControllerProcess(tmp_path / "data", config=demo_config(tmp_path, softphone=softphone))
    await process.start()
    stop_after.append(process)
    assert "Unable to find object webrtc-1006" in sandbox.cli("pjsip show endpoint webrtc-1006")
    assert "webrtc-1001" in sandbox.cli("pjsip show endpoint webrtc-1001")  # the others are there

    status, body = await process.api("PUT", "/api/config/agents/1006", json=NEW_AGENT)
    assert status == 200, body
    status, body = await process.api("POST", "/api/users", json={"name": "1006", "role": "agent",
                                                                   "agent_id": "1006", "password": NEW_PASSWORD})
    assert status == 201, body
    # Asterisk has the endpoint as soon as the change is answered, with the password the page gets.
    assert "[webrtc-1006](webrtc-endpoint)" in conf.read_text()
    assert re.search(r"Endpoint:\s+webrtc-1006", sandbox.cli("pjsip show endpoint webrtc-1006"))

    async with Browser(*WEBRTC_ARGS) as browser:
        toolbar = await browser.open(f"{process.url}/toolbar?agent=1006&lang=en")
        await toolbar.evaluate("document.querySelector('#phone-choice').value = 'browser'; true")
        await toolbar.fill("#password", NEW_PASSWORD)
        await toolbar.click("#login")
        await phone_status(toolbar, "registered")
        assert await toolbar.text("#error") == ""
        assert re.search(r"contact\s+: sip:\S+;transport=ws", sandbox.cli("pjsip show aor webrtc-1006"))
        assert (await wait_for_state(process, "1006", "ready"))["endpoint"] == "webrtc-1006"
        await toolbar.click("#logout")
        await phone_status(toolbar, "off")

    # A supervisor user added (or removed) live gets (or loses) the console's browser phone the same way.
    assert "Unable to find object webrtc-sup-lead2" in sandbox.cli("pjsip show endpoint webrtc-sup-lead2")
    status, body = await process.api("POST", "/api/users", json={"name": "lead2", "role": "supervisor",
                                                                   "password": "lead2-password-long"})
    assert status == 201, body
    assert re.search(r"Endpoint:\s+webrtc-sup-lead2", sandbox.cli("pjsip show endpoint webrtc-sup-lead2"))
    status, body = await process.api("DELETE", "/api/users/lead2")
    assert status == 200, body
    assert "Unable to find object webrtc-sup-lead2" in sandbox.cli("pjsip show endpoint webrtc-sup-lead2")

    # Removed: the endpoint goes from Asterisk too (a phone left registered could be rung by nobody's ACD).
    status, body = await process.api("DELETE", "/api/config/agents/1006")
    assert status == 200, body
    assert "webrtc-1006" not in conf.read_text()
    assert "Unable to find object webrtc-1006" in sandbox.cli("pjsip show endpoint webrtc-1006")
    assert "webrtc-1001" in sandbox.cli("pjsip show endpoint webrtc-1001")


def spki_hash(cert: Path) -> str:
    """base64(SHA-256(the certificate's public key)): what Chromium's --ignore-certificate-errors-spki-list
    trusts, that one key and nothing else (the demo's self-signed certificate, as a company CA would be)."""
    key = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=key, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


async def test_over_tls_the_https_page_registers_its_phone_over_wss_and_answers_a_call(
        media_interface: None, fresh_asterisk: Path, tmp_path: Path,
        stop_after: list[ControllerProcess]) -> None:  # noqa: F811
    """Production's transport: the toolbar served over HTTPS, the phone on Asterisk's TLS WebSocket (http.conf
    tlsenable, 8089, pjsip's transport-wss), both with the certificate the sandbox made for 127.0.0.1."""
    cert, key = sandbox.ensure_tls_certificate()
    softphone = {**yaml.safe_load((REPO / "demo/controller.yaml").read_text())["softphone"],
                 "websocket_url": "wss://127.0.0.1:8089/ws", "secret": "demo-webrtc-secret-not-for-production"}
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "desktest.yaml").write_text(DESK_FLOW)
    queue = {"name": "general", "wrapup_seconds": 2, "ring_timeout": 15, "max_wait": 60, "announce_interval": 0,
             "no_agents": "wait"}
    agents = [{"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}}]
    config = demo_config(tmp_path, softphone=softphone, ivr={"flows_dir": str(tmp_path / "flows")},
                         acd={"queues": [queue], "agents": agents},
                         http={"listen": "127.0.0.1", "port": "${CCC_HTTP_PORT}", "tls_cert": str(cert),
                               "tls_key": str(key)})
    process = ControllerProcess(tmp_path / "data", config=config)
    await process.start(wait=False)
    stop_after.append(process)
    https = process.url.replace("http://", "https://")
    trusted = ssl.create_default_context(cafile=cert)
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{https}/healthz", ssl=trusted) as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.2)
        # Asterisk's TLS server answers with the sandbox's certificate (checked, not ignored).
        async with http.get("https://127.0.0.1:8089/ari/asterisk/ping", ssl=trusted, headers=ARI_HEADERS) as response:
            assert response.status == 200

    async with Browser(*WEBRTC_ARGS, f"--ignore-certificate-errors-spki-list={spki_hash(cert)}") as browser:
        toolbar = await browser.open(f"{https}/toolbar?agent=1001&lang=en")
        assert await toolbar.evaluate("window.isSecureContext && location.protocol") == "https:"
        await toolbar.evaluate("document.querySelector('#phone-choice').value = 'browser'; true")
        await toolbar.fill("#password", AGENT_PASSWORD)
        await toolbar.click("#login")
        await phone_status(toolbar, "registered")
        assert await toolbar.text("#error") == ""
        # Registered through the TLS server: the page's SIP connection is to 8089 (JsSIP's Contact says
        # transport=ws whatever the socket's scheme, so the socket is what shows it).
        aor = sandbox.cli(f"pjsip show aor {ENDPOINT}")
        assert re.search(r"contact\s+: sip:\S+@127\.0\.0\.1:\d+;transport=ws", aor), aor
        tls = subprocess.run(["ss", "-Htn", "state", "established", "( dport = :8089 )"], capture_output=True,
                             text=True, check=True).stdout
        assert tls.strip(), "no TLS connection to Asterisk's 8089"
        assert await toolbar.evaluate("phone.info.websocket_url") == "wss://127.0.0.1:8089/ws"
        await toolbar.wait_for("document.querySelector('#state').dataset.state === 'ready'")

        caller = Caller(DESK_DID, caller="13800138000", steps=[TalkUntilBye()])
        await caller.start()
        await phone_status(toolbar, "ringing")
        await toolbar.click("#phone-answer")
        await phone_status(toolbar, "in_call")
        heard = await toolbar.wait_for(
            "(async () => { const s = await phone.session.connection.getStats(); let ok = null;"
            " s.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'audio' && r.packetsReceived > 50"
            " && r.totalAudioEnergy > 0) ok = r.packetsReceived; }); return ok; })()", timeout=20)
        assert heard > 50 and (await page_audio(toolbar))["sent"] > 50
        await toolbar.screenshot(SCREENSHOTS / "toolbar-phone-wss-en.png")
        await toolbar.click("#phone-hangup")
        await phone_status(toolbar, "registered")
        assert (await caller.wait()).ok
