"""Outbound campaigns: `ccctl campaign create|import|start|pause|stop|stats|list` (README "Outbound campaigns")."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from controller.cli.main import api, emit
from controller.cli.table import render_table


def stats_text(d: dict[str, Any]) -> str:
    s = d["stats"]
    states = ", ".join(f"{k} {v}" for k, v in sorted(s["by_status"].items())) or "no contacts"
    return "\n".join([f"campaign {d['name']} ({d['settings']['mode']}): {d['status']}",
                      f"contacts {s['contacts']} ({states}); left {s['left']}",
                      f"dialed {s['dialed']}, answered {s['answered']}, abandoned {s['abandoned']}"
                      f" ({100 * s['abandon_rate']:.1f}%; {100 * s['abandon_rate_window']:.1f}% over the window),"
                      f" connected {s['connected']}, in flight {s['in_flight']}, lines {s['lines']},"
                      f" agents ready {s['agents_ready']}, busy {s['agents_busy']} of {s['agents']}"])


def cmd_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = json.loads(Path(args.settings).read_text()) if args.settings else {}
    body["name"] = args.name
    for key in ("mode", "hours", "caller_id", "region", "timezone", "start_date", "end_date"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.agents:
        body["agents"] = args.agents.split(",")
    if args.ring_seconds is not None:
        body["ring_seconds"] = args.ring_seconds
    if args.max_attempts is not None:
        body["max_attempts"] = args.max_attempts
    return emit(args, api(args).post("/api/campaigns", body), stats_text)


def cmd_import(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8-sig")
    result = api(args).post(f"/api/campaigns/{args.name}/contacts", {"csv": text})

    def summary(r: dict[str, Any]) -> str:
        lines = [f"imported {r['imported']}, invalid {len(r['invalid'])}, duplicates {len(r['duplicates'])}"]
        lines += [f"line {i['line']}: {i['number']!r}: {i['reason']}" for i in r["invalid"]]
        lines += [f"line {d['line']}: {d['number']} duplicates line {d['first_line'] or '(already in the campaign)'}"
                  for d in r["duplicates"]]
        return "\n".join(lines)

    return emit(args, result, summary)


def cmd_action(args: argparse.Namespace) -> int:
    return emit(args, api(args).post(f"/api/campaigns/{args.name}/{args.action}"), stats_text)


def cmd_stats(args: argparse.Namespace) -> int:
    return emit(args, api(args).get(f"/api/campaigns/{args.name}"), stats_text)


def cmd_list(args: argparse.Namespace) -> int:
    def table(d: dict[str, Any]) -> str:
        rows = [[c["name"], c["settings"]["mode"], c["status"], c["stats"]["contacts"], c["stats"]["left"],
                 c["stats"]["dialed"], f"{100 * c['stats']['abandon_rate']:.1f}%"] for c in d["campaigns"]]
        return render_table(["campaign", "mode", "status", "contacts", "left", "dialed", "abandon"], rows) \
            if rows else "no campaigns"
    return emit(args, api(args).get("/api/campaigns"), table)


def register(sub: Any) -> None:
    campaign = sub.add_parser("campaign", help="outbound campaigns: create, import contacts, start, pause, stop, stats")
    actions = campaign.add_subparsers(dest="campaign_command", required=True)

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(func=func)
        return parser

    create = command("create", "a new campaign (draft)", cmd_create)
    create.add_argument("name")
    create.add_argument("--settings", help="a JSON file of settings (README), overridden by the options")
    create.add_argument("--mode", choices=["preview", "progressive", "predictive", "ivr"])
    create.add_argument("--agents", help="agent ids, comma-separated")
    create.add_argument("--hours", help="HH:MM-HH:MM, the callee's local time")
    for option in ("--caller-id", "--region", "--timezone", "--start-date", "--end-date"):
        create.add_argument(option)
    create.add_argument("--ring-seconds", type=float)
    create.add_argument("--max-attempts", type=int)
    imp = command("import", "contacts from a CSV file ('-': stdin)", cmd_import)
    imp.add_argument("name")
    imp.add_argument("file")
    for action, help_text in (("start", "start (or resume) dialling"), ("pause", "stop placing new calls"),
                              ("stop", "stop the campaign")):
        parser = command(action, help_text, cmd_action)
        parser.add_argument("name")
        parser.set_defaults(action=action)
    stats = command("stats", "status and figures", cmd_stats)
    stats.add_argument("name")
    command("list", "all campaigns", cmd_list)
