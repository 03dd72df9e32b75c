"""`ccctl audit`: the audit log (who changed what, when, before and after), newest first."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from controller.cli.main import api, emit, filter_query
from controller.cli.reports import parse_moment
from controller.cli.table import render_table


def _change(entry: dict[str, Any]) -> str:
    """Before → after, short enough for a table row."""
    def short(value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text if len(text) <= 60 else text[:57] + "..."

    if entry["before"] is None and entry["after"] is None:
        return ""
    if entry["before"] is None:
        return short(entry["after"])
    return f"{short(entry['before'])} -> {short(entry['after'])}"


def cmd_audit(args: argparse.Namespace) -> int:
    query = filter_query(args, ("actor", "action", "target"))
    data = api(args).get("/api/audit", query)

    def text(d: dict[str, Any]) -> str:
        rows = [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"])), e["actor"], e["action"],
                 e["target"] or "", "" if e["status"] is None else e["status"], _change(e)] for e in d["entries"]]
        if not rows:
            return "no audit entries match"
        return render_table(["when", "who", "what", "target", "status", "change"], rows)

    return emit(args, data, text)


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="the audit log: who changed what, when (newest first)")
    audit.add_argument("--actor", help="user:NAME or token:NAME")
    audit.add_argument("--action", help="an action or its prefix, e.g. login or token.")
    audit.add_argument("--target", help="e.g. user:1001, token:3, /api/flows/reload")
    audit.add_argument("--since", "--from", dest="start", type=parse_moment, help="today, YYYY-MM-DD [HH:MM], …")
    audit.add_argument("--until", "--to", dest="end", type=parse_moment)
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(func=cmd_audit)
