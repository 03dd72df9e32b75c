"""Faxes on the real Asterisk (README "Fax"): Asterisk sends to itself through the loopback trunk.

The test's trunk dials sip:<number>@127.0.0.1:5060, i.e. back into the same Asterisk, where the call arrives like
any trunk call (ccc-inbound, the DID's flow). A fax sent with POST /api/faxes (SendFAX, ccc-fax-send) reaches the
fax DID, whose flow's `fax` node hands the call to ReceiveFAX (ccc-fax-receive); the document arrives as a PDF in
the queue's inbox and the sending side records the outcome.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sandbox
import yaml

from tests.e2e.conftest import REPO, ControllerProcess, demo_config, running_controller
from tests.e2e.test_cli import ccctl
from tests.e2e.test_guard import wait_for
from tests.e2e.test_inbox import agent_token

pytestmark = pytest.mark.e2e
FAX_DID = "4008007001"
REFUSING_DID = "4008007002"  # its flow hangs up at once: a fax to it fails
SENDER_ID = "4008001234"
AGENT_1001 = "demo-agent-1001-token"
FLOWS = {
    "faxin": f"""
flow: faxin
language: zh
dids: ["{FAX_DID}"]
nodes:
  receive: {{type: fax, queue: general}}
""",
    "refuse": f"""
flow: refuse
language: zh
dids: ["{REFUSING_DID}"]
nodes:
  bye: {{type: hangup}}
