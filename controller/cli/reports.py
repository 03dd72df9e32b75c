"""Managers' numbers: `ccctl report` (KPIs from the controller) and `ccctl erlang` (staffing, offline;
Erlang A with --patience)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from datetime import datetime, timedelta
from typing import Any

from controller.cli.main import api, emit
from controller.cli.table import render_table
from controller.reports import erlang

#: The columns of the report table (all of them are in --json / --format csv).
TABLE_COLUMNS = [("offered", "offered"), ("answered", "answered"), ("abandoned", "abandoned"),
                 ("answer_rate", "接通率"), ("abandon_rate", "放弃率"), ("service_level", "SL"),
                 ("asa", "ASA s"), ("att", "talk s"), ("avg_hold", "hold s"), ("avg_acw", "ACW s"),
                 ("aht", "AHT s"), ("one_stop_rate", "一站式"), ("survey_avg", "满意度"), ("occupancy", "occupancy"),
                 ("callback_offers", "回拨提供"), ("callback_connected", "回拨接通")]
RATES = {"answer_rate", "abandon_rate", "service_level", "one_stop_rate", "occupancy", "transfer_rate",
         "complaint_rate", "contact_rate"}


def parse_moment(text: str) -> float:
    """`today`, `yesterday`, `now`, `YYYY-MM-DD`, `YYYY-MM-DD HH:MM` (local time) or epoch seconds."""
    midnight = datetime.now().replace(hour=0, minute=0, second=0, microsecond=0)
    named = {"now": datetime.now(), "today": midnight, "yesterday": midnight - timedelta(days=1)}
    if text in named:
        return named[text].timestamp()
    try:
        return float(text)
    except ValueError:
        pass
    for pattern in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, pattern).timestamp()
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"{text!r} is not a time: use today, yesterday, now, YYYY-MM-DD,"
                                     " 'YYYY-MM-DD HH:MM' or epoch seconds")


def _cell(name: str, value: Any) -> Any:
    if value is None:
        return "-"
    if name in RATES:
        return f"{100 * value:.1f}%"
    return value


def _row_label(row: dict[str, Any], interval: int | None) -> list[str]:
    label = []
    if interval:
        label.append(time.strftime("%m-%d %H:%M", time.localtime(row["interval_start"])))
    if row.get("queue") is not None:
        label.append(row["queue"])
    if row.get("agent_id") is not None:
        label.append(row["agent_id"])
    return label


def report_table(data: dict[str, Any]) -> str:
    interval = data.get("interval_minutes")
    headers = (["interval"] if interval else []) + {"queue": ["queue"], "agent": ["agent"],
                                                      "both": ["queue", "agent"], "total": []}[data["by"]]
    rows = [_row_label(row, interval) + [_cell(name, row[name]) for name, _ in TABLE_COLUMNS]
            for row in data["rows"]]
    start = time.strftime("%Y-%m-%d %H:%M", time.localtime(data["start"]))
    end = time.strftime("%Y-%m-%d %H:%M", time.localtime(data["end"]))
    title = f"KPIs {start} → {end} by {data['by']}" + (f", {interval}-minute intervals" if interval else "")
    if not rows:
        return f"{title}\nno calls and no agent activity in this period"
    return f"{title}\n" + render_table(headers + [label for _, label in TABLE_COLUMNS], rows)


def report_csv(data: dict[str, Any]) -> str:
    """Every figure of every row; dicts (not-ready by reason, survey distribution…) as JSON cells."""
    out = io.StringIO()
    rows = data["rows"]
    if not rows:
        return ""
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, dict) else v for k, v in row.items()})
    return out.getvalue()


def cmd_report(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"by": args.by, "from": args.start if args.start is not None else parse_moment("today"),
                             "to": args.end if args.end is not None else time.time()}
    if args.interval:
        query["interval"] = args.interval
    client = api(args)
    data = client.get("/api/reports", query)
    # Voicemail response times (README "Voicemail inbox"), for the same period.
    data["voicemail"] = client.get("/api/inbox/report", {"from": query["from"], "to": query["to"]})["voicemail"]
    # Outbound campaigns (README "Outbound campaigns"), the attempts placed in the same period.
    data["campaigns"] = client.get("/api/reports/campaigns", {"from": query["from"], "to": query["to"]})["campaigns"]
    if args.json or args.format == "json":
        args.json = True
        return emit(args, data, str)
    if args.format == "csv":
        sys.stdout.write(report_csv(data))
        return 0
    # QA by agent (README "Quality assurance") comes with the KPIs: scores given in the period.
    return emit(args, data, lambda d: report_table(d) + voicemail_table(d["voicemail"]) + qa_table(d.get("qa", []))
                + campaign_table(d["campaigns"]))


def voicemail_table(rows: list[dict[str, Any]]) -> str:
    """Messages by queue and their response time (arrival to call-back or done)."""
    if not rows:
        return "\n\nvoicemail: no messages"
    table = render_table(["queue", "messages", "answered", "open", "avg response", "max response"],
                         [[r["queue"] or "-", r["messages"], r["answered"], r["open"],
                           "-" if r["avg_response_seconds"] is None else f"{r['avg_response_seconds']:.0f}s",
                           "-" if r["max_response_seconds"] is None else f"{r['max_response_seconds']:.0f}s"]
                          for r in rows])
    return "\n\nvoicemail\n" + table


def campaign_table(rows: list[dict[str, Any]]) -> str:
    """Campaigns' figures, then each one's results (by disposition, else final status) and outcomes."""
    if not rows:
        return "\n\ncampaigns: no calls placed"
    table = render_table(
        ["campaign", "contacts", "dialled", "reached", "left", "attempts", "answered", "connected", "abandoned",
         "接通率 contact", "放弃率 abandon", "attempts/contact", "talk", "avg talk"],
        [[r["campaign"], r["contacts"], r["contacts_dialled"], r["contacts_reached"], r["contacts_left"], r["dialed"],
          r["answered"], r["connected"], r["abandoned"], _cell("contact_rate", r["contact_rate"]),
          _cell("abandon_rate", r["abandon_rate"]), _cell("", r["attempts_per_contact"]), f"{r['talk_seconds']:.0f}s",
          "-" if r["avg_talk_seconds"] is None else f"{r['avg_talk_seconds']:.0f}s"] for r in rows])
    details = "".join(f"\n{r['campaign']} results: " + ", ".join(f"{k} {v}" for k, v in r["results"].items())
                      + f"\n{r['campaign']} attempts: " + ", ".join(f"{k} {v}" for k, v in r["by_outcome"].items())
                      for r in rows)
    return "\n\ncampaigns\n" + table + details


def qa_table(rows: list[dict[str, Any]]) -> str:
    """QA by agent: calls scored, average score, critical failures, the criterion with the lowest average."""
    if not rows:
        return "\n\nquality (QA): no scores"
    table = render_table(
        ["agent", "scored", "avg score", "critical failed", "lowest criterion"],
        [[r["agent_id"], r["scored"], f"{r['average_score']:.1f}", r["critical_failed"],
          "-" if r["lowest_criterion"] is None
          else f"{r['lowest_criterion']['label']} ({r['lowest_criterion']['average_percent']:.0f}%)"] for r in rows])
    return "\n\nquality (QA)\n" + table


def cmd_erlang(args: argparse.Namespace) -> int:
    try:
        if args.agents and args.patience:
            result = erlang.achieved_with_abandonment(args.agents, calls=args.calls, aht_seconds=args.aht,
                                                      patience_seconds=args.patience, interval_minutes=args.interval,
                                                      answer_within_seconds=args.within)
        elif args.agents:
            result = erlang.achieved(args.agents, calls=args.calls, aht_seconds=args.aht,
                                     interval_minutes=args.interval, answer_within_seconds=args.within)
        else:
            result = erlang.agents_needed(calls=args.calls, aht_seconds=args.aht, interval_minutes=args.interval,
                                          target_service_level=args.target / 100, answer_within_seconds=args.within,
                                          max_occupancy=args.max_occupancy / 100 if args.max_occupancy else None,
                                          target_asa_seconds=args.asa, patience_seconds=args.patience)
        schedule = erlang.scheduled(result.agents, args.shrinkage / 100)
    except ValueError as exc:
        print(f"ccctl erlang: {exc}", file=sys.stderr)
        return 2
    data = {**result.as_dict(), "scheduled_agents": schedule, "calls": args.calls, "aht_seconds": args.aht,
            "interval_minutes": args.interval, "answer_within_seconds": args.within, "shrinkage": args.shrinkage / 100}

    def text(d: dict[str, Any]) -> str:
        asa = "unbounded (too few agents)" if d["asa_seconds"] is None else f"{d['asa_seconds']:.1f} s"
        verb = "with" if args.agents else "needed:"
        lines = [
            f"{d['calls']:g} calls per {d['interval_minutes']:g} min, AHT {d['aht_seconds']:g} s"
            f" = {d['traffic_erlangs']:.2f} erlangs",
            f"agents {verb} {d['agents']}  (schedule {d['scheduled_agents']} at {100 * d['shrinkage']:.0f}% shrinkage)",
            f"service level {100 * d['service_level']:.1f}% answered within {d['answer_within_seconds']:g} s",
            f"probability of waiting {100 * d['probability_of_waiting']:.1f}%, ASA {asa},"
            f" occupancy {100 * d['occupancy']:.1f}%",
        ]
        if d.get("abandon_rate") is not None:
            lines.append(f"Erlang A: {100 * d['abandon_rate']:.1f}% of callers hang up while waiting"
                         f" (mean patience {args.patience:g} s; ASA is the mean wait of all callers)")
        return "\n".join(lines)

    return emit(args, data, text)


def register(sub: Any) -> None:
    report = sub.add_parser("report", help="KPIs by queue, agent or both for a period (table, CSV or JSON)",
                            description="KPIs as defined in the README (KPIs). Times are local: today, yesterday,"
                                        " now, YYYY-MM-DD, 'YYYY-MM-DD HH:MM' or epoch seconds.")
    report.add_argument("--from", dest="start", type=parse_moment, help="start (default: today 00:00)")
    report.add_argument("--to", dest="end", type=parse_moment, help="end (default: now)")
    report.add_argument("--by", choices=["queue", "agent", "both", "total"], default="queue")
    report.add_argument("--interval", type=int, choices=[15, 30, 60], help="one row per interval of N minutes")
    report.add_argument("--format", choices=["table", "csv", "json"], default="table")
    report.add_argument("--json", action="store_true", help="same as --format json")
    report.set_defaults(func=cmd_report)

    calc = sub.add_parser("erlang", help="Erlang C: agents needed for a service level (or what N agents achieve)",
                          description="Runs offline (no controller needed).")
    calc.add_argument("--calls", type=float, required=True, help="calls offered per interval")
    calc.add_argument("--aht", type=float, required=True, help="average handle time, seconds (talk + hold + ACW)")
    calc.add_argument("--interval", type=float, default=30, help="interval length, minutes (default 30)")
    calc.add_argument("--target", type=float, default=80, help="service level target, percent (default 80)")
    calc.add_argument("--within", type=float, default=20, help="answered within, seconds (default 20)")
    calc.add_argument("--asa", type=float, help="also keep ASA at or under this many seconds")
    calc.add_argument("--max-occupancy", type=float, help="also keep occupancy at or under this percent")
    calc.add_argument("--shrinkage", type=float, default=0, help="percent of paid time off the phones (default 0)")
    calc.add_argument("--agents", type=int, help="instead: what this many agents achieve")
    calc.add_argument("--patience", type=float,
                      help="callers' mean patience, seconds: Erlang A (abandonment) instead of Erlang C")
    calc.add_argument("--json", action="store_true")
    calc.set_defaults(func=cmd_erlang)
