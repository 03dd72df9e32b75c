"""Faxes as work (README "Fax"): received faxes become inbox items (PDF), faxes are sent from the API.

Receiving: a flow's `fax` node hands the call to the dialplan (ccc-fax-receive: ReceiveFAX into the spool's
in/<id>.tif). That channel was in Stasis, and Asterisk then refuses FILE() writes on it, so the dialplan cannot
write an outcome: once the call's channel is gone, the poller counts the TIFF's pages, converts it to a PDF in
the data directory, adds the inbox item (source fax:<id>, imported once) and removes the spool file.
Sending: the PDF is converted to TIFF-F into the spool's out/, then a call is originated through the trunk into
ccc-fax-send (SendFAX); the poller reads out/<id>.txt, or finds the call gone without one (not answered).
Everything is in files and rows, so a fax that ends while the controller is down is picked up when it is back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.ari.client import AriClient
from controller.ari.errors import AriError, ChannelGone
from controller.config import FaxSettings
from controller.logs import mask_number
from controller.plugins.fax.convert import ConversionError, pdf_to_fax_tiff, tiff_pages, tiff_to_pdf
from controller.plugins.fax.notifier import FaxNotifier
from controller.plugins.fax.state_persistor import FaxRecords
from controller.plugins.inbox.services import InboxService

log = logging.getLogger("controller.fax")

SEND_CONTEXT = "ccc-fax-send"  # dialplans/ccc-fax.conf
FAX_ID = re.compile(r"[0-9a-f]{32}")
#: A sending call that is gone with no outcome file after this long was not answered (the h extension of an
#: answered call writes the file before the channel is destroyed).
GONE_GRACE_SECONDS = 3.0


class FaxError(Exception):
    """A fax that cannot be sent (422: not a PDF, too many pages, cannot be converted)."""


def read_outcome(text: str) -> dict[str, str] | None:
    """The dialplan's outcome file (key=value|key=value…), or None while it is not complete (no end=1)."""
    fields = dict(part.split("=", 1) for part in re.split(r"[|\n]", text.strip()) if "=" in part)
    return fields if fields.get("end") == "1" else None