""",
}
AGENTS = [
    {"id": "1001", "name": "王芳", "number": "1001", "endpoint": "8001", "queues": {"general": 0}},
    {"id": "1004", "name": "刘洋", "number": "1004", "endpoint": "8004", "queues": {"orders": 0}},
]


@pytest.fixture(scope="module")
def shared(asterisk: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    folder = tmp_path_factory.mktemp("fax")
    flows = folder / "flows"
    flows.mkdir()
    for name, text in FLOWS.items():
        (flows / f"{name}.yaml").write_text(text)
    demo_asterisk = yaml.safe_load((REPO / "demo" / "controller.yaml").read_text())["asterisk"]
    queues = [{"name": name, "wrapup_seconds": 2, "ring_timeout": 8, "announce_interval": 0, "no_agents": "wait"}
              for name in ("general", "orders")]
    config = demo_config(folder, ivr={"flows_dir": str(flows)}, acd={"queues": queues, "agents": AGENTS},
                         asterisk={**demo_asterisk, "trunk_dial": "PJSIP/loopback-trunk/sip:{number}@127.0.0.1:5060"},
                         fax={"spool_dir": str(SPOOL), "caller_id": SENDER_ID}, inbox={"poll_seconds": 0.5})
    with running_controller(folder, config) as process:
        yield process


SPOOL = sandbox.ROOT / "var/spool/asterisk/ccc-fax"


def pdf_of_pages(folder: Path, pages: int) -> bytes:
    """A small PDF with `pages` pages of text, made by ghostscript."""
    postscript = "".join(f"/Helvetica findfont 36 scalefont setfont 72 600 moveto (Fax test page {n}) show "
                         "72 500 moveto (0123456789) show showpage " for n in range(1, pages + 1))
    target = folder / f"test-{pages}.pdf"
    subprocess.run(["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite", "-sPAPERSIZE=a4",
                    f"-sOutputFile={target}", "-c", postscript], check=True, timeout=60)
    return target.read_bytes()


def pdf_pages(data: bytes, folder: Path) -> int:
    path = folder / "received.pdf"
    path.write_bytes(data)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True, timeout=30).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def events(process: ControllerProcess, prefix: str) -> list[dict[str, Any]]:
    with sqlite3.connect(process.db) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM cti_events WHERE type LIKE ? ORDER BY seq", (prefix + "%",)).fetchall()
    return [{**dict(row), "data": json.loads(row["data"])} for row in rows]


async def fetch(process: ControllerProcess, path: str, token: str | None) -> tuple[int, bytes, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(process.url + path, headers=headers) as response:
        return response.status, await response.read(), response.headers.get("Content-Type", "")


async def sent_outcome(process: ControllerProcess, fax_id: str, token: str) -> dict[str, Any]:
    async def ended() -> dict[str, Any] | None:
        status, body = await process.api("GET", f"/api/faxes/{fax_id}", token=token)
        assert status == 200, body
        return body if body["status"] != "sending" else None
    return dict(await wait_for(f"the outcome of fax {fax_id}", ended, timeout=120))


async def test_a_fax_sent_from_the_api_arrives_as_a_pdf_in_the_queues_inbox_and_is_recorded_as_sent(
        shared: ControllerProcess, tmp_path: Path) -> None:
    orders_agent = await agent_token(shared, "1004")
    document = base64.b64encode(pdf_of_pages(tmp_path, 2)).decode()
    status, fax = await shared.api("POST", "/api/faxes", token=AGENT_1001,
                                   json={"number": FAX_DID, "document": document})
    assert status == 202, fax
    assert (fax["status"], fax["pages"], fax["number"]) == ("sending", 2, FAX_DID)

    outcome = await sent_outcome(shared, fax["id"], AGENT_1001)
    assert (outcome["status"], outcome["fax_status"], outcome["pages_sent"], outcome["error"]) == (
        "sent", "SUCCESS", 2, None)
    assert [e["data"] for e in events(shared, "fax.sent")] == [{"fax_id": fax["id"], "pages": 2}]
    status, _ = await shared.api("GET", f"/api/faxes/{fax['id']}", token=orders_agent)
    assert status == 404  # another agent's fax

    async def inbox_fax() -> dict[str, Any] | None:
        status, body = await shared.api("GET", "/api/inbox", token=AGENT_1001)
        assert status == 200, body
        return next((item for item in body["items"] if item["kind"] == "fax"), None)
    item = await wait_for("the fax in agent 1001's inbox", inbox_fax, timeout=30)
    assert (item["queue"], item["caller"], item["did"], item["status"]) == ("general", SENDER_ID, FAX_DID, "new")
    assert item["call_id"] and item["data"]["flow"] == "faxin" and item["data"]["pages"] == 2
    status, body = await shared.api("GET", "/api/inbox", token=orders_agent)
    assert status == 200 and body["items"] == []  # not another queue's agent

    status, pdf, content_type = await fetch(shared, f"/api/inbox/{item['id']}/document", AGENT_1001)
    assert status == 200 and content_type == "application/pdf" and pdf.startswith(b"%PDF-")
    assert pdf_pages(pdf, tmp_path) == 2
    assert (await fetch(shared, f"/api/inbox/{item['id']}/document", None))[0] == 401
    assert (await fetch(shared, f"/api/inbox/{item['id']}/document", orders_agent))[0] == 404
    assert (await fetch(shared, f"/api/inbox/{item['id']}/audio", AGENT_1001))[0] == 404  # a fax has no audio
    new = events(shared, "fax.new")
    assert [(e["queue"], e["call_id"], e["data"]) for e in new] == [
        ("general", item["call_id"], {"item_id": item["id"], "pages": 2})]
    assert SENDER_ID not in json.dumps(new)
    received_id = item["source"].removeprefix("fax:")
    assert item["source"] == f"fax:{received_id}" and len(received_id) == 32
    assert not list(SPOOL.glob(f"in/{received_id}.*")) and not list(SPOOL.glob(f"out/{fax['id']}.*"))  # removed


async def test_the_toolbar_shows_the_received_fax_with_a_link_to_its_pdf(shared: ControllerProcess) -> None:
    """Headless Chromium: agent 1001 signs in on the toolbar (zh), finds the fax (pages, no audio player) and its
    link serves the PDF with the session cookie; then in English."""
    from tests.browser import Browser

    status, body = await shared.api("GET", "/api/inbox?status=open", token=AGENT_1001)
    faxes = [item for item in body["items"] if item["kind"] == "fax"]
    assert status == 200 and faxes, "run after the sending test: it leaves a received fax"
    row = f'#inbox li[data-item="{faxes[0]["id"]}"]'
    async with Browser() as browser:
        for language, words in (("zh", "传真 2 页"), ("en", "Fax, 2 pages")):
            toolbar = await browser.open(f"{shared.url}/toolbar?agent=1001&lang={language}")
            await toolbar.fill("#password", "demo-1001-pass")
            await toolbar.click("#login")
            await toolbar.wait_for(f"document.querySelector('{row}') !== null")
            assert words in await toolbar.text(row)
            assert await toolbar.evaluate(f"document.querySelector('{row} audio') === null")
            fetched = await toolbar.evaluate(
                f"fetch(document.querySelector('{row} a.document').href).then(async r => [r.status,"
                " r.headers.get('content-type'), (await r.text()).slice(0, 5)])")
            assert fetched == [200, "application/pdf", "%PDF-"]
            assert await toolbar.text("#error") == ""


async def test_a_fax_the_far_end_hangs_up_on_is_recorded_as_failed(shared: ControllerProcess, tmp_path: Path) -> None:
    """Sent with `ccctl fax send --wait`: it waits for the outcome and exits 1 on failure."""
    pdf_of_pages(tmp_path, 1)
    sent = await asyncio.to_thread(ccctl, "fax", "send", str(tmp_path / "test-1.pdf"), REFUSING_DID, "--wait", "50",
                                   "--json", url=shared.url)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    outcome = json.loads(sent.stdout)
    assert outcome["status"] == "failed" and outcome["error"] and outcome["number"] == REFUSING_DID, outcome
    assert [e["data"]["fax_id"] for e in events(shared, "fax.failed")] == [outcome["id"]]
    shown = await asyncio.to_thread(ccctl, "fax", "status", outcome["id"], url=shared.url)
    assert shown.returncode == 0 and f"fax {outcome['id']}  to {REFUSING_DID}  1 pages  failed" in shown.stdout


async def test_bad_faxes_are_refused_and_change_nothing(shared: ControllerProcess, tmp_path: Path) -> None:
    pdf = base64.b64encode(pdf_of_pages(tmp_path, 1)).decode()
    with sqlite3.connect(shared.db) as db:
        before = db.execute("SELECT COUNT(*) FROM faxes").fetchone()[0]
    spool_before = set((SPOOL / "out").glob("*"))
    refused = [
        ({"number": "0085212345678", "document": pdf}, 403),  # international: the dialing policy denies it
        ({"number": FAX_DID, "document": base64.b64encode(b"GIF89a not a pdf at all").decode()}, 422),
        ({"number": FAX_DID, "document": "%%% not base64 %%%"}, 422),
        ({"number": FAX_DID, "document": base64.b64encode(b"%PDF-1.4 broken, no pages").decode()}, 422),
        ({"number": FAX_DID, "document": base64.b64encode(b"%PDF-1.4 broken" + b"x" * 600_000).decode()}, 422),
    ]
    for body, expected in refused:
        status, answer = await shared.api("POST", "/api/faxes", json=body)
        assert status == expected, answer
    with sqlite3.connect(shared.db) as db:
        assert db.execute("SELECT COUNT(*) FROM faxes").fetchone()[0] == before
    assert set((SPOOL / "out").glob("*")) == spool_before  # no PDF or TIFF left behind
    status, fax = await shared.api("POST", "/api/faxes", json={"number": REFUSING_DID, "document": pdf})
    assert status == 202, fax  # the same PDF to an allowed number is taken
    await sent_outcome(shared, fax["id"], "demo-supervisor-token")
