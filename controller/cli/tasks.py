"""`ccctl tasks list|add|close`: follow-up tasks (工单) through the controller's API."""

from __future__ import annotations

import argparse
import time
from typing import Any

from controller.cli.main import api, emit
from controller.cli.table import render_table


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else ""


def _task_line(t: dict[str, Any]) -> str:
    return f"task {t['id']}  due {_when(t['due_at'])}  for {t['agent_id'] or 'queue ' + str(t['queue'])}  {t['status']}"


def cmd_list(args: argparse.Namespace) -> int:
    query = {"status": args.status} if args.status else {}
    data = api(args).get("/api/tasks", query)

    def text(d: dict[str, Any]) -> str:
        rows = [[t["id"][:12], _when(t["due_at"]), "OVERDUE" if t.get("overdue") else t["status"],
                 t["agent_id"] or f"queue:{t['queue']}", t["title"][:40], (t["call_id"] or "")[:12]]
                for t in d["tasks"]]
        return render_table(["id", "due", "status", "for", "what", "call"], rows) if rows else "no tasks"

    return emit(args, data, text)


def cmd_add(args: argparse.Namespace) -> int:
    body = {key: value for key, value in (("title", args.title), ("call_id", args.call_id),
                                          ("agent_id", args.agent), ("queue", args.queue)) if value}
    return emit(args, api(args).post("/api/tasks", body), _task_line)


def cmd_close(args: argparse.Namespace) -> int:
    tasks = api(args).get("/api/tasks", {"status": "open", "limit": 1000})["tasks"]
    matches = [t["id"] for t in tasks if t["id"].startswith(args.task_id)]
    task_id = matches[0] if len(matches) == 1 else args.task_id  # a unique prefix of an open task's id
    return emit(args, api(args).post(f"/api/tasks/{task_id}/close", {"note": args.note}), _task_line)


def register(sub: Any) -> None:
    tasks = sub.add_parser("tasks", help="follow-up tasks (工单): list, add, close with a note")
    actions = tasks.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="tasks by due time (an agent's token: theirs and their queues')")
    listing.add_argument("--status", choices=["open", "closed"])
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    add = actions.add_parser("add", help="a task due one working day later (Chinese calendar)")
    add.add_argument("title")
    add.add_argument("--call-id")
    add.add_argument("--agent", help="for this agent (default: the agent of the token)")
    add.add_argument("--queue", help="for this queue")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=cmd_add)
    close = actions.add_parser("close", help="close a task with a note")
    close.add_argument("task_id", metavar="ID", help="the task's id (or a unique prefix of an open one)")
    close.add_argument("--note", required=True)
    close.add_argument("--json", action="store_true")
    close.set_defaults(func=cmd_close)
