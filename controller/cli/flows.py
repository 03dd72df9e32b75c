"""`ccctl flows validate|simulate|reload|list|prompts`: check, try and put IVR flows live."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from controller.ivr.flow import Flow, flow_set, load_flows, sound_prompts, static_prompts
from controller.ivr.nodes import NODE_TYPES
from controller.ivr.simulator import SimulatedPort, simulate


def _sound_exists(dirs: list[str]) -> Any:
    if not dirs:
        return None
    from controller.plugins.ivr.services import sound_exists_in

    checks = [sound_exists_in(Path(d)) for d in dirs]
    return lambda name, language: any(check(name, language) for check in checks)


def cmd_validate(args: argparse.Namespace) -> int:
    flows, errors = load_flows([Path(p) for p in args.paths], _sound_exists(args.sounds_dir or []))
    if args.json:
        print(json.dumps({"ok": not errors, "flows": [f.id for f in flows], "errors": [str(e) for e in errors]},
                         ensure_ascii=False, indent=2))
    else:
        for error in errors:
            print(error)
        if not errors:
            print(f"{len(flows)} flow{'s' if len(flows) != 1 else ''} OK: {', '.join(f.id for f in flows)}")
    return 1 if errors else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    flows, errors = load_flows([Path(args.path)])
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        return 1
    if not flows:
        print(f"ccctl: no flow in {args.path}", file=sys.stderr)
        return 1
    flowset = flow_set(flows)
    flow = (flowset.flows.get(args.flow) if args.flow else flowset.flow_for_did(args.did) if args.did else flows[0])
    if flow is None:
        print(f"ccctl: no flow {'id ' + args.flow if args.flow else 'for DID ' + str(args.did)}", file=sys.stderr)
        return 1
    answers = yaml.safe_load(Path(args.http_answers).read_text()) if args.http_answers else {}
    zone = ZoneInfo(flow_time_zone(flow))
    try:
        at = datetime.fromisoformat(args.at) if args.at else now(zone)
    except ValueError:
        print(f"ccctl: --at {args.at!r} is not an ISO date and time (2026-11-23T20:00+08:00)", file=sys.stderr)
        return 1
    if at.tzinfo is None:  # a local time of the flow's schedule, not of this host
        at = at.replace(tzinfo=zone)
    port = SimulatedPort(caller=args.caller, did=args.did or (flow.dids[0] if flow.dids else ""), dtmf=args.dtmf,
                         http_answers=answers, queue_result=args.queue_result, overflow_target=args.overflow_target)
    result = asyncio.run(simulate(flowset, flow.id, port, at))
    played: dict[str, list[str]] = {}
    for node_id, prompts in result.played:
        played.setdefault(node_id, []).extend(f"{p.kind} {p.language} {p.value}" for p in prompts)
    if args.json:
        print(json.dumps({"flow": flow.id, "at": at.isoformat(timespec="seconds"), "visited": result.visited,
                          "ended": result.ended, "error": result.error,
                          "played": [{"node": n, "prompts": [f"{p.kind} {p.language} {p.value}" for p in ps]}
                                     for n, ps in result.played],
                          "variables": {k: v for k, v in result.variables.items()},
                          "records": [{"kind": kind, **payload} for kind, payload in port.saved],
                          "queued": [{"queue": q.queue, "priority": q.priority} for q in port.queued]},
                         ensure_ascii=False, indent=2, default=str))
        return 0 if result.ended != "error" else 1
    print(f"-- {flow.id} at {at.isoformat(timespec='minutes')} ({at.tzinfo}){'' if args.at else ', now'}")
    shown: set[str] = set()
    for node_id in result.visited:
        print(node_id)
        if node_id not in shown:
            shown.add(node_id)
            for line in played.get(node_id, []):
                print(f"    ▶ {line}")
    print(f"-- {result.ended}" + (f": {result.error}" if result.error else ""))
    return 0 if result.ended != "error" else 1


def now(zone: ZoneInfo) -> datetime:
    return datetime.now(zone)


def flow_time_zone(flow: Flow) -> str:
    """The time zone of the flow's first schedule node, else the schedule's default."""
    schedule = NODE_TYPES["schedule"]
    for node in flow.nodes.values():
        if isinstance(node, schedule):
            return str(node["timezone"])
    return str(schedule.params["timezone"].default)


def cmd_reload(args: argparse.Namespace) -> int:
    """The configuration file, the flows and the certificate, as SIGHUP (`ccctl config reload`)."""
    from controller.cli.config import cmd_reload as reload_everything

    return reload_everything(args)


def cmd_list(args: argparse.Namespace) -> int:
    from controller.cli.main import api, emit
    from controller.cli.table import render_table

    data = api(args).get("/api/flows")
    return emit(args, data, lambda d: render_table(
        ["flow", "language", "DIDs", "nodes"],
        [[f["id"], f["language"], " ".join(f["dids"]), f["nodes"]] for f in d["flows"]]))


def cmd_prompts(args: argparse.Namespace) -> int:
    """The text prompts of flows and the file name that replaces each with a studio recording."""
    from controller.media.prompts import prompt_key
    from controller.media.say import verbalize

    flows, errors = load_flows([Path(p) for p in args.paths])
    rows = []
    for flow in flows:
        for node_id, prompt in static_prompts(flow):
            text = verbalize(prompt.kind, prompt.value, prompt.language)
            rows.append({"flow": flow.id, "node": node_id, "text": text,
                         "file": f"ccc/recorded/{prompt_key(text, prompt.language)}.wav"})
    sounds = sorted({name for flow in flows for _, name in sound_prompts(flow)})
    if args.json:
        print(json.dumps({"prompts": rows, "sounds": sounds}, ensure_ascii=False, indent=2))
    else:
        for row in rows:
            print(f"{row['flow']}/{row['node']}: {row['file']}  {row['text']}")
    for error in errors:
        print(error, file=sys.stderr)
    return 1 if errors else 0


def register(sub: Any) -> None:
    flows = sub.add_parser("flows", help="validate, simulate and reload IVR flows")
    actions = flows.add_subparsers(dest="action", required=True)
    validate = actions.add_parser("validate", help="check flow files (file:line:column: message)")
    validate.add_argument("paths", nargs="+", metavar="PATH")
    validate.add_argument("--sounds-dir", action="append", help="check sound: prompts exist here (repeatable)")
    validate.add_argument("--json", action="store_true")
    validate.set_defaults(func=cmd_validate)
    sim = actions.add_parser("simulate", help="run a flow with no PBX and print the nodes visited")
    sim.add_argument("path", metavar="PATH", help="a flow file or a directory of flows")
    sim.add_argument("--caller", default="13800138000")
    sim.add_argument("--did", help="pick the flow serving this DID")
    sim.add_argument("--flow", help="pick the flow with this id")
    sim.add_argument("--dtmf", default="", help='keys, one token per question: "1 2#"; _ = time out')
    sim.add_argument("--at", help="the time of the call, e.g. 2026-11-23T20:00+08:00; without an offset, a local"
                     " time in the time zone of the flow's schedule (default Asia/Shanghai); default: now")
    sim.add_argument("--http-answers", help="YAML: URL pattern -> {status, json} (else real requests)")
    sim.add_argument("--queue-result", default="answered_then_ended",
                     choices=["answered_then_ended", "overflow", "timeout", "unavailable", "no_agents"])
    sim.add_argument("--overflow-target", help="with --queue-result overflow: voicemail, callback, node:ID")
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(func=cmd_simulate)
    reload = actions.add_parser("reload", help="re-read the configuration file and the flows, as SIGHUP "
                                               "(refused, nothing changed, if any is invalid)")
    reload.add_argument("--json", action="store_true")
    reload.set_defaults(func=cmd_reload)
    listing = actions.add_parser("list", help="the flows live in the controller")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    prompts = actions.add_parser("prompts", help="text prompts and the recorded files that can replace them")
    prompts.add_argument("paths", nargs="+", metavar="PATH")
    prompts.add_argument("--json", action="store_true")
    prompts.set_defaults(func=cmd_prompts)
