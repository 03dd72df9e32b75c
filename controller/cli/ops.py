"""Operations commands that read the live controller: trunks (more join as features land)."""

from __future__ import annotations

import argparse
from typing import Any

from controller.cli.main import api, emit


def cmd_trunks(args: argparse.Namespace) -> int:
    data = api(args).get("/api/asterisk/trunks")

    def text(d: dict[str, Any]) -> str:
        from controller.cli.table import render_table

        rows = [[t["name"], t["kind"], t["registration"], t["qualify"], t["contacts"], t["channels"]]
                for t in d["pjsip"]]
        lines = [render_table(["trunk", "type", "registration", "qualify", "contacts", "channels"], rows)]
        if not d["dahdi_loaded"]:
            lines.append("DAHDI: chan_dahdi is not loaded on this Asterisk (no E1/T1 spans to show)")
        else:
            span_rows = [[s.get("Span", "?"), s.get("Description", ""), s.get("Alarm", "")] for s in d["dahdi"]]
            lines.append(render_table(["span", "description", "alarm"], span_rows))
        counts = d.get("channels", {})
        channels, calls = counts.get("active_channels", "?"), counts.get("active_calls", "?")
        lines.append(f"Asterisk: {channels} channels, {calls} calls")
        return "\n".join(lines)

    return emit(args, data, text)


def register(sub: Any) -> None:
    trunks = sub.add_parser("trunks", help="SIP trunk registration/qualify state and E1/T1 span alarms")
    trunks.add_argument("--json", action="store_true")
    trunks.set_defaults(func=cmd_trunks)
