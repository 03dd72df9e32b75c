"""`ccctl prompts render`: speak the static prompts (ccc/fallback-notice, ccc/welcome) into Asterisk's
sounds directory, for an Asterisk the sandbox did not set up (`ccctl doctor` names this when they are missing)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from controller.config import load_config
from controller.media.static import render_static_prompts
from controller.media.tts import TtsError
from controller.settings import SettingsError


def cmd_render(args: argparse.Namespace) -> int:
    if args.sounds_dir:
        sounds_dir = Path(args.sounds_dir)
    else:
        try:
            sounds_dir = Path(load_config(args.config).asterisk.sounds_dir)
        except SettingsError as exc:
            print("\n".join(exc.problems), file=sys.stderr)
            return 2
    try:
        written = asyncio.run(render_static_prompts(sounds_dir, force=args.force))
    except (TtsError, OSError) as exc:
        print(f"ccctl: cannot render the prompts into {sounds_dir}: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    if not written:
        print(f"up to date in {sounds_dir / 'ccc'} (--force renders them again)")
    return 0


def register(sub: Any) -> None:
    prompts = sub.add_parser("prompts", help="the static prompts the dialplan plays (ccc/fallback-notice, ...)")
    actions = prompts.add_subparsers(dest="action", required=True)
    render = actions.add_parser("render", help="speak them into <sounds dir>/ccc/ (espeak-ng and sox)")
    render.add_argument("--config", default=os.environ.get("CCC_CONFIG", "/etc/ccc/controller.yaml"),
                        help="take asterisk.sounds_dir from this configuration")
    render.add_argument("--sounds-dir", help="Asterisk's sounds directory (instead of the configuration's)")
    render.add_argument("--force", action="store_true", help="render even the ones that are up to date")
    render.set_defaults(func=cmd_render)
