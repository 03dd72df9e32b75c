"""`ccctl agents add|edit|disable|enable|remove|list` and `ccctl queues add|edit|remove|list`: the live
configuration's agents and queues, through /api/config (README "Administration").

The options are the configuration file's fields (`--wrapup-seconds`, `--ring-timeout`, ...; a few short
names such as `--wrapup` and `--phone`), converted to the field's type; the controller checks them with
the configuration file's rules and messages.

    ccctl agents add 1006 --name 王芳 --number 1006 --phone 8006 --skill billing=7 --queue support=0
    ccctl queues edit support --wrapup 30
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from controller.cli.api import ApiError
from controller.cli.config import render_changes
from controller.cli.main import api, emit
from controller.cli.table import render_table
from controller.config import AcdAgentConfig, AcdQueueConfig


@dataclass(frozen=True)
class ItemKind:
    plural: str  # the /api/config/{plural} path and the command (`ccctl agents`)
    label: str  # "agent"
    cls: type  # the configuration file's dataclass
    key_field: str
    aliases: dict[str, list[str]] = field(default_factory=dict)  # field -> more option names
    columns: tuple[str, ...] = ()  # the list's columns (fields)

    @property
    def one(self) -> str:
        """"an agent", "a queue"."""
        return ("an " if self.label[0] in "aeiou" else "a ") + self.label


AGENTS = ItemKind("agents", "agent", AcdAgentConfig, "id", {"endpoint": ["--phone"]},
                  ("id", "name", "number", "endpoint", "skills", "queues", "enabled"))
QUEUES = ItemKind("queues", "queue", AcdQueueConfig, "name",
                  {"wrapup_seconds": ["--wrapup"], "service_level_seconds": ["--service-level"]},
                  ("name", "title", "strategy", "skills", "wrapup_seconds", "ring_timeout", "max_wait", "overflow",
                   "recording"))


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "yes", "on", "1"):
        return True
    if text.lower() in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _pair(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    try:
        return key.strip(), int(value) if sep else 0
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER (e.g. billing=7), got {text!r}") from None


#: `--overflow none`: the field set to null (argparse's None means "not given").
CLEAR = "\0none"


def _optional(text: str) -> str:
    return CLEAR if text.lower() in ("none", "") else text


def _singular(name: str) -> str:
    return name[:-1] if name.endswith("s") else name


def _editable_fields(kind: ItemKind) -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(kind.cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(kind.cls) if f.name not in (kind.key_field, "enabled")]


def _add_field_options(parser: argparse.ArgumentParser, kind: ItemKind, *, editing: bool) -> None:
    for name, hint in _editable_fields(kind):
        origin, arguments = typing.get_origin(hint), typing.get_args(hint)
        if origin is dict:  # skills, queues: --skill billing=7 (repeated); --remove-skill billing
            option = f"--{_singular(name)}"
            meaning = "its penalty, 0 first" if name == "queues" else "the level, 1-10"
            parser.add_argument(option, dest=f"set_{name}", action="append", type=_pair, metavar="NAME=N",
                                help=f"a {_singular(name)} and {meaning} (repeat the option for more)")
            if editing:
                parser.add_argument(f"--remove-{_singular(name)}", dest=f"remove_{name}", action="append",
                                    metavar="NAME", help=f"remove a {_singular(name)}")
            continue
        options = [f"--{name.replace('_', '-')}", *kind.aliases.get(name, [])]
        if origin is typing.Literal:
            parser.add_argument(*options, dest=name, choices=[str(a) for a in arguments])
        elif origin in (typing.Union, types.UnionType):
            parser.add_argument(*options, dest=name, type=_optional, metavar="TEXT|none")
        elif hint is bool:
            parser.add_argument(*options, dest=name, type=_boolean, metavar="true|false")
        else:
            parser.add_argument(*options, dest=name, type=hint)


def _body_from_args(kind: ItemKind, args: argparse.Namespace, body: dict[str, Any]) -> dict[str, Any]:
    """`body` (the item as it is, or empty for a new one) with the options given applied."""
    body = dict(body)
    for name, hint in _editable_fields(kind):
        if typing.get_origin(hint) is dict:
            mapping = dict(body.get(name) or {})
            mapping.update(dict(getattr(args, f"set_{name}") or []))
            for removed in getattr(args, f"remove_{name}", None) or []:
                if removed not in mapping:
                    raise SystemExit(f"ccctl: {kind.label} {args.key} has no {_singular(name)} {removed!r}")
                del mapping[removed]
            if mapping or name in body:
                body[name] = mapping
        elif getattr(args, name) is not None:
            value = getattr(args, name)
            body[name] = None if value == CLEAR else value
    return body


def _path(kind: ItemKind, key: str) -> str:
    return f"/api/config/{kind.plural}/{urllib.parse.quote(key, safe='')}"


def _current(kind: ItemKind, args: argparse.Namespace) -> dict[str, Any]:
    try:
        return dict(api(args).get(_path(kind, args.key))["value"])
    except ApiError as exc:
        if exc.status == 404:
            raise SystemExit(f"ccctl: no {kind.label} {args.key!r} (`ccctl {kind.plural} list`)") from None
        raise


def _put(kind: ItemKind, args: argparse.Namespace, body: dict[str, Any]) -> int:
    result = api(args).request("PUT", _path(kind, args.key), body)
    return emit(args, result, lambda r: render_changes(r["changes"]) if r["changes"]
                else f"no change: {kind.label} {args.key} is already so")


def cmd_add(args: argparse.Namespace) -> int:
    kind: ItemKind = args.kind
    try:
        api(args).get(_path(kind, args.key))
    except ApiError as exc:
        if exc.status != 404:
            raise
    else:
        raise SystemExit(f"ccctl: {kind.label} {args.key} exists already (change it with `ccctl {kind.plural} edit`)")
    body = _body_from_args(kind, args, {kind.key_field: args.key})
    if getattr(args, "disabled", False):
        body["enabled"] = False
    return _put(kind, args, body)


def cmd_edit(args: argparse.Namespace) -> int:
    kind: ItemKind = args.kind
    return _put(kind, args, _body_from_args(kind, args, _current(kind, args)))


def cmd_enable(args: argparse.Namespace) -> int:
    kind: ItemKind = args.kind
    return _put(kind, args, {**_current(kind, args), "enabled": args.action == "enable"})


def cmd_remove(args: argparse.Namespace) -> int:
    kind: ItemKind = args.kind
    result = api(args).request("DELETE", _path(kind, args.key))
    return emit(args, result, lambda r: render_changes(r["changes"]))


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{key}={item}" for key, item in value.items())
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return "" if value is None else str(value)


def cmd_list(args: argparse.Namespace) -> int:
    kind: ItemKind = args.kind
    data = api(args).get(f"/api/config/{kind.plural}")

    def text(d: dict[str, Any]) -> str:
        if not d["items"]:
            return f"no {kind.plural}"
        rows = [[_cell(item["value"].get(column, True if column == "enabled" else None)) for column in kind.columns]
                for item in d["items"]]
        return render_table([column.removesuffix("_seconds") for column in kind.columns], rows)

    return emit(args, data, text)


def add_item_actions(command: argparse.ArgumentParser, kind: ItemKind) -> None:
    """`ccctl agents|queues ACTION`; without an action the command keeps its live view (states, waiting)."""
    actions = command.add_subparsers(dest="action", metavar="ACTION")

    def action(name: str, func: Any, help_text: str, *, keyed: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        if keyed:
            parser.add_argument("key", metavar=kind.key_field.upper())
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.set_defaults(func=func, kind=kind)
        return parser

    add = action("add", cmd_add, f"add {kind.one} (live: no restart)")
    _add_field_options(add, kind, editing=False)
    edit = action("edit", cmd_edit, f"change {kind.one}'s fields (the others stay)")
    _add_field_options(edit, kind, editing=True)
    if any(f.name == "enabled" for f in dataclasses.fields(kind.cls)):
        add.add_argument("--disabled", action="store_true", help="added disabled: gets no calls, cannot log in")
        action("disable", cmd_enable, f"disable {kind.one}: finishes a call in progress, then gets no calls")
        action("enable", cmd_enable, f"enable {kind.one} again")
    action("remove", cmd_remove, f"remove {kind.one}")
    action("list", cmd_list, f"the {kind.plural} as configured", keyed=False)
