"""From a flow's `Prompt` to what Asterisk plays (a media URI), rendering text to speech once.

- sound → `sound:NAME`; recording → `recording:NAME`;
- tts → rendered once into `<sounds_dir>/ccc/tts/<key>.wav` (key = hash of engine, language and
  text) and played as `sound:ccc/tts/<key>`; a file `<sounds_dir>/ccc/recorded/<key>.wav` (a
  studio recording of the same text) replaces it — `ccctl flows prompts` lists the keys;
- number / digits / money / date / time → their words (`say.verbalize`), then as tts.

Files are written to a temporary name and renamed, so Asterisk never plays half a file, and
concurrent requests for the same text render it once. Which file a text plays is looked up on disk at most
once per RECHECK_SECONDS (two `stat` calls on the event loop for each prompt of each call were ~1.7 % of the
controller's CPU in the full-path benchmark): a studio recording dropped in is played from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from controller.ivr.port import Prompt
from controller.media.say import verbalize
from controller.media.tts import EspeakEngine, TtsEngine, TtsError
from controller.media.tts_cache import purge_tts_cache

__all__ = ["PromptRenderer", "TtsError", "describe", "prompt_key"]

#: A cached prompt's file time is refreshed at most this often when it is used (see media/tts_cache.py).
TOUCH_EVERY_SECONDS = 86400.0
#: How long which file a text plays (studio recording or rendered speech) is taken as known before looking again.
RECHECK_SECONDS = 10.0
#: Texts whose file is remembered at once (prompts with values from variables make many): beyond, forget all.
RESOLVED_MAX = 10_000


def prompt_key(text: str, language: str, engine: str = EspeakEngine.name) -> str:
    return hashlib.sha256(f"{engine}\0{language}\0{text}".encode()).hexdigest()[:24]


def describe(prompt: Prompt) -> str:
    """One line for logs, records and the simulator: `tts zh '您好'`, `money en '12.50'`."""
    return f"{prompt.kind} {prompt.language} {prompt.value!r}"


class PromptRenderer:
    def __init__(self, sounds_dir: Path, engine: TtsEngine | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.sounds_dir = sounds_dir
        self.engine: TtsEngine = engine or EspeakEngine()
        self._rendering: dict[str, asyncio.Future[None]] = {}
        self.rendered = 0
        self._last_used: dict[str, float] = {}  # TTS cache key -> when media_for last handed it out
        self._monotonic = monotonic
        self._resolved: dict[str, tuple[str, float]] = {}  # TTS cache key -> (media URI, when looked up)

    @property
    def tts_dir(self) -> Path:
        return self.sounds_dir / "ccc" / "tts"

    def used_since(self, key: str, since: float) -> bool:
        """Whether the cached prompt `key` was handed out at or after `since` (for the cache's retention)."""
        return self._last_used.get(key, 0.0) >= since

    async def purge_cache(self, cutoff: float) -> int:
        """Retention: delete cached prompts neither written nor used since `cutoff` (a Unix time), and forget
        the uses before it (a prompt with a per-call value, a balance or a number read back, is one key per call:
        remembered for good, they grew the process by every such call)."""
        removed = await asyncio.to_thread(purge_tts_cache, self.tts_dir, cutoff, self.used_since)
        self._last_used = {key: used for key, used in self._last_used.items() if used >= cutoff}
        return removed

    async def _note_use(self, key: str) -> None:
        """Remember the use and refresh the file's time (once a day), so retention sees it used even
        after a restart."""
        now = time.time()
        last = self._last_used.get(key, 0.0)
        self._last_used[key] = now
        if now - last >= TOUCH_EVERY_SECONDS:
            with contextlib.suppress(OSError):  # at worst rendered again after retention removed it
                await asyncio.to_thread(os.utime, self.tts_dir / f"{key}.wav")

    def text_of(self, prompt: Prompt) -> str:
        return verbalize(prompt.kind, prompt.value, prompt.language)

    async def media_for(self, prompt: Prompt) -> str:
        if prompt.kind == "sound":
            return f"sound:{prompt.value}"
        if prompt.kind == "recording":
            return f"recording:{prompt.value}"
        text = self.text_of(prompt)
        key = prompt_key(text, prompt.language, self.engine.name)
        now = self._monotonic()
        known = self._resolved.get(key)
        if known is not None and now - known[1] < RECHECK_SECONDS:
            media = known[0]
        else:
            media = await self._look_up(key, text, prompt.language)
            if len(self._resolved) >= RESOLVED_MAX:
                self._resolved.clear()
            self._resolved[key] = (media, now)
        if media.startswith("sound:ccc/tts/"):
            await self._note_use(key)
        return media

    async def _look_up(self, key: str, text: str, language: str) -> str:
        """The media URI of a text: its studio recording if there is one, else its speech (rendered if missing)."""
        if (self.sounds_dir / "ccc" / "recorded" / f"{key}.wav").exists():
            return f"sound:ccc/recorded/{key}"
        target = self.tts_dir / f"{key}.wav"
        if not target.exists():
            await self._render_once(key, text, language, target)
        return f"sound:ccc/tts/{key}"

    async def _render_once(self, key: str, text: str, language: str, target: Path) -> None:
        pending = self._rendering.get(key)
        if pending is not None:
            await asyncio.shield(pending)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rendering[key] = future
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.stem}.{os.getpid()}.partial.wav")
            try:
                await self.engine.render(text, language, partial)
                partial.replace(target)
            finally:
                partial.unlink(missing_ok=True)
            self.rendered += 1
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, TtsError) else TtsError(str(exc) or type(exc).__name__))
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._rendering[key]

    async def warm(self, prompts: Iterable[Prompt]) -> None:
        """Render a flow's prompts ahead of its first call (values from variables cannot be)."""
        for prompt in prompts:
            if prompt.kind not in ("sound", "recording") and "{" not in prompt.value:
                await self.media_for(prompt)
