"""`ccctl fax send|status`: faxes sent through the controller's API (README "Fax")."""

from __future__ import annotations

import argparse
import base64
import time
from pathlib import Path
from typing import Any

from controller.cli.main import api, emit

WAIT_STEP_SECONDS = 2.0


def _fax_line(fax: dict[str, Any]) -> str:
    line = f"fax {fax['id']}  to {fax['number']}  {fax['pages']} pages  {fax['status']}"
    if fax["status"] != "sending":
        line += f"  ({fax['pages_sent'] or 0} sent{', ' + fax['error'] if fax['error'] else ''})"
    return line


def cmd_send(args: argparse.Namespace) -> int:
    document = base64.b64encode(Path(args.file).read_bytes()).decode()
    client = api(args)
    fax = client.post("/api/faxes", {"number": args.number, "document": document})
    deadline = time.monotonic() + args.wait
    while fax["status"] == "sending" and time.monotonic() < deadline:
        time.sleep(WAIT_STEP_SECONDS)
        fax = client.get(f"/api/faxes/{fax['id']}")
    emit(args, fax, _fax_line)
    return 1 if fax["status"] == "failed" else 0


def cmd_status(args: argparse.Namespace) -> int:
    return emit(args, api(args).get(f"/api/faxes/{args.fax_id}"), _fax_line)


def register(sub: Any) -> None:
    fax = sub.add_parser("fax", help="send a fax (a PDF) through the trunk; a sent fax's outcome")
    actions = fax.add_subparsers(dest="action", required=True)
    send = actions.add_parser("send", help="send a PDF to a number (dialing policy applies)")
    send.add_argument("file", metavar="FILE", help="the PDF")
    send.add_argument("number", metavar="NUMBER")
    send.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                      help="wait this long for the outcome (exit 1 when it failed)")
    send.add_argument("--json", action="store_true")
    send.set_defaults(func=cmd_send)
    status = actions.add_parser("status", help="a sent fax: sending, sent or failed, pages, error")
    status.add_argument("fax_id", metavar="ID")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
