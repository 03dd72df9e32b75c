"""`ccctl webhooks list|dead-letters|replay|replay-dead`: webhook cursors and dead letters, through the API.

The webhook routes need an integration or admin token (--token / CCC_TOKEN).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from controller.cli.main import api, emit
from controller.cli.table import render_table


def cmd_list(args: argparse.Namespace) -> int:
    hooks = api(args).get("/api/webhooks")

    def text(rows: list[dict[str, Any]]) -> str:
        if not rows:
            return "no webhooks configured"
        table = []
        for hook in rows:
            retrying = hook.get("retrying")
            table.append([hook["name"], hook["url"], hook["delivered_seq"], hook["last_seq"], hook["dead_letters"],
                          f"#{retrying['seq']} {retrying['last_error']} ×{retrying['attempts']}" if retrying else ""])
        return render_table(["webhook", "url", "delivered", "newest", "dead letters", "retrying"], table)

    return emit(args, hooks, text)


def cmd_dead_letters(args: argparse.Namespace) -> int:
    data = api(args).get(f"/api/webhooks/{args.name}/dead-letters", {"limit": args.limit})

    def text(d: dict[str, Any]) -> str:
        rows = [[letter["seq"], letter["type"] or "(no longer stored)", (letter["call_id"] or "")[:12],
                 letter["attempts"], letter["last_error"],
                 time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(letter["failed_at"])) if letter["failed_at"] else ""]
                for letter in d["dead_letters"]]
        if not rows:
            return f"webhook {d['webhook']}: no dead letters"
        return render_table(["seq", "event", "call", "attempts", "last error", "given up at"], rows)

    return emit(args, data, text)


def cmd_replay(args: argparse.Namespace) -> int:
    data = api(args).request("POST", f"/api/webhooks/{args.name}/replay", {"since": args.since})
    return emit(args, data, lambda d: f"webhook {d['webhook']}: sending again from event {d['replaying_from']}")


def cmd_replay_dead(args: argparse.Namespace) -> int:
    body = {"seqs": args.seq} if args.seq else {}
    data = api(args).request("POST", f"/api/webhooks/{args.name}/dead-letters/replay", body)
    return emit(args, data, lambda d: f"webhook {d['webhook']}: {len(d['requeued'])} dead letters queued again"
                + (f" ({', '.join(map(str, d['requeued']))})" if d["requeued"] else ""))


def register(sub: Any) -> None:
    webhooks = sub.add_parser("webhooks", help="webhook cursors, dead letters, replays")
    actions = webhooks.add_subparsers(dest="action", required=True)

    def add(name: str, func: Any, help_text: str, named: bool = True) -> argparse.ArgumentParser:
        action: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        if named:
            action.add_argument("name", metavar="NAME", help="the webhook's name in the configuration")
        action.add_argument("--json", action="store_true", help="machine-readable output")
        action.set_defaults(func=func)
        return action

    add("list", cmd_list, "each webhook's delivery cursor, dead letters and current retry", named=False)
    add("dead-letters", cmd_dead_letters, "events the receiver refused for good").add_argument(
        "--limit", type=int, default=100, help="at most this many (1-1000, oldest first)")
    add("replay", cmd_replay, "send every event after --since again").add_argument(
        "--since", type=int, required=True, help="the last sequence number NOT to send again")
    add("replay-dead", cmd_replay_dead, "deliver dead letters again (all, or --seq N ...)").add_argument(
        "--seq", type=int, action="append", help="a dead letter's sequence number (repeatable)")
