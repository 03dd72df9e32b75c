"""Retention of the text-to-speech cache: `<sounds_dir>/ccc/tts/<key>.wav`, one file per distinct text.

Dynamic texts (a balance, a date, an agent's number) make one file each, so the cache grows
without end unless files nobody plays are deleted. A file counts as used when `PromptRenderer`
hands it out: the renderer refreshes its modification time (at most once a day per file) and
remembers the last use, and this job deletes files neither touched nor used for the given days.
A deleted prompt is simply rendered again the next time a call needs it. Studio recordings
(`ccc/recorded/`) are never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("controller.media")

def purge_tts_cache(directory: Path, cutoff: float, used_since: Callable[[str, float], bool]) -> int:
    """Delete cached WAVs last modified before `cutoff` (a Unix time) and not used since then
    (`used_since(key, cutoff)`); blocking: run it in a thread. Returns how many were deleted."""
    removed = 0
    try:
        files = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    for file in files:
        if file.suffix != ".wav":
            continue
        try:
            if file.stat().st_mtime >= cutoff:
                continue
            # A `.KEY.PID.partial.wav` this old is a leftover of a crash in the middle of a render.
            if file.name.startswith(".") or not used_since(file.stem, cutoff):
                file.unlink(missing_ok=True)
                removed += 1
        except OSError as exc:
            log.warning("TTS cache: cannot remove %s: %s", file.name, exc.strerror)
    return removed
