"""ccctl: the operator's command line for the call-center controller.

Every command takes --json for machine-readable output and exits non-zero on failure, with a
clear message when the controller or Asterisk cannot be reached. The controller's address and
token come from --url/--token or CCC_URL/CCC_TOKEN.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from controller.cli.api import ApiError, ApiUnavailable, ControllerApi

Command = Callable[[argparse.Namespace], int]


def emit(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> int:
    """Print `data` as JSON with --json, else as the human text."""
    if getattr(args, "json", False):
        print(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        print(text(data))
    return 0


def api(args: argparse.Namespace) -> ControllerApi:
    return ControllerApi(args.url, args.token)


def cmd_status(args: argparse.Namespace) -> int:
    health = api(args).get("/healthz")

    def text(h: dict[str, Any]) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["started_at"]))
        states = ", ".join(f"{k} {v}" for k, v in sorted(h.get("calls_by_state", {}).items())) or "none"
        return "\n".join([
            f"controller  {h['status']}  version {h['version']}  up since {since} ({h['uptime_seconds']:.0f} s)",
            f"asterisk    {'connected' if h['ari_connected'] else 'NOT CONNECTED'} (ARI event stream)",
            f"calls       {h['active_calls']} active: {states}",
        ])

    emit(args, health, text)
    return 0 if health.get("ari_connected") else 1


def cmd_calls(args: argparse.Namespace) -> int:
    calls = api(args).get("/api/calls")

    def text(c: dict[str, Any]) -> str:
        from controller.cli.table import render_table

        rows = [[s["call_id"][:12], s["caller"], s["did"], s["state"]] for s in c["active"]]
        return render_table(["call", "caller", "did", "state"], rows) if rows else "no active calls"

    return emit(args, calls, text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="controller URL (default $CCC_URL or http://127.0.0.1:8080)")
    parser.add_argument("--token", help="API token (default $CCC_TOKEN)")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.set_defaults(func=func)
        return command

    add("status", cmd_status, "controller and Asterisk status, calls by state")
    add("calls", cmd_calls, "live calls")
    for register in _plugins():
        register(sub)
    return parser


def _plugins() -> list[Callable[[Any], None]]:
    """Sub-command groups defined in their own modules (flows, agents, reports, …)."""
    registers = []
    for module_name in ("controller.cli.flows", "controller.cli.doctor", "controller.cli.deploy",
                        "controller.cli.ops"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ImportError:
            continue
        registers.append(module.register)
    return registers


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
        return result
    except ApiUnavailable as exc:
        print(f"ccctl: {exc}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"ccctl: {exc.message} (HTTP {exc.status})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
