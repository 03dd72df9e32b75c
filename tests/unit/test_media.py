"""Prompts: values in words (zh/en) and text rendered once to 8 kHz mono WAV with the real espeak-ng + sox."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import pytest

from controller.ivr.port import Prompt
from controller.media.prompts import RECHECK_SECONDS, PromptRenderer, prompt_key
from controller.media.say import say_date, say_digits, say_money, say_number, say_time, verbalize
from controller.media.tts import EspeakEngine, TtsError


@pytest.mark.parametrize(("value", "zh", "en"), [
    ("0", "零", "zero"), ("10", "十", "ten"), ("11", "十一", "eleven"), ("20", "二十", "twenty"),
    ("105", "一百零五", "one hundred five"), ("1001", "一千零一", "one thousand one"),
    ("10010", "一万零一十", "ten thousand ten"), ("100000", "十万", "one hundred thousand"),
    ("120000000", "一亿二千万", "one hundred twenty million"),
    ("1234", "一千二百三十四", "one thousand two hundred thirty-four"),
    ("-3.05", "负三点零五", "minus three point zero five"),
])
def test_numbers(value: str, zh: str, en: str) -> None:
    assert say_number(value, "zh") == zh
    assert say_number(value, "en") == en


@pytest.mark.parametrize(("value", "zh", "en"), [
    ("123.45", "一百二十三元四角五分", "one hundred twenty-three yuan and forty-five fen"),
    ("100.05", "一百元零五分", "one hundred yuan and five fen"),
    ("0.5", "五角", "fifty fen"), ("-3", "负三元", "minus three yuan"), ("0", "零元", "zero yuan"),
    ("380.004", "三百八十元", "three hundred eighty yuan"), ("0.015", "二分", "two fen"),
])
def test_money(value: str, zh: str, en: str) -> None:
    assert say_money(value, "zh") == zh
    assert say_money(value, "en") == en


def test_digits_dates_times() -> None:
    assert say_digits("13800138000", "zh") == "幺三八零零幺三八零零零"
    assert say_digits("12#", "en") == "one two pound"
    assert say_date("2026-12-01", "zh") == "二零二六年十二月一日"
    assert say_date("2026-12-01", "en") == "December first, twenty twenty-six"
    assert say_date("2026-11-22", "en") == "November twenty-second, twenty twenty-six"
    assert say_time("14:30", "zh") == "十四点三十分"
    assert say_time("14:00", "zh") == "十四点整"
    assert say_time("09:05", "zh") == "九点零五分"
    assert say_time("14:30", "en") == "two thirty PM"
    assert verbalize("tts", "您好", "zh") == "您好"


@pytest.mark.parametrize(("kind", "value"), [("number", "abc"), ("money", "1,2x"), ("date", "2026-13-01"),
                                             ("time", "25:00"), ("digits", "abc"), ("number", "NaN")])
def test_bad_values_are_clear_errors(kind: str, value: str) -> None:
    with pytest.raises(ValueError, match=kind):
        verbalize(kind, value, "zh")


class CountingEngine:
    name = "counting"

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    async def render(self, text: str, language: str, out_path: Path) -> None:
        self.calls += 1
        await asyncio.sleep(0.05)
        if self.fail:
            raise TtsError("engine down")
        out_path.write_bytes(b"RIFF")


async def test_espeak_renders_8khz_mono_once(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path)
    media = await renderer.media_for(Prompt("money", "123.45", "zh"))
    key = media.removeprefix("sound:ccc/tts/")
    with wave.open(str(tmp_path / "ccc" / "tts" / f"{key}.wav")) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        assert wav.getnframes() / 8000 > 1.0  # "一百二十三元四角五分" takes more than a second
    assert await renderer.media_for(Prompt("money", "123.45", "zh")) == media
    assert renderer.rendered == 1
    english = await renderer.media_for(Prompt("tts", "Hello", "en"))
    assert english != media and renderer.rendered == 2


async def test_concurrent_requests_render_once_and_recordings_win(tmp_path: Path) -> None:
    engine = CountingEngine()
    now = [1000.0]
    renderer = PromptRenderer(tmp_path, engine, monotonic=lambda: now[0])
    results = await asyncio.gather(*(renderer.media_for(Prompt("tts", "请稍候", "zh")) for _ in range(5)))
    assert len(set(results)) == 1 and engine.calls == 1
    key = prompt_key("请稍候", "zh", engine.name)
    (tmp_path / "ccc" / "recorded").mkdir(parents=True)
    (tmp_path / "ccc" / "recorded" / f"{key}.wav").write_bytes(b"RIFF")
    # Which file a text plays is looked up at most once per RECHECK_SECONDS (not twice per prompt of each call):
    # the studio recording is played from the next look-up on.
    now[0] += RECHECK_SECONDS - 0.5
    assert await renderer.media_for(Prompt("tts", "请稍候", "zh")) == f"sound:ccc/tts/{key}"
    now[0] += 1.0
    assert await renderer.media_for(Prompt("tts", "请稍候", "zh")) == f"sound:ccc/recorded/{key}"
    assert await renderer.media_for(Prompt("sound", "beep")) == "sound:beep"
    assert await renderer.media_for(Prompt("recording", "vm-1")) == "recording:vm-1"


async def test_a_deleted_rendering_is_rendered_again_at_the_next_look_up(tmp_path: Path) -> None:
    engine = CountingEngine()
    now = [1000.0]
    renderer = PromptRenderer(tmp_path, engine, monotonic=lambda: now[0])
    media = await renderer.media_for(Prompt("tts", "您好", "zh"))
    (tmp_path / "ccc" / "tts" / f"{media.removeprefix('sound:ccc/tts/')}.wav").unlink()  # e.g. by retention
    now[0] += RECHECK_SECONDS
    assert await renderer.media_for(Prompt("tts", "您好", "zh")) == media
    assert engine.calls == 2 and (tmp_path / "ccc" / "tts" / f"{media.removeprefix('sound:ccc/tts/')}.wav").exists()


async def test_engine_failure_is_a_tts_error_and_leaves_no_file(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path, CountingEngine(fail=True))
    with pytest.raises(TtsError, match="engine down"):
        await renderer.media_for(Prompt("tts", "x", "zh"))
    assert not list((tmp_path / "ccc" / "tts").iterdir())


async def test_missing_binary_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TtsError, match="espeak-ng is not installed"):
        await EspeakEngine().render("x", "zh", tmp_path / "x.wav")


async def test_text_that_looks_like_an_option_is_spoken_not_obeyed(tmp_path: Path) -> None:
    """'-f<path>' as argv would make espeak-ng speak that file; it must be read out as text."""
    secret = tmp_path / "secret.txt"
    secret.write_text("this file must never be read aloud " * 40)
    out = tmp_path / "out.wav"
    await EspeakEngine().render(f"-f{secret}", "en", out)
    with wave.open(str(out)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    # Reading the path out takes a few seconds; reading the file would take well over a minute.
    assert 0.5 < seconds < 20
    help_out = tmp_path / "help.wav"
    await EspeakEngine().render("--help", "en", help_out)  # an option that writes no WAV at all
    with wave.open(str(help_out)) as wav:
        assert wav.getnframes() > 0


class InstantEngine(CountingEngine):
    async def render(self, text: str, language: str, out_path: Path) -> None:
        out_path.write_bytes(b"RIFF")


async def test_retention_forgets_the_uses_of_prompts_it_no_longer_keeps(tmp_path: Path) -> None:
    # A prompt with a per-call value (a balance read back) is one cache key per call: each use was remembered for good.
    renderer = PromptRenderer(tmp_path, InstantEngine())
    for n in range(200):
        await renderer.media_for(Prompt("money", f"{n}.50", "en"))
    cutoff = time.time()
    kept = await renderer.media_for(Prompt("money", "7.50", "en"))  # used again after the cutoff
    removed = await renderer.purge_cache(cutoff)
    key = kept.removeprefix("sound:ccc/tts/")
    assert len(renderer._last_used) == 1 and renderer.used_since(key, cutoff)
    # Every file was written before the cutoff: all go but the one used since, which stays with its use.
    assert removed == 199 and [path.stem for path in renderer.tts_dir.iterdir()] == [key]
