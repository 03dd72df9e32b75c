"""Agent and queue commands: `ccctl agent login|ready|pause|end-acw|logout ID`, `ccctl agents`, `ccctl queues`
(and their configuration: controller/cli/managed.py)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from controller.cli.main import api, emit
from controller.cli.managed import AGENTS, QUEUES, add_item_actions
from controller.cli.table import render_table


def _since(epoch: float | None) -> str:
    if not epoch:
        return ""
    seconds = max(0, int(time.time() - epoch))
    return f"{seconds // 60}:{seconds % 60:02d}"


def agent_line(agent: dict[str, Any]) -> str:
    reason = f" ({agent['reason']})" if agent.get("reason") else ""
    return f"agent {agent['id']} {agent.get('name', '')}: {agent['state']}{reason} on {agent.get('endpoint') or '-'}"


def cmd_agent(args: argparse.Namespace) -> int:
    path = f"/api/agents/{args.agent_id}"
    if args.action == "login":
        body: dict[str, Any] = {"ready": not args.not_ready}
        if args.phone:
            body["phone"] = args.phone
        agent = api(args).post(path + "/login", body)
    elif args.action == "pause":
        agent = api(args).post(path + "/not_ready", {"reason": args.reason})
    else:
        agent = api(args).post(f"{path}/{args.action.replace('-', '_')}")
    return emit(args, agent, agent_line)


def cmd_agents(args: argparse.Namespace) -> int:
    data = api(args).get("/api/agents")

    def text(d: dict[str, Any]) -> str:
        rows = [[a["id"], a.get("name", ""), a.get("number", ""), a["state"], a.get("reason") or "",
                 _since(a.get("since")), a.get("endpoint") or "", a.get("calls_answered", 0)] for a in d["agents"]]
        return render_table(["agent", "name", "工号", "state", "reason", "for", "phone", "calls"], rows)

    return emit(args, data, text)


def cmd_queues(args: argparse.Namespace) -> int:
    data = api(args).get("/api/queues")

    def text(d: dict[str, Any]) -> str:
        rows = []
        for q in d["queues"]:
            level = q.get("service_level")
            rows.append([q["name"], q.get("title", ""), q["waiting"], f"{q.get('longest_wait') or 0:.0f}s",
                         q.get("agents_ready", 0), q.get("agents_logged_in", 0), q.get("answered", 0),
                         q.get("abandoned", 0), "-" if level is None else f"{100 * level:.0f}%"])
        return render_table(["queue", "title", "waiting", "longest", "ready", "logged in", "answered",
                             "abandoned", "service level"], rows)

    return emit(args, data, text)


def register(sub: Any) -> None:
    agent = sub.add_parser("agent", help="log agents in and out, set them ready or not ready")
    actions = agent.add_subparsers(dest="action", required=True)
    for name, help_text in (("login", "log in (ready unless --not-ready)"), ("ready", "ready for calls (示闲)"),
                            ("pause", "not ready (示忙) with a reason"), ("end-acw", "end after-call work now"),
                            ("logout", "log out")):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("agent_id", metavar="ID")
        action.add_argument("--json", action="store_true")
        action.set_defaults(func=cmd_agent)
        if name == "login":
            action.add_argument("--phone", help="the phone (endpoint) to ring, if not the agent's usual one")
            action.add_argument("--not-ready", action="store_true", help="log in not ready")
        if name == "pause":
            action.add_argument("--reason", required=True, help="meal, meeting, training, restroom, helping, …")
    for name, func, help_text, kind in (
            ("agents", cmd_agents, "agents and their states; add|edit|disable|enable|remove|list: configure them",
             AGENTS),
            ("queues", cmd_queues, "queues: waiting, longest wait, agents, service level; add|edit|remove|list: "
                                   "configure them", QUEUES)):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--json", action="store_true")
        command.set_defaults(func=func)
        add_item_actions(command, kind)
