"""Workforce management: `ccctl forecast` (staffing plan), `ccctl intraday`, `ccctl shifts import` (and list,
delete), `ccctl adherence`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from controller.cli.api import ControllerApi
from controller.cli.main import emit
from controller.cli.reports import parse_moment, report_csv
from controller.cli.table import render_table
from controller.plugins.wfm.schedules import ScheduleError, parse_csv

#: Fitting a model on weeks of history takes a while on a big center.
FORECAST_TIMEOUT = 120.0


def _clock(epoch: float) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(epoch))


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _client(args: argparse.Namespace) -> ControllerApi:
    return ControllerApi(args.url, args.token, timeout=FORECAST_TIMEOUT)


def _plan_header(d: dict[str, Any]) -> list[str]:
    targets, accuracy = d["targets"], d["accuracy"]
    model = "Erlang A" if targets["model"] == "erlang_a" else "Erlang C"
    lines = [f"queue {d['queue']}: {d['days']} day(s) from {d['first_day']}, {d['interval_minutes']}-minute"
             f" intervals, learnt from {d['history_days']} days",
             f"{model}: {100 * targets['service_level_target']:.0f}% answered within"
             f" {targets['answer_within_seconds']:g} s, shrinkage {100 * targets['shrinkage']:.0f}%"]
    if accuracy["holdout_days"]:
        lines.append(f"accuracy on the last {accuracy['holdout_days']} held-out days: MAPE"
                     f" {_percent(accuracy['interval_mape'])} per interval, {_percent(accuracy['daily_mape'])}"
                     f" per day ({accuracy['intervals_compared']} intervals with calls)")
    return lines + [f"note: {note}" for note in d.get("notes", [])]


def plan_table(d: dict[str, Any]) -> str:
    rows = [[_clock(r["start"]), r["calls"], r["aht_seconds"], r["agents"], r["scheduled_agents"],
             _percent(r["service_level"])] for r in d["rows"] if r["agents"] or not d.get("busy_only")]
    total = sum(r["calls"] for r in d["rows"])
    table = render_table(["interval", "calls", "AHT s", "agents", "schedule", "SL"], rows)
    return "\n".join([*_plan_header(d), table, f"total forecast calls: {total:.1f}"])


def intraday_table(d: dict[str, Any]) -> str:
    rows = [[_clock(r["start"]), r["calls"], "-" if r["actual_calls"] is None else r["actual_calls"],
             r["aht_seconds"], "-" if r["actual_aht_seconds"] is None else r["actual_aht_seconds"], r["agents"],
             r["scheduled_on_shift"], "-" if r["staffed"] is None else r["staffed"]] for r in d["rows"]]
    return "\n".join([*_plan_header(d), render_table(
        ["interval", "forecast", "actual", "AHT s", "actual AHT", "needed", "on shift", "staffed"], rows)])


def cmd_forecast(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"queue": args.queue, "days": args.days}
    if args.interval:
        query["interval"] = args.interval
    if args.start:
        query["start"] = args.start
    data = _client(args).get("/api/forecast", query)
    data["busy_only"] = args.busy_only
    if args.format == "csv":
        sys.stdout.write(report_csv(data))
        return 0
    return emit(args, data, plan_table)


def cmd_intraday(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"queue": args.queue}
    if args.interval:
        query["interval"] = args.interval
    if args.day:
        query["day"] = args.day
    data = _client(args).get("/api/intraday", query)
    if args.format == "csv":
        sys.stdout.write(report_csv(data))
        return 0
    return emit(args, data, intraday_table)


def cmd_shifts_import(args: argparse.Namespace) -> int:
    text = Path(args.file).read_text(encoding="utf-8") if args.file != "-" else sys.stdin.read()
    try:
        parse_csv(text)  # refuse a bad file here, with its row number, before sending anything
    except ScheduleError as exc:
        print(f"ccctl shifts import: {exc}", file=sys.stderr)
        return 2
    result = _client(args).post("/api/shifts", {"csv": text})
    return emit(args, result, lambda d: f"{d['added']} shifts added")


def cmd_shifts_list(args: argparse.Namespace) -> int:
    query: dict[str, Any] = {"from": args.start if args.start is not None else parse_moment("today")}
    if args.end is not None:
        query["to"] = args.end
    if args.agent:
        query["agent_id"] = args.agent
    data = _client(args).get("/api/shifts", query)
    return emit(args, data, lambda d: render_table(
        ["id", "agent", "start", "end", "activity"],
        [[s["id"], s["agent_id"], _clock(s["start"]), _clock(s["end"]), s["activity"]] for s in d["shifts"]]))


def cmd_shifts_delete(args: argparse.Namespace) -> int:
    result = _client(args).request("DELETE", f"/api/shifts/{args.id}")
    return emit(args, result, lambda d: f"shift {d['deleted']} deleted")


def cmd_adherence(args: argparse.Namespace) -> int:
    data = _client(args).get("/api/adherence")
    now = time.time()
    return emit(args, data, lambda d: render_table(
        ["agent", "adherence", "scheduled", "state", "out for"],
        [[a["agent_id"], a["status"], a["scheduled"], a["state"],
          "" if a["out_since"] is None else f"{now - a['out_since']:.0f} s"] for a in d["agents"]]))


def register(sub: Any) -> None:
    fc = sub.add_parser("forecast", help="staffing plan: forecast calls, AHT and agents needed per interval",
                        description="Forecast from the store's history (weekday and time-of-day seasonality, trend,"
                                    " holidays), with its accuracy (MAPE) on held-out days; agents from Erlang C"
                                    " (Erlang A for queues with wfm.patience_seconds) and shrinkage.")
    fc.add_argument("--queue", required=True)
    fc.add_argument("--days", type=int, default=1, help="days ahead, from --start (default 1)")
    fc.add_argument("--start", help="first day, YYYY-MM-DD (default: today)")
    fc.add_argument("--interval", type=int, choices=[15, 30, 60], help="minutes (default: wfm.interval_minutes)")
    fc.add_argument("--busy-only", action="store_true", help="table: leave out the intervals that need nobody")
    fc.add_argument("--format", choices=["table", "csv", "json"], default="table")
    fc.add_argument("--json", action="store_true", help="same as --format json")
    fc.set_defaults(func=cmd_forecast)

    intraday = sub.add_parser("intraday", help="forecast vs actual vs staffed per interval of a day")
    intraday.add_argument("--queue", required=True)
    intraday.add_argument("--day", help="YYYY-MM-DD (default: today)")
    intraday.add_argument("--interval", type=int, choices=[15, 30, 60])
    intraday.add_argument("--format", choices=["table", "csv", "json"], default="table")
    intraday.add_argument("--json", action="store_true")
    intraday.set_defaults(func=cmd_intraday)

    shifts = sub.add_parser("shifts", help="agents' schedules: import a CSV, list, delete")
    shifts_sub = shifts.add_subparsers(dest="shifts_command", required=True)
    imp = shifts_sub.add_parser("import", help="CSV with the header agent_id,start,end[,activity] ('-': stdin)")
    imp.add_argument("file")
    imp.add_argument("--json", action="store_true")
    imp.set_defaults(func=cmd_shifts_import)
    listing = shifts_sub.add_parser("list", help="shifts overlapping a period (default: today)")
    listing.add_argument("--from", dest="start", type=parse_moment)
    listing.add_argument("--to", dest="end", type=parse_moment)
    listing.add_argument("--agent")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_shifts_list)
    delete = shifts_sub.add_parser("delete", help="delete a shift by id")
    delete.add_argument("id", type=int)
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(func=cmd_shifts_delete)

    adherence = sub.add_parser("adherence", help="real-time adherence: schedule against each agent's state now")
    adherence.add_argument("--json", action="store_true")
    adherence.set_defaults(func=cmd_adherence)
