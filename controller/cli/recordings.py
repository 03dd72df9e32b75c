"""`ccctl recordings list|show|export`: the recordings index and the files, through the controller's API."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from controller.cli.main import api, emit, filter_query
from controller.cli.reports import parse_moment
from controller.cli.table import render_table
from controller.logs import mask_number


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else ""


def cmd_list(args: argparse.Namespace) -> int:
    query = filter_query(args, ("call_id", "agent", "caller", "queue"))
    data = api(args).get("/api/recordings", query)

    def text(d: dict[str, Any]) -> str:
        rows = [[r["id"], _when(r["started_at"]), "-" if r["duration"] is None else f"{r['duration']:.1f}s",
                 r["queue"] or "", ",".join(r["agents"]), mask_number(r["caller"] or ""), len(r["pauses"]),
                 r["call_id"][:12]] for r in d["recordings"]]
        if not rows:
            return "no recordings match"
        return render_table(["id", "started", "length", "queue", "agents", "caller", "pauses", "call"], rows)

    return emit(args, data, text)


def cmd_show(args: argparse.Namespace) -> int:
    row = api(args).get(f"/api/recordings/{args.recording_id}")

    def text(r: dict[str, Any]) -> str:
        pauses = ", ".join(f"{p[0]:.1f}–{'…' if p[1] is None else f'{p[1]:.1f}'} s" for p in r["pauses"]) or "none"
        return "\n".join([
            f"recording {r['id']}  {r['name']}",
            f"call      {r['call_id']}  caller {mask_number(r['caller'] or '')}  queue {r['queue'] or '-'}",
            f"agents    {', '.join(r['agents']) or '-'}",
            f"started   {_when(r['started_at'])}  length {r['duration'] if r['duration'] is not None else '(live)'} s",
            f"paused    {pauses}",
            f"file      {r['file']}  ({r['reason']})",
        ])

    return emit(args, row, text)


def cmd_export(args: argparse.Namespace) -> int:
    client = api(args)
    row = client.get(f"/api/recordings/{args.recording_id}")
    target = Path(args.out) if args.out else Path(f"{row['name']}.wav")
    target.write_bytes(client.download(f"/api/recordings/{args.recording_id}/audio"))
    print(f"{target} ({target.stat().st_size} bytes)", file=sys.stderr if args.json else sys.stdout)
    return emit(args, {**row, "exported_to": str(target)}, lambda _: "") if args.json else 0


def register(sub: Any) -> None:
    recordings = sub.add_parser("recordings", help="list, show and export call recordings")
    actions = recordings.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the recordings index, newest first")
    listing.add_argument("--call-id")
    listing.add_argument("--agent")
    listing.add_argument("--caller")
    listing.add_argument("--queue")
    listing.add_argument("--from", dest="start", type=parse_moment)
    listing.add_argument("--to", dest="end", type=parse_moment)
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    show = actions.add_parser("show", help="one recording's index entry")
    show.add_argument("recording_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_show)
    export = actions.add_parser("export", help="download a recording's WAV file")
    export.add_argument("recording_id", metavar="ID")
    export.add_argument("--out", help="file to write (default: NAME.wav here)")
    export.add_argument("--json", action="store_true")
    export.set_defaults(func=cmd_export)
