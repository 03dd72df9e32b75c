"""The fax plugin's pure parts: the dialplan's outcome line, counting a TIFF's pages, checking an upload."""

from __future__ import annotations

import base64
import struct

import pytest

from controller.plugins.fax.convert import tiff_pages
from controller.plugins.fax.services import FaxError, decode_pdf, read_outcome


def tiff(pages: int, order: str = "<") -> bytes:
    """A TIFF skeleton: header, then `pages` image file directories of one entry, chained."""
    data = bytearray((b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8))
    for page in range(pages):
        following = 0 if page == pages - 1 else len(data) + 18
        data += struct.pack(order + "H", 1) + b"\x00" * 12 + struct.pack(order + "I", following)
    return bytes(data)


def test_the_outcome_line_is_read_only_once_complete() -> None:
    line = "status=SUCCESS|pages=2|error=OK|remote_station=ccc fax|end=1"
    assert read_outcome(line + "\n") == {"status": "SUCCESS", "pages": "2", "error": "OK",
                                         "remote_station": "ccc fax", "end": "1"}
    assert read_outcome("status=FAILED|pages=|error=") is None  # still being written: no end=1
    assert read_outcome("") is None


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_tiffs_pages_are_its_directories(order: str) -> None:
    assert [tiff_pages(tiff(n, order)) for n in (1, 2, 5)] == [1, 2, 5]


def test_what_is_not_a_tiff_or_loops_has_a_bounded_count() -> None:
    assert tiff_pages(b"%PDF-1.4") == 0 and tiff_pages(b"") == 0
    looping = bytearray(tiff(1))
    looping[-4:] = struct.pack("<I", 8)  # the last directory points back at the first
    assert tiff_pages(bytes(looping)) == 1
    assert tiff_pages(tiff(3)[:30]) == 1  # cut short: the pages that are there


def test_an_upload_must_be_base64_of_a_pdf_within_the_limit() -> None:
    pdf = b"%PDF-1.4 something"
    assert decode_pdf(base64.b64encode(pdf).decode(), 100) == pdf
    with pytest.raises(FaxError, match="not a PDF"):
        decode_pdf(base64.b64encode(b"GIF89a").decode(), 100)
    with pytest.raises(FaxError, match="larger than"):
        decode_pdf(base64.b64encode(pdf).decode(), 10)
    with pytest.raises(FaxError, match="base64"):
        decode_pdf("%%% not base64", 100)