def decode_pdf(document: str, max_bytes: int) -> bytes:
    try:
        data = base64.b64decode(document, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FaxError("document: not valid base64") from exc
    if len(data) > max_bytes:
        raise FaxError(f"document: larger than fax.max_document_bytes ({max_bytes})")
    if not data.startswith(b"%PDF-"):
        raise FaxError("document: not a PDF")
    return data


class FaxService:
    def __init__(self, *, settings: Callable[[], FaxSettings], inbox: InboxService, records: FaxRecords,
                 ari: AriClient, trunk_dial: Callable[[], str], now: Callable[[], float],
                 publish: Callable[..., Any]) -> None:
        self._settings = settings
        self.inbox = inbox
        self.records = records
        self._ari = ari
        self._trunk_dial = trunk_dial
        self._now = now
        self.notify = FaxNotifier(publish)
        self._gone_since: dict[str, float] = {}

    @property
    def settings(self) -> FaxSettings:
        return self._settings()

    @property
    def spool(self) -> Path:
        return Path(self.settings.spool_dir)

    def prepare_spool(self) -> None:
        """in/ and out/ in Asterisk's spool, owned like the spool itself (Asterisk writes in/, reads out/)."""
        parent = self.spool.parent
        owner = parent.stat() if parent.is_dir() else None
        for folder in (self.spool, self.spool / "in", self.spool / "out"):
            folder.mkdir(mode=0o750, exist_ok=True, parents=True)
            if owner is not None and os.geteuid() == 0:
                os.chown(folder, owner.st_uid, owner.st_gid)

    async def run(self) -> None:
        try:
            await asyncio.to_thread(self.prepare_spool)
        except OSError as exc:
            log.error("fax: cannot prepare the spool %s (%s): faxes will not work", self.spool, exc)
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failing store or file system: try again next round
                log.exception("fax: poll failed; retrying")
            await asyncio.sleep(self.inbox.settings.poll_seconds)

    async def poll_once(self) -> None:
        await self.import_received()
        await self.check_sending()

    async def _outcome(self, folder: str, fax_id: str) -> dict[str, str] | None:
        path = self.spool / folder / f"{fax_id}.txt"
        try:
            return read_outcome(await asyncio.to_thread(path.read_text, errors="replace"))
        except FileNotFoundError:
            return None

    def _remove(self, folder: str, fax_id: str) -> None:
        for suffix in (".txt", ".tif", ".part"):
            with contextlib.suppress(FileNotFoundError):
                (self.spool / folder / f"{fax_id}{suffix}").unlink()

    # -- receiving --------------------------------------------------------------------------------

    async def import_received(self) -> int:
        names = await asyncio.to_thread(lambda: sorted(p.stem for p in (self.spool / "in").glob("*.tif")))
        added = 0
        for fax_id in names:
            if not FAX_ID.fullmatch(fax_id):
                continue
            call = await self.records.received_call(fax_id)
            if call is None or not await self._call_gone(fax_id, call["channel_id"]):
                continue  # not yet on the record (the store is written behind), or still receiving
            try:
                added += await self._import_received(fax_id, call)
            except (OSError, ConversionError) as exc:
                log.error("fax: cannot import received fax %s (%s); retrying", fax_id, exc)
        return added

    async def _import_received(self, fax_id: str, call: dict[str, Any]) -> int:
        tiff = self.spool / "in" / f"{fax_id}.tif"
        pages = tiff_pages(await asyncio.to_thread(tiff.read_bytes))
        if pages == 0:
            log.warning("fax: received fax %s has no pages (the sender gave up?)", fax_id)
            self._gone_since.pop(fax_id, None)
            await asyncio.to_thread(self._remove, "in", fax_id)
            return 0
        pdf = self.inbox.files_dir / f"fax-{fax_id}.pdf"
        await asyncio.to_thread(pdf.parent.mkdir, parents=True, exist_ok=True)
        await tiff_to_pdf(tiff, pdf, self.settings.convert_timeout_seconds)
        payload = call["payload"]
        queue = payload.get("queue") or call["last_queue"] or self.inbox.settings.default_queue or None
        item: dict[str, Any] = {
                "id": uuid.uuid4().hex, "kind": "fax", "source": f"fax:{fax_id}", "call_id": call["call_id"],
                "caller": call["caller"] or "", "did": call["did"] or "", "queue": queue, "agent_id": None,
                "created_at": call["created_at"], "duration": None, "file": str(pdf),
                "data": {"flow": payload.get("flow"), "ivr": call["call_data"], "pages": pages}}
        added = await self.inbox.records.add_item(item)
        if added:
            log.info("fax: received %d pages from %s for %s", pages, mask_number(item["caller"]),
                     queue or "supervisors")
            self.notify.received(item, pages)
        self._gone_since.pop(fax_id, None)
        await asyncio.to_thread(self._remove, "in", fax_id)
        return int(added)

    # -- sending ----------------------------------------------------------------------------------

    async def send(self, *, number: str, document: str, created_by: str) -> dict[str, Any]:
        settings = self.settings
        pdf_data = decode_pdf(document, settings.max_document_bytes)
        fax_id = uuid.uuid4().hex
        out = self.spool / "out"
        pdf, tiff = out / f"{fax_id}.pdf", out / f"{fax_id}.tif"
        try:
            await asyncio.to_thread(pdf.write_bytes, pdf_data)
            try:
                await pdf_to_fax_tiff(pdf, tiff, settings.convert_timeout_seconds, last_page=settings.max_pages + 1)
            except ConversionError as exc:
                raise FaxError(f"document: cannot be converted to a fax ({exc})") from exc
            pages = tiff_pages(await asyncio.to_thread(tiff.read_bytes))
            if not 0 < pages <= settings.max_pages:
                raise FaxError(f"document: {pages} pages; a fax has 1 to fax.max_pages ({settings.max_pages})")
            await asyncio.to_thread(self._readable_by_asterisk, tiff)
        except BaseException:
            await asyncio.to_thread(self._remove, "out", fax_id)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(pdf.unlink)
        fax = {"id": fax_id, "number": number, "created_by": created_by, "created_at": self._now(), "pages": pages}
        await self.records.add_outgoing(fax)
        try:
            await self._ari.originate_to_dialplan(
                self.channel_id(fax_id), self._trunk_dial().replace("{number}", number), context=SEND_CONTEXT,
                caller_id=settings.caller_id or None, timeout=settings.ring_timeout_seconds,
                variables={"CCC_FAX_ID": fax_id})
        except AriError as exc:
            await self._finish(fax, {"status": "FAILED", "error": f"the call could not be placed ({exc})"})
        log.info("fax: %s to %s, %d pages", fax_id, mask_number(number), pages)
        stored = await self.records.fax(fax_id)
        assert stored is not None
        return stored

    @staticmethod
    def channel_id(fax_id: str) -> str:
        return f"fax-{fax_id}"

    def _readable_by_asterisk(self, tiff: Path) -> None:
        owner = tiff.parent.stat()
        if os.geteuid() == 0:
            os.chown(tiff, owner.st_uid, owner.st_gid)
        tiff.chmod(0o640)

    async def check_sending(self) -> None:
        for fax in await self.records.sending():
            outcome = await self._outcome("out", fax["id"])
            if outcome is not None:
                await self._finish(fax, outcome)
            elif self._now() - fax["created_at"] > self.settings.send_timeout_seconds:
                with contextlib.suppress(AriError):
                    await self._ari.hangup(self.channel_id(fax["id"]))
                await self._finish(fax, {"status": "FAILED", "error": "timed out"})
            elif await self._call_gone(fax["id"], self.channel_id(fax["id"])):
                # Gone, and still no outcome: read once more (the h extension may have just written it).
                await self._finish(fax, await self._outcome("out", fax["id"])
                                   or {"status": "FAILED", "error": "the call was not answered"})

    async def _call_gone(self, fax_id: str, channel_id: str) -> bool:
        """True once the fax's channel has been gone for GONE_GRACE_SECONDS (its files are complete)."""
        try:
            await self._ari.channel(channel_id)
        except ChannelGone:
            first = self._gone_since.setdefault(fax_id, self._now())
            return self._now() - first >= GONE_GRACE_SECONDS
        except AriError:
            return False  # ARI unreachable: ask again next round
        self._gone_since.pop(fax_id, None)
        return False

    async def _finish(self, fax: dict[str, Any], outcome: dict[str, str]) -> None:
        sent = outcome.get("status") == "SUCCESS"
        pages_sent = int(outcome["pages"]) if (outcome.get("pages") or "").isdigit() else None
        error = None if sent else (outcome.get("error") or "failed")
        await self.records.ended(fax["id"], status="sent" if sent else "failed", pages_sent=pages_sent,
                                 fax_status=outcome.get("status") or None, error=error, at=self._now())
        self._gone_since.pop(fax["id"], None)
        await asyncio.to_thread(self._remove, "out", fax["id"])
        log.info("fax: %s %s (%s pages)", fax["id"], "sent" if sent else f"failed: {error}", pages_sent)
        self.notify.ended(fax, sent=sent, pages_sent=pages_sent, error=error)
