"""Load YAML into typed, frozen dataclasses, with `file:line:column: message` errors.

Used for the controller's configuration; any section type is a dataclass whose fields say the
accepted types (str, int, float, bool, Literal, lists, dicts, optional, nested dataclasses).
String values may use `${VAR}` or `${VAR:-default}` to read the environment, so secrets can stay
out of files.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin

import yaml

T = TypeVar("T")

#: `field(metadata=INTERNAL)`: set by the program, not read from the file (not a key the file may use).
INTERNAL = {"internal": True}

_ENV_START = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-)?")


class SettingsError(Exception):
    """One or more problems, each as `file:line:column: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _where(source: str, node: yaml.Node) -> str:
    mark = node.start_mark
    return f"{source}:{mark.line + 1}:{mark.column + 1}"


def expand_env(value: str) -> str:
    """`${VAR}` and `${VAR:-default}`; a default may itself use them: `${A:-${B:-/x}/y}`. Values read
    from the environment are taken as they are (never expanded again)."""
    text, _ = _expand(value, 0, nested=False)
    return text


def _expand(value: str, position: int, *, nested: bool) -> tuple[str, int]:
    """Expand from `position` to the end (or, when `nested`, to the `}` closing a default); returns the
    text and where it stopped."""
    out: list[str] = []
    while position < len(value):
        if nested and value[position] == "}":
            return "".join(out), position
        match = _ENV_START.match(value, position)
        if match is None:
            out.append(value[position])
            position += 1
            continue
        name, position = match.group(1), match.end()
        if match.group(2):  # ":-": a default up to the matching "}"
            default, position = _expand(value, position, nested=True)
        else:
            default = ""
        if position >= len(value) or value[position] != "}":  # no closing brace: keep the text as written
            out.append(match.group(0) + default)
            continue
        position += 1
        out.append(os.environ.get(name, default))
    return "".join(out), position


class _Loader:
    """`source`: the file the nodes come from (messages start with `file:line:column`); None for data that
    came from elsewhere (an API request: messages are `field.path: message`, and `${VAR}` is not expanded,
    so a request cannot read the controller's environment)."""

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, node: yaml.Node, message: str) -> None:
        self.problems.append(message if self.source is None else f"{_where(self.source, node)}: {message}")

    def scalar(self, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            return None
        if "${" in node.value and self.source is not None:
            expanded = expand_env(node.value)
            # An unquoted `${PORT:-8080}` becomes the integer 8080; a quoted one stays a string.
            return yaml.safe_load(expanded) if node.style is None and expanded else expanded
        return yaml.safe_load(yaml.serialize(node))

    def convert(self, node: yaml.Node, hint: Any, what: str) -> Any:
        origin = get_origin(hint)
        if origin in (Union, types.UnionType):
            options = [arg for arg in get_args(hint) if arg is not type(None)]
            is_null = isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")
            if is_null and type(None) in get_args(hint):
                return None
            if len(options) == 1:
                return self.convert(node, options[0], what)
            for option in options:  # first that fits without problems
                trial = _Loader(self.source)
                value = trial.convert(node, option, what)
                if not trial.problems:
                    return value
            self.fail(node, f"{what}: expected {' or '.join(_type_name(o) for o in options)}")
            return None
        if origin is typing.Literal:
            value = self.scalar(node)
            allowed = get_args(hint)
            if value not in allowed:
                self.fail(node, f"{what}: expected one of {', '.join(map(str, allowed))}, got {value!r}")
            return value
        if origin in (list, tuple):
            if not isinstance(node, yaml.SequenceNode):
                self.fail(node, f"{what}: expected a list")
                return []
            (item_hint, *_) = get_args(hint) or (Any,)
            items = [self.convert(item, item_hint, f"{what}[{i}]") for i, item in enumerate(node.value)]
            return tuple(items) if origin is tuple else items
        if origin is dict:
            if not isinstance(node, yaml.MappingNode):
                self.fail(node, f"{what}: expected a mapping")
                return {}
            key_hint, value_hint = get_args(hint) or (str, Any)
            result = {}
            for key_node, value_node in node.value:
                key = self.convert(key_node, key_hint, what)
                result[key] = self.convert(value_node, value_hint, f"{what}.{key}")
            return result
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self.dataclass(node, hint, what)
        if hint is Any:
            return yaml.safe_load(yaml.serialize(node))
        value = self.scalar(node)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if hint is str and isinstance(value, int | float) and not isinstance(value, bool) and self.source is not None:
            return str(value)  # DIDs and numbers written without quotes (in a file; JSON says what it means)
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            got = repr(value) if self.source is None and isinstance(node, yaml.ScalarNode) else _describe(node)
            self.fail(node, f"{what}: expected {_type_name(hint)}, got {got}")
            return None
        return value

    def dataclass(self, node: yaml.Node, cls: type[T], what: str) -> T:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what}: expected a mapping")
            return cls()
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                  if not f.metadata.get("internal")}
        values: dict[str, Any] = {}
        value_nodes: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            name = str(key).replace("-", "_")
            if name not in fields:
                known = ", ".join(sorted(fields))
                self.fail(key_node, f"{what + ': ' if what else ''}unknown key {key!r} (expected one of: {known})")
                continue
            value_nodes[name] = value_node
            values[name] = self.convert(value_node, hints[name], f"{what}.{key}" if what else str(key))
        for name, field in fields.items():
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if required and name not in values:
                self.fail(node, f"{what or 'configuration'}: missing required key {name!r}")
        if self.problems:
            try:
                return cls(**values)
            except (TypeError, ValueError):
                return typing.cast(T, None)
        try:
            return cls(**values)
        except ValueError as exc:  # the dataclass's own check (`__post_init__`): "name: problem" points at name
            named = value_nodes.get(str(exc).split(":", 1)[0])
            self.fail(named or node, f"{what or 'configuration'}: {exc}")
            return typing.cast(T, None)


def require_positive(settings: object, *names: str) -> None:
    """For a settings dataclass's `__post_init__`: these numbers must be above 0 (a timeout of 0 would
    mean no timeout at all)."""
    for name in names:
        value = getattr(settings, name)
        if not value > 0:
            raise ValueError(f"{name}: expected a number above 0, got {value!r}")


def _type_name(hint: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value)


def _compose(text: str, source: str, if_empty: str) -> yaml.Node:
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise SettingsError([f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    if node is None:
        raise SettingsError([f"{source}:1:1: {if_empty}"])
    return node


def load_yaml_as(cls: type[T], text: str, source: str) -> T:
    """Parse `text` (from file `source`) into an instance of dataclass `cls`, or raise SettingsError."""
    node = _compose(text, source, "the file is empty")
    loader = _Loader(source)
    result = loader.dataclass(node, cls, "")
    if loader.problems:
        raise SettingsError(loader.problems)
    return result


def load_yaml_sections(cls: type[T], text: str, source: str,
                       sections: typing.Collection[str]) -> tuple[T, list[str], list[str]]:
    """Only the top-level keys `sections` of the YAML `text` (e.g. the managed sections of a whole
    controller.yaml), loaded as dataclass `cls` (the others get their defaults): the instance, the
    sections present and the other top-level keys, which were ignored. Raises SettingsError
    (`file:line:column: message`)."""
    node = _compose(text, source, "the document is empty")
    if not isinstance(node, yaml.MappingNode):
        raise SettingsError([f"{_where(source, node)}: expected a mapping of sections"])
    loader = _Loader(source)
    kept = [(key, value) for key, value in node.value if loader.scalar(key) in sections]
    present = [str(loader.scalar(key)) for key, _ in kept]
    ignored = [str(loader.scalar(key)) for key, _ in node.value if loader.scalar(key) not in sections]
    part = yaml.MappingNode(node.tag, kept, node.start_mark, node.end_mark, node.flow_style)
    result = loader.dataclass(part, cls, "")
    if loader.problems:
        raise SettingsError(loader.problems)
    return result, present, ignored


def load_data_as(cls: type[T], data: Any, what: str) -> T:
    """JSON-like `data` (e.g. an API request's body) as `cls` (a dataclass, or a type such as `str`), with the
    configuration file's rules; raises SettingsError whose messages are `field.path: message`, the path
    starting at `what` (e.g. `agents[1006].skills.billing: expected an integer, got 'x'`)."""
    representer = yaml.representer.SafeRepresenter(sort_keys=False)
    try:
        node = representer.represent_data(data)
    except yaml.representer.RepresenterError as exc:
        raise SettingsError([f"{what or 'body'}: {exc}"]) from exc
    loader = _Loader(None)
    if dataclasses.is_dataclass(cls):
        result = loader.dataclass(node, cls, what)
    else:
        result = loader.convert(node, cls, what or "body")
    if loader.problems:
        raise SettingsError(loader.problems)
    return typing.cast(T, result)


def load_file_as(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError([f"{path}: cannot read: {exc.strerror}"]) from exc
    return load_yaml_as(cls, text, str(path))


def load_from_command_line(load: typing.Callable[[str], T], prog: str, description: str | None,
                           argv: list[str] | None) -> T | None:
    """For a process's start-up (`PROG --config FILE`): what `load` reads from the file, or None after
    printing the file's problems to stderr."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", "-c", default="/etc/ccc/controller.yaml", help="the configuration file")
    path = parser.parse_args(argv).config
    try:
        return load(path)
    except SettingsError as exc:
        print("configuration errors:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None
