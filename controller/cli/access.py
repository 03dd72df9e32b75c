"""`ccctl audit`, `ccctl tokens`, `ccctl users`: the audit log (who changed what, when, before and after,
newest first), API tokens (a new one is printed once), and users (passwords read from the terminal or
stdin, never from the command line, where they would stay in the shell's history and in `ps`)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from controller.cli.main import api, emit, filter_query
from controller.cli.reports import parse_moment
from controller.cli.table import render_table


def _change(entry: dict[str, Any]) -> str:
    """Before → after, short enough for a table row."""
    def short(value: Any) -> str:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        return text if len(text) <= 60 else text[:57] + "..."

    if entry["before"] is None and entry["after"] is None:
        return ""
    if entry["before"] is None:
        return short(entry["after"])
    return f"{short(entry['before'])} -> {short(entry['after'])}"


def cmd_audit(args: argparse.Namespace) -> int:
    query = filter_query(args, ("actor", "action", "target"))
    data = api(args).get("/api/audit", query)

    def text(d: dict[str, Any]) -> str:
        rows = [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"])), e["actor"], e["action"],
                 e["target"] or "", "" if e["status"] is None else e["status"], _change(e)] for e in d["entries"]]
        if not rows:
            return "no audit entries match"
        return render_table(["when", "who", "what", "target", "status", "change"], rows)

    return emit(args, data, text)


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else ""


def cmd_tokens_list(args: argparse.Namespace) -> int:
    def text(d: dict[str, Any]) -> str:
        rows = [[t["id"], t["name"], t["role"], t["agent_id"] or "", _when(t["created_at"]), t["created_by"],
                 _when(t["expires_at"]) or "never", _when(t["revoked_at"])] for t in d["tokens"]]
        return render_table(["id", "name", "role", "agent", "created", "by", "expires", "revoked"], rows)

    return emit(args, api(args).get("/api/tokens"), text)


def cmd_tokens_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"name": args.name, "role": args.role}
    if args.agent_id:
        body["agent_id"] = args.agent_id
    if args.expires_days:
        body["expires_in_seconds"] = args.expires_days * 86400
    created = api(args).post("/api/tokens", body)
    return emit(args, created, lambda t: f"token {t['id']} ({t['name']}, {t['role']}), shown only now:\n{t['token']}")


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    revoked = api(args).request("DELETE", f"/api/tokens/{args.token_id}")
    return emit(args, revoked, lambda t: f"token {t['id']} ({t['name']}) revoked; "
                                         f"{t['websockets_closed']} open WebSocket(s) closed")


def _password(prompt: str) -> str:
    """From the terminal (asked twice), or the first line of stdin when it is not a terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(prompt)
    if getpass.getpass("again: ") != first:
        raise SystemExit("ccctl: the two passwords differ")
    return first


def cmd_users_list(args: argparse.Namespace) -> int:
    def text(d: dict[str, Any]) -> str:
        rows = [[u["name"], u["role"], u["agent_id"] or "", "LOCKED" if u["locked"] else ""] for u in d["users"]]
        return render_table(["name", "role", "agent", "locked"], rows)

    return emit(args, api(args).get("/api/users"), text)


def cmd_users_add(args: argparse.Namespace) -> int:
    body = {"name": args.name, "role": args.role, "password": _password(f"password for {args.name}: ")}
    if args.agent_id:
        body["agent_id"] = args.agent_id
    user = api(args).post("/api/users", body)
    return emit(args, user, lambda u: f"user {u['name']} ({u['role']}) created")


def cmd_users_password(args: argparse.Namespace) -> int:
    password = _password(f"new password for {args.name}: ")
    user = api(args).post(f"/api/users/{args.name}/password", {"password": password})
    return emit(args, user, lambda u: f"password of {u['name']} reset; their sessions ended")


def cmd_users_delete(args: argparse.Namespace) -> int:
    deleted = api(args).request("DELETE", f"/api/users/{args.name}")
    return emit(args, deleted, lambda d: f"user {d['deleted']} deleted")


def _group(sub: Any, name: str, help_text: str) -> Any:
    return sub.add_parser(name, help=help_text).add_subparsers(dest="action", required=True)


def _command(actions: Any, name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
    command: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
    command.add_argument("--json", action="store_true", help="machine-readable output")
    command.set_defaults(func=func)
    return command


def register(sub: Any) -> None:
    tokens = _group(sub, "tokens", "API tokens for integrations (admin)")
    _command(tokens, "list", cmd_tokens_list, "tokens (never their values)")
    create = _command(tokens, "create", cmd_tokens_create, "a new token, printed once")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=["agent", "supervisor", "admin", "integration"])
    create.add_argument("--agent-id", help="for role agent: the agent it acts as")
    create.add_argument("--expires-days", type=float, help="it fails after this many days (default: never)")
    revoke = _command(tokens, "revoke", cmd_tokens_revoke, "revoke a token: it fails at once, its /ws are closed")
    revoke.add_argument("token_id", type=int, metavar="ID")
    users = _group(sub, "users", "people who log in with a name and password")
    _command(users, "list", cmd_users_list, "users and whether they are locked")
    add = _command(users, "add", cmd_users_add, "a new user (the password is asked for)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["agent", "supervisor", "admin"])
    add.add_argument("--agent-id", help="for role agent: the agent this user is")
    _command(users, "password", cmd_users_password, "reset a user's password (admin; unlocks)").add_argument("name")
    _command(users, "delete", cmd_users_delete, "delete a user; their sessions end").add_argument("name")
    audit = sub.add_parser("audit", help="the audit log: who changed what, when (newest first)")
    audit.add_argument("--actor", help="user:NAME or token:NAME")
    audit.add_argument("--action", help="an action or its prefix, e.g. login or token.")
    audit.add_argument("--target", help="e.g. user:1001, token:3, /api/flows/reload")
    audit.add_argument("--since", "--from", dest="start", type=parse_moment, help="today, YYYY-MM-DD [HH:MM], …")
    audit.add_argument("--until", "--to", dest="end", type=parse_moment)
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.set_defaults(func=cmd_audit)
