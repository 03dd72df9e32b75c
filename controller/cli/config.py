"""`ccctl config export|apply|reload`: configuration as code (README "Configuration as code").

`export` writes the managed document (agents, queues, DIDs, webhooks, standards, ...) as it is live, a valid
fragment of controller.yaml (secrets as "***"); `apply FILE [--dry-run]` shows the difference between a file
and what is live and applies it in one transaction; `reload` reads the controller's own configuration file
again (what SIGHUP does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from controller.cli.main import api, emit

OPS = {"add": "+", "change": "~", "remove": "-"}


def _text(value: Any) -> str:
    """A value as it reads in YAML's flow style, on one line (Chinese as it is)."""
    if isinstance(value, str) and value and value.strip() == value and value[0] not in "[{'\"&*!|>%@`#" \
            and ": " not in value and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def field_changes(before: Any, after: Any, path: str = "") -> list[str]:
    """`field: old -> new` lines for two versions of one item, nested mappings field by field."""
    if isinstance(before, dict) and isinstance(after, dict):
        lines = []
        for key in [*before, *(k for k in after if k not in before)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in after:
                lines.append(f"{where}: {_text(before[key])} -> (removed)")
            elif key not in before:
                lines.append(f"{where}: (none) -> {_text(after[key])}")
            elif before[key] != after[key]:
                lines += field_changes(before[key], after[key], where)
        return lines
    return [f"{path or 'value'}: {_text(before)} -> {_text(after)}"]


def _fields(value: Any, item_key: str) -> list[str]:
    """An added item's fields, but its key (already in the `+` line)."""
    if isinstance(value, dict):
        return [f"{key}: {_text(item)}" for key, item in value.items()
                if not (key in ("id", "name") and item == item_key)]
    return [] if value is None or value == item_key else [_text(value)]


def render_changes(changes: list[dict[str, Any]]) -> str:
    """The difference as a readable list: `+ kind key` with its fields, `~ kind key` with each changed field
    (old -> new), `- kind key`."""
    lines = []
    for change in changes:
        lines.append(f"{OPS[change['op']]} {change['kind']} {change['key']}")
        if change["op"] == "add":
            lines += [f"    {line}" for line in _fields(change["after"], change["key"])]
        elif change["op"] == "change":
            lines += [f"    {line}" for line in field_changes(change["before"], change["after"])]
    return "\n".join(lines)


def summary(changes: list[dict[str, Any]]) -> str:
    counts = {op: sum(1 for c in changes if c["op"] == op) for op in OPS}
    return f"{counts['add']} added, {counts['change']} changed, {counts['remove']} removed"


def cmd_export(args: argparse.Namespace) -> int:
    client = api(args)
    document = client.get("/api/config")
    header = (f"# The managed configuration of {client.url}, exported {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.\n"
              "# A fragment of controller.yaml: change it and `ccctl config apply FILE` (secrets show as \"***\":\n"
              "# left so, the current secret is kept).\n")
    text = header + yaml.safe_dump(document, allow_unicode=True, sort_keys=False, default_flow_style=False, width=100)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(text.encode("utf-8"))  # UTF-8 whatever the terminal's locale says
        sys.stdout.flush()
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"ccctl: {path}: cannot read: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 1
    result = api(args).request("POST", "/api/config/apply", {"yaml": text, "source": str(path)},
                               query={"dry_run": "true" if args.dry_run else "false"})

    def report(r: dict[str, Any]) -> str:
        lines = [f"note: {note}" for note in r.get("notes", [])]
        changes = r["changes"]
        if not changes:
            return "\n".join([*lines, "no change: the controller already has this configuration"])
        lines.append(render_changes(changes))
        if args.dry_run:
            lines.append(f"dry run: {summary(changes)}; nothing was changed (apply without --dry-run)")
        else:
            lines.append(f"applied: {summary(changes)}")
        return "\n".join(lines)

    return emit(args, result, report)


def render_reload(result: dict[str, Any]) -> str:
    """What a reload applied, what needs a restart, what the database manages."""
    configuration = result.get("configuration") or {}
    lines = [f"applied: {', '.join(configuration.get('applied') or []) or 'no setting changed'}"]
    if configuration.get("restart_required"):
        lines.append(f"needs a restart: {', '.join(configuration['restart_required'])}")
    if configuration.get("managed_in_database"):
        lines.append(f"ignored, managed in the database (`ccctl config apply FILE` applies them): "
                     f"{', '.join(configuration['managed_in_database'])}")
    lines.append(f"flows: {', '.join(result.get('flows') or []) or 'none'}")
    return "\n".join(lines)


def cmd_reload(args: argparse.Namespace) -> int:
    from controller.cli.api import ApiError

    try:
        result = api(args).post("/api/config/reload")
    except ApiError as exc:
        if exc.status != 422:
            raise
        print("reload refused, nothing was changed:", file=sys.stderr)
        for line in exc.message.splitlines():
            print(f"  {line}", file=sys.stderr)
        return 1
    return emit(args, result, render_reload)


def register(sub: Any) -> None:
    config = sub.add_parser("config", help="configuration as code: export, apply (with --dry-run), reload")
    actions = config.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="the managed configuration as YAML (a fragment of controller.yaml)")
    export.add_argument("--output", "-o", metavar="FILE", help="write it to FILE (UTF-8) instead of stdout")
    export.set_defaults(func=cmd_export)
    apply = actions.add_parser("apply", help="show the difference a file makes and apply it in one transaction")
    apply.add_argument("file", metavar="FILE", help="a controller.yaml or an export (other sections are ignored)")
    apply.add_argument("--dry-run", action="store_true", help="only show the difference; change nothing")
    apply.add_argument("--json", action="store_true", help="machine-readable output")
    apply.set_defaults(func=cmd_apply)
    reload = actions.add_parser("reload", help="re-read the controller's configuration file (what SIGHUP does)")
    reload.add_argument("--json", action="store_true", help="machine-readable output")
    reload.set_defaults(func=cmd_reload)
