"""Text to speech behind an interface: espeak-ng (Mandarin voice `cmn`, English `en`) then sox to
8 kHz mono 16-bit WAV, the format Asterisk plays without transcoding effort. A better engine
(a cloud TTS, a neural one) plugs in by implementing `TtsEngine`."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from pathlib import Path
from typing import ClassVar, Protocol


class TtsError(Exception):
    """Rendering failed (engine missing, crashed or too slow)."""


class TtsEngine(Protocol):
    #: Part of the cache key: a new engine (or voice settings) renders prompts anew.
    name: str

    async def render(self, text: str, language: str, out_path: Path) -> None:
        """Write `text` spoken in `language` ("zh" or "en") to `out_path` as 8 kHz mono WAV."""


async def _run(args: list[str], timeout: float, stdin: bytes | None = None) -> None:
    if shutil.which(args[0]) is None:
        raise TtsError(f"{args[0]} is not installed (make deps installs espeak-ng and sox)")
    process = await asyncio.create_subprocess_exec(
        *args, stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout):
            _, stderr = await process.communicate(stdin)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise TtsError(f"{args[0]} took longer than {timeout:g} s") from None
    if process.returncode != 0:
        raise TtsError(f"{args[0]} failed ({process.returncode}): {stderr.decode(errors='replace').strip()[:300]}")


class EspeakEngine:
    name = "espeak-ng-1"
    voices: ClassVar[dict[str, str]] = {"zh": "cmn", "en": "en"}

    def __init__(self, speed: int = 150, timeout: float = 20.0) -> None:
        self.speed = speed
        self.timeout = timeout

    async def render(self, text: str, language: str, out_path: Path) -> None:
        raw = out_path.with_name(out_path.name + ".raw.wav")
        try:
            # The text goes through stdin, never argv: a text starting with "-" (say "-f/etc/passwd",
            # a caller's input read back) would otherwise be taken for an option.
            await _run(["espeak-ng", "-v", self.voices.get(language, "cmn"), "-s", str(self.speed), "-w", str(raw),
                        "--stdin"], self.timeout, stdin=text.encode())
            await _run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out_path)], self.timeout)
        finally:
            raw.unlink(missing_ok=True)
