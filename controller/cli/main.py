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


def filter_query(args: argparse.Namespace, keys: tuple[str, ...]) -> dict[str, Any]:
    """A list command's query: --limit, the given filters when set, --from/--to (`start`/`end`)."""
    query: dict[str, Any] = {"limit": args.limit}
    for key in keys:
        if getattr(args, key):
            query[key] = getattr(args, key)
    if args.start is not None:
        query["from"] = args.start
    if args.end is not None:
        query["to"] = args.end
    return query


def api(args: argparse.Namespace) -> ControllerApi:
    return ControllerApi(args.url, args.token)


def cmd_status(args: argparse.Namespace) -> int:
    client = api(args)
    status = client.get("/api/status")
    try:
        status["trunks"] = client.get("/api/asterisk/trunks")["pjsip"]
    except ApiError as exc:
        status["trunks"] = None
        status["trunks_error"] = exc.message

    def text(st: dict[str, Any]) -> str:
        h, ast = st["controller"], st["asterisk"]
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h["started_at"]))
        states = ", ".join(f"{k} {v}" for k, v in sorted(h.get("calls_by_state", {}).items())) or "none"
        agents = ", ".join(f"{k} {v}" for k, v in st.get("agents_by_state", {}).items()) or "none configured"
        if st.get("trunks") is None:
            trunks = f"UNKNOWN ({st.get('trunks_error')})"
        else:
            trunks = ", ".join(f"{t['name']} {t['registration']}/{t['qualify']}" for t in st["trunks"]) or "none"
        queues = ", ".join(f"{name} {q['waiting']} waiting (longest {q['longest_wait']:.0f} s)"
                           for name, q in st.get("queues", {}).items()) or "none configured"
        if ast.get("reachable"):
            channels = ast.get("channels") or {}
            asterisk = (f"reachable, {ast.get('version')}; {channels.get('active_channels', '?')} channels,"
                        f" {channels.get('active_calls', '?')} calls")
        else:
            asterisk = f"NOT REACHABLE ({ast.get('error')})"
        flows = h.get("flows") or {}
        flow_line = f"{flows.get('live', '?')} live"
        if flows.get("errors"):
            flow_line += (f"; {'NONE LIVE, calls get the fallback route; ' if not flows.get('live') else ''}"
                          f"{flows['errors']} errors in the last (re)load, e.g. {flows.get('first_error')}")
        return "\n".join([
            f"controller  {h['status']}  version {h['version']}  up since {since} ({h['uptime_seconds']:.0f} s)",
            f"ARI stream  {'connected' if h['ari_connected'] else 'NOT CONNECTED'}",
            f"asterisk    {asterisk}",
            f"calls       {h['active_calls']} active: {states}",
            f"agents      {agents}",
            f"trunks      {trunks}",
            f"queues      {queues}",
            f"IVR flows   {flow_line}",
            f"store       {store_line(h.get('store'))}",
        ])

    emit(args, status, text)
    return 0 if status["controller"]["ari_connected"] and status["asterisk"].get("reachable") else 1


def store_line(store: dict[str, Any] | None) -> str:
    """`ok`, or DEGRADED with since when, why and what waits (the controller still serves calls)."""
    if not store:
        return "?"
    engine = f"{store['engine']}, " if store.get("engine") else ""
    if store.get("status") == "ok":
        return f"ok ({engine}{store.get('pending', 0)} statements pending)"
    since = store.get("failing_since")
    when = f" since {time.strftime('%H:%M:%S', time.localtime(since))}" if since else ""
    on = f" ({store['engine']})" if store.get("engine") else ""
    return (f"DEGRADED{when}{on}: {store.get('last_error')}; {store.get('pending', 0)} statements kept and"
            " retried (calls are still served)")


def cmd_tail(args: argparse.Namespace) -> int:
    """Print the live event stream (one JSON object per line with --json)."""
    import asyncio

    import aiohttp

    client = api(args)
    query = {"token": client.token}
    for key in ("types", "queue", "agent", "since"):
        value = getattr(args, key)
        if value is not None:
            query[key] = str(value)
    url = client.url.replace("http", "ws", 1) + "/ws"

    async def tail() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                ws = await session.ws_connect(url, params=query, heartbeat=20)
            except aiohttp.WSServerHandshakeError as exc:
                raise ApiError(exc.status, "the controller refused the event stream (token?)") from exc
            except aiohttp.ClientError as exc:
                raise ApiUnavailable(f"cannot reach the controller at {client.url}: {exc}") from exc
            shown = 0
            async for message in ws:
                event = json.loads(message.data)
                if event.get("type") == "hello":
                    continue
                if args.json:
                    print(json.dumps(event, ensure_ascii=False), flush=True)
                else:
                    stamp = time.strftime("%H:%M:%S", time.localtime(event["at"]))
                    who = " ".join(f"{k}={event[k]}" for k in ("call_id", "agent_id", "queue") if event.get(k))
                    data = " ".join(f"{k}={v}" for k, v in event["data"].items())
                    print(f"{stamp} #{event['seq']} {event['type']:<22} {who} {data}", flush=True)
                shown += 1
                if args.count and shown >= args.count:
                    break
            return 0

    try:
        return asyncio.run(tail())
    except KeyboardInterrupt:
        return 0


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
    tail = add("tail", cmd_tail, "follow the live event stream")
    tail.add_argument("--types", help="event types, e.g. call.*,agent.state_changed")
    tail.add_argument("--queue")
    tail.add_argument("--agent")
    tail.add_argument("--since", type=int, help="replay from this sequence number first")
    tail.add_argument("--count", type=int, help="stop after this many events")
    for register in _plugins():
        register(sub)
    return parser


def _plugins() -> list[Callable[[Any], None]]:
    """Sub-command groups defined in their own modules (flows, agents, reports, …)."""
    registers = []
    for module_name in ("controller.cli.flows", "controller.cli.doctor", "controller.cli.deploy",
                        "controller.cli.ops", "controller.cli.acd", "controller.cli.reports",
                        "controller.cli.recordings", "controller.cli.prompts", "controller.cli.webhooks",
                        "controller.cli.access", "controller.cli.config", "controller.cli.simulate",
                        "controller.cli.wfm", "controller.cli.tasks", "controller.cli.campaigns"):
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
        if exc.problems:  # one line each, as the configuration file's checks give them
            print(f"ccctl: refused (HTTP {exc.status}), nothing was changed:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
        else:
            print(f"ccctl: {exc.message} (HTTP {exc.status})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
