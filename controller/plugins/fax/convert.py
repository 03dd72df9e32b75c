"""Document conversions for faxes, run in a worker thread with a timeout (never on the event loop).

Only paths the controller built itself (from hex ids) reach the command lines; nothing a caller sent.
"""

from __future__ import annotations

import asyncio
import struct
import subprocess
from pathlib import Path


class ConversionError(Exception):
    """A document could not be converted (the tool failed, timed out or is missing)."""


async def _run(command: list[str], timeout: float) -> None:
    def run() -> None:
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise ConversionError(f"{command[0]} took longer than {timeout:g} s") from exc
        except FileNotFoundError as exc:
            raise ConversionError(f"{command[0]} is not installed (make deps)") from exc
        if done.returncode != 0:
            raise ConversionError(f"{command[0]} failed: {done.stderr.decode(errors='replace')[-300:].strip()}")
    await asyncio.to_thread(run)


async def tiff_to_pdf(tiff: Path, pdf: Path, timeout: float) -> None:
    """A received fax (TIFF, one directory a page) to PDF with libtiff's tiff2pdf."""
    partial = pdf.with_suffix(".part")
    await _run(["tiff2pdf", "-o", str(partial), str(tiff)], timeout)
    partial.replace(pdf)


async def pdf_to_fax_tiff(pdf: Path, tiff: Path, timeout: float, *, last_page: int) -> None:
    """A PDF to TIFF-F (G3, 204x196 dpi, A4) with ghostscript in its safe mode; at most `last_page` pages."""
    partial = tiff.with_suffix(".part")
    await _run(["gs", "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=tiffg3", "-r204x196", "-sPAPERSIZE=a4",
                "-dFIXEDMEDIA", "-dPDFFitPage", f"-dLastPage={last_page}", f"-sOutputFile={partial}", str(pdf)],
               timeout)
    if not partial.is_file():
        raise ConversionError("gs made no pages of it")
    partial.replace(tiff)


def tiff_pages(data: bytes) -> int:
    """How many pages (image file directories) a TIFF has; 0 when it is not a TIFF."""
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        return 0
    order = "<" if data[:2] == b"II" else ">"
    (offset,) = struct.unpack_from(order + "I", data, 4)
    pages, seen = 0, set()
    while offset and offset + 2 <= len(data) and offset not in seen:
        seen.add(offset)
        (entries,) = struct.unpack_from(order + "H", data, offset)
        following = offset + 2 + entries * 12
        if following + 4 > len(data):
            break  # a directory cut short (a fax that broke off): not a page
        pages += 1
        (offset,) = struct.unpack_from(order + "I", data, following)
    return pages
