"""Static prompts: what the dialplan plays even when the controller is down (`ccc/fallback-notice`)
and the default greeting (`ccc/welcome`). Their texts are in controller/deploy/templates/ccc-sounds.yaml;
`ccctl prompts render` (and the sandbox, on start) speaks them into <sounds>/ccc/<name>.wav. A studio
recording of the same name replaces one: a file newer than the texts is left alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from controller.media.tts import EspeakEngine, TtsEngine, _run

SPEC = Path(__file__).resolve().parents[1] / "deploy" / "templates" / "ccc-sounds.yaml"


def static_prompt_names(spec: Path = SPEC) -> list[str]:
    """The sound names the texts define (ccc/fallback-notice, ...)."""
    return [f"ccc/{name}" for name in yaml.safe_load(spec.read_text(encoding="utf-8"))]


def _outdated(sounds_dir: Path, spec: Path, force: bool) -> list[tuple[Path, list[dict[str, str]]]]:
    """(file to write, its parts) for each prompt whose file is missing or older than the texts."""
    prompts: dict[str, list[dict[str, str]]] = yaml.safe_load(spec.read_text(encoding="utf-8"))
    out_dir = sounds_dir / "ccc"
    out_dir.mkdir(parents=True, exist_ok=True)
    return [(out_dir / f"{name}.wav", parts) for name, parts in prompts.items()
            if force or not (out_dir / f"{name}.wav").exists()
            or (out_dir / f"{name}.wav").stat().st_mtime < spec.stat().st_mtime]


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


async def render_static_prompts(sounds_dir: Path, *, engine: TtsEngine | None = None, spec: Path = SPEC,
                                force: bool = False) -> list[Path]:
    """Render each prompt (its parts in order, e.g. Chinese then English) into <sounds_dir>/ccc/<name>.wav;
    returns the files written (up-to-date ones are skipped unless `force`)."""
    engine = engine or EspeakEngine()
    written = []
    for out, parts in await asyncio.to_thread(_outdated, sounds_dir, spec, force):
        pieces = [out.with_name(f".{out.stem}.{index}.wav") for index in range(len(parts))]
        try:
            for piece, part in zip(pieces, parts, strict=True):
                ((language, text),) = part.items()
                await engine.render(text, language, piece)
            await _run(["sox", *map(str, pieces), str(out)], 60)
        finally:
            await asyncio.to_thread(_remove, pieces)
        written.append(out)
    return written
