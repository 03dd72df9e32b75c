"""Every `ccctl …` command the project tells people to run exists: in the fixes `ccctl doctor` prints,
in other messages and docstrings, in the README and in the shipped configuration and prompt files."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from controller.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
MENTION = re.compile(r"\bccctl((?: +[a-z][a-z0-9-]*)+)")
SOURCES = sorted([*(REPO / "controller").rglob("*.py"), *(REPO / "controller").rglob("*.yaml"),
                  REPO / "README.md", REPO / "demo" / "controller.yaml", *(REPO / "dialplans").glob("*")])


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def needs_subcommand(parser: argparse.ArgumentParser) -> bool:
    """A group such as `ccctl flows`; `ccctl agents` runs alone too (its sub-commands are optional)."""
    return any(isinstance(action, argparse._SubParsersAction) and action.required for action in parser._actions)


def unknown_command(words: list[str]) -> str | None:
    """None when `ccctl <words>` names an existing command (extra words are arguments), else the
    first word that is not one."""
    parser = build_parser()
    for word in words:
        choices = subcommands(parser)
        if not choices:
            return None  # a leaf command: the rest are its arguments
        if word not in choices:
            return word
        parser = choices[word]
    return "(a command group without its command)" if needs_subcommand(parser) else None


PROSE = {"talks"}  # "ccctl talks to the controller": a sentence about ccctl, not a command


def mentions() -> list[tuple[str, int, list[str]]]:
    """(file:line, line, words after ccctl); a command wrapped onto the next line is read whole."""
    found = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for match in MENTION.finditer(re.sub(r"\n[ #]*", lambda m: " " * len(m.group()), text)):
            words = match.group(1).split()
            if words[0] not in PROSE:
                number = text.count("\n", 0, match.start()) + 1
                found.append((f"{path.relative_to(REPO)}:{number}", number, words))
    return found


def test_the_doctors_fixes_are_found() -> None:
    """The scan sees the doctor's own fixes (else the test below would prove nothing)."""
    places = [place for place, _, words in mentions() if place.startswith("controller/cli/doctor.py")]
    assert len(places) >= 2, places


@pytest.mark.parametrize(("place", "words"), [(place, words) for place, _, words in mentions()])
def test_every_suggested_command_exists(place: str, words: list[str]) -> None:
    assert unknown_command(words) is None, f"{place}: ccctl {' '.join(words)}: no such command"


def test_the_check_itself_rejects_a_missing_command() -> None:
    assert unknown_command(["prompts", "render"]) is None
    assert unknown_command(["prompts", "rendre"]) == "rendre"
    assert unknown_command(["promts"]) == "promts"
    assert unknown_command(["flows", "simulate", "ivr_flows"]) is None


def test_prompts_render_writes_the_static_prompts_the_dialplan_plays(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import wave

    from controller.cli.doctor import STATIC_SOUNDS
    from controller.cli.main import main
    from controller.media.static import static_prompt_names

    assert set(STATIC_SOUNDS) <= set(static_prompt_names())  # what the doctor asks for, this renders
    assert main(["prompts", "render", "--sounds-dir", str(tmp_path)]) == 0
    written = capsys.readouterr().out.split()
    assert written == [str(tmp_path / "ccc" / "fallback-notice.wav"), str(tmp_path / "ccc" / "welcome.wav")]
    with wave.open(written[0]) as audio:
        assert (audio.getframerate(), audio.getnchannels(), audio.getsampwidth()) == (8000, 1, 2)
        assert audio.getnframes() > 8000 * 3  # Chinese then English: several seconds
    assert sorted(p.name for p in (tmp_path / "ccc").iterdir()) == ["fallback-notice.wav", "welcome.wav"]
    assert main(["prompts", "render", "--sounds-dir", str(tmp_path)]) == 0  # up to date: a recording stays
    assert "up to date" in capsys.readouterr().out
    assert main(["prompts", "render", "--sounds-dir", str(tmp_path), "--force"]) == 0
    assert len(capsys.readouterr().out.split()) == 2


def test_prompts_render_takes_the_sounds_dir_from_the_configuration(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from controller.cli.main import main

    config = tmp_path / "controller.yaml"
    config.write_text(f"asterisk: {{sounds_dir: {tmp_path / 'sounds'}}}\n")
    assert main(["prompts", "render", "--config", str(config)]) == 0
    assert (tmp_path / "sounds" / "ccc" / "welcome.wav").exists()
    config.write_text("asterisk: {sounds_dir: [x]}\n")
    assert main(["prompts", "render", "--config", str(config)]) == 2
    assert f"{config}:1:24: asterisk.sounds_dir: expected a string, got a list" in capsys.readouterr().err
