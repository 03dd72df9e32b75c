"""IVR flows: reading the YAML (keeping every value's line and column) and validating it.

A flow file:

    flow: hotline                 # the flow's id
    language: zh                  # zh or en: the language prompts are spoken in (a flow may switch)
    dids: ["4008001234"]          # the numbers it answers (entry conditions)
    variables: {tier: regular}    # variables and their initial values
    start: welcome                # the first node (default: the first one listed)
    nodes:
      welcome: {type: play, prompts: ["您好"], next: menu}
      ...

Validation reports `file:line:column: message` for schema errors (unknown node type or
parameter, wrong types, bad regex or expression) and semantic ones (a route to no node, an
unreachable node, a loop that never waits for the caller, a missing sound file, an unknown
variable, two flows with one id or one DID).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.ivr import expr
from controller.ivr.nodes import NODE_TYPES, PROMPT_KINDS, Node, Param, prompt_items
from controller.ivr.port import Prompt

log = logging.getLogger("controller.ivr")

Path_ = tuple[str, ...]
SoundExists = Callable[[str, str], bool]

BUILTIN_VARIABLES = {"caller", "did", "call_id", "language", "now", "today", "time", "weekday", "region", "flow"}


_PLAIN_TYPES = (str, int, float, bool)


def is_plain(value: Any) -> bool:
    """A value that goes as is into a call's record, CTI events and the screen pop."""
    return value is None or isinstance(value, _PLAIN_TYPES)


def plain_variables(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The variables whose values are plain (`is_plain`), in one comprehension: the IVR keeps them at every node
    a call enters (no function call per variable)."""
    return {name: value for name, value in variables.items() if value is None or isinstance(value, _PLAIN_TYPES)}


def screen_pop_data(variables: Mapping[str, Any]) -> dict[str, Any]:
    """A call's IVR data for the agent's screen pop: the flow's own plain variables. The built-ins
    are internal (call id, language, date and time) or have their own field in the pop (caller,
    did, region), and a structured value would show as `[object Object]`."""
    return {name: value for name, value in variables.items() if name not in BUILTIN_VARIABLES and is_plain(value)}


FLOW_KEYS = {"flow", "language", "dids", "variables", "start", "nodes", "description", "recording"}
#: A flow's recording policy: `always` records its calls from the start, `never` keeps them unrecorded
#: even in an `always` queue; `on_demand` (the default) leaves it to the queues and the agents.
RECORDING_POLICIES = ("always", "never", "on_demand")


@dataclass(frozen=True, order=True)
class FlowError:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass
class Flow:
    id: str
    language: str
    dids: list[str]
    variables: dict[str, Any]
    start: str
    nodes: dict[str, Node]
    source: str
    marks: dict[Path_, tuple[int, int]] = field(default_factory=dict, repr=False)
    recording: str = "on_demand"
    version: str = ""  # the first 12 hex digits of the file's SHA-256: which text is live

    @functools.cached_property
    def can_queue(self) -> bool:
        """A queue node in the flow: its callers' history is read ahead for the screen pop (worked out once per
        flow, not for every call it answers)."""
        return any(node.type == "queue" for node in self.nodes.values())


@dataclass(frozen=True)
class FlowSet:
    """An immutable set of valid flows: what calls run on (a call keeps the set it started with)."""

    flows: Mapping[str, Flow]
    by_did: Mapping[str, str]

    def flow_for_did(self, did: str) -> Flow | None:
        flow_id = self.by_did.get(did)
        return None if flow_id is None else self.flows.get(flow_id)


EMPTY = FlowSet({}, {})


class Report:
    """Collects errors for one file, turning parameter paths into line and column."""

    def __init__(self, source: str, marks: dict[Path_, tuple[int, int]]) -> None:
        self.source = source
        self.marks = marks
        self.errors: list[FlowError] = []
        self.prefix: Path_ = ()

    def where(self, path: Path_) -> tuple[int, int]:
        path = self.prefix + path
        while path and path not in self.marks:
            path = path[:-1]
        return self.marks.get(path, (1, 1))

    def error(self, path: Path_, message: str) -> None:
        line, column = self.where(path)
        self.errors.append(FlowError(self.source, line, column, message))


# -- YAML with positions ------------------------------------------------------------------------

#: At most this many values in one flow file once aliases are expanded: a few nested aliases can
#: otherwise stand for billions of values ("billion laughs") and stall the loader.
MAX_VALUES = 100_000


class _Malformed(Exception):
    """A YAML document that composes but cannot be a flow (a recursive alias, a duplicate key...)."""

    def __init__(self, node: yaml.Node, message: str, at: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.line, self.column = at or (node.start_mark.line + 1, node.start_mark.column + 1)
        self.message = message


class _Converter:
    """Plain Python values from a composed YAML tree, recording where each path starts."""

    def __init__(self, marks: dict[Path_, tuple[int, int]]) -> None:
        self.marks = marks
        # One safe constructor for the scalars (tags resolved by the composer: 5 is an int, yes a bool).
        self.scalars = yaml.constructor.SafeConstructor()
        self.open: set[int] = set()  # ids of the collections being converted: an alias back to one is a cycle
        self.values = 0

    def convert(self, node: yaml.Node, path: Path_, blame: yaml.Node | None = None) -> Any:
        """`blame`: where to point when `node` is an alias back to a value being converted (its key)."""
        self.values += 1
        if self.values > MAX_VALUES:
            raise _Malformed(node, f"more than {MAX_VALUES} values in {'.'.join(path[:1]) or 'the file'}"
                                   " (aliases expanding without bound?)", self.marks.get(path[:1]))
        self.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if id(node) in self.open:
            raise _Malformed(blame or node, f"YAML: a recursive alias: {'.'.join(path)} contains itself")
        self.open.add(id(node))
        try:
            return self._collection(node, path)
        finally:
            self.open.discard(id(node))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.scalars.construct_object(node)
        except yaml.constructor.ConstructorError as exc:  # an unknown tag (!!python/object...)
            raise _Malformed(node, f"YAML: {exc.problem}") from exc
        except Exception as exc:  # PyYAML's constructors fail in their own ways: 2026-02-30, `!!timestamp x`
            raise _Malformed(node, f"YAML: {node.value!r} cannot be read as {node.tag.rpartition(':')[2]}"
                                   f" ({type(exc).__name__}: {exc})") from exc

    def _collection(self, node: yaml.Node, path: Path_) -> Any:
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, str(i)), node) for i, item in enumerate(node.value)]
        if not isinstance(node, yaml.MappingNode):
            raise _Malformed(node, f"YAML: unsupported node {node.tag}")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _Malformed(key_node, "YAML: a key must be a plain value (a name or a number),"
                                           " not a list or a mapping")
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Malformed(key_node, "YAML: merge keys (<<) are not supported in flows")
            key = str(self.scalar(key_node)) if key_node.value != "" else ""
            if key in result:
                raise _Malformed(key_node, f"duplicate key {key!r}")
            child = (*path, key)
            value = self.convert(value_node, child, key_node)
            self.marks[(*child, "<key>")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = value
        return result


#: libyaml's parser when PyYAML was built with it (about 5x faster on big flows), same nodes and marks.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(text: str, source: str) -> tuple[Any, dict[Path_, tuple[int, int]], list[FlowError]]:
    marks: dict[Path_, tuple[int, int]] = {}
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return None, marks, [FlowError(source, line, column, f"YAML: {exc.problem or exc}")]
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a NUL, a control character)
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return None, marks, [FlowError(source, line, column, f"YAML: the character {chr(exc.character)!r}"
                                                             " is not allowed in YAML")]
    except yaml.YAMLError as exc:  # any other (PyYAML's own errors carry a mark; this is a last resort)
        return None, marks, [FlowError(source, 1, 1, f"YAML: {exc}")]
    if node is None:
        return None, marks, [FlowError(source, 1, 1, "the file is empty (expected a flow)")]
    try:
        return _Converter(marks).convert(node, ()), marks, []
    except _Malformed as exc:
        return None, {}, [FlowError(source, exc.line, exc.column, exc.message)]


# -- one flow -----------------------------------------------------------------------------------

def parse_flow(text: str, source: str) -> tuple[Flow | None, list[FlowError]]:
    """A flow from YAML text, checked on its own (cross-flow checks: `validate_set`)."""
    data, marks, errors = read_yaml(text, source)
    if errors:
        return None, errors
    report = Report(source, marks)
    if not isinstance(data, dict):
        report.error((), "expected a mapping with flow, language, dids, variables and nodes")
        return None, report.errors
    for key in data:
        if key not in FLOW_KEYS:
            report.error((key, "<key>"), f"unknown key {key!r} (expected one of: {', '.join(sorted(FLOW_KEYS))})")
    flow_id = data.get("flow")
    if not isinstance(flow_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", flow_id or ""):
        report.error(("flow",), "flow: expected the flow's id (letters, digits, _ and -)")
        flow_id = Path(source).stem
    language = data.get("language", "zh")
    if language not in ("zh", "en"):
        report.error(("language",), f"language: expected zh or en, got {language!r}")
        language = "zh"
    recording = data.get("recording", "on_demand")
    if recording not in RECORDING_POLICIES:
        report.error(("recording",), f"recording: expected one of {', '.join(RECORDING_POLICIES)}, got {recording!r}")
        recording = "on_demand"
    dids = data.get("dids", [])
    if not isinstance(dids, list) or not all(isinstance(d, str | int) and not isinstance(d, bool)
                                             and re.fullmatch(r"[0-9]+", str(d)) for d in dids):
        report.error(("dids",), "dids: expected a list of numbers (digits only)")
        dids = []
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        report.error(("variables",), "variables: expected a mapping of names to initial values")
        variables = {}
    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, dict) or not raw_nodes:
        report.error(("nodes",) if "nodes" in data else (), "nodes: expected a mapping of node ids to nodes")
        return None, report.errors
    nodes: dict[str, Node] = {}
    for node_id, raw in raw_nodes.items():
        node = _parse_node(node_id, raw, report)
        if node is not None:
            nodes[node_id] = node
    start = data.get("start", next(iter(raw_nodes)))
    if not isinstance(start, str | int) or isinstance(start, bool):
        report.error(("start",), f"start: expected a node id, got {start!r}")
    elif str(start) not in raw_nodes:
        report.error(("start",), f"start: no node {start!r} in this flow")
    flow = Flow(flow_id, language, [str(d) for d in dids], dict(variables), str(start), nodes, source, marks,
                str(recording), hashlib.sha256(text.encode()).hexdigest()[:12])
    if not report.errors:
        _check_graph(flow, report)
        _check_variables(flow, report)
    return (flow if not report.errors else None), report.errors


def _parse_node(node_id: str, raw: Any, report: Report) -> Node | None:
    path: Path_ = ("nodes", node_id)
    if not isinstance(raw, dict):
        report.error(path, f"node {node_id!r}: expected a mapping with a type")
        return None
    node_type = raw.get("type")
    if not isinstance(node_type, str) or node_type not in NODE_TYPES:
        known = ", ".join(sorted(NODE_TYPES))
        report.error((*path, "type") if "type" in raw else path,
                     f"node {node_id!r}: unknown type {node_type!r} (one of: {known})" if node_type is not None
                     else f"node {node_id!r}: missing type (one of: {known})")
        return None
    cls = NODE_TYPES[str(node_type)]
    before = len(report.errors)
    for key in raw:
        if key != "type" and key not in cls.params:
            report.error((*path, key, "<key>"), f"{node_type} node {node_id!r}: unknown parameter {key!r}"
                         f" (expected: {', '.join(cls.params)})")  # every type has parameters
    for name, param in cls.params.items():
        if name not in raw:
            if param.required:
                report.error(path, f"{node_type} node {node_id!r}: missing parameter {name!r}")
            continue
        _check_param(f"{node_type} node {node_id!r}: {name}", (*path, name), raw[name], param, report)
    if len(report.errors) > before:
        return None
    node = cls(node_id, raw)
    report.prefix = path
    try:
        node.check(report)
    finally:
        report.prefix = ()
    return node  # with errors of its own check, the flow is refused anyway


def _check_param(what: str, path: Path_, value: Any, param: Param, report: Report) -> None:
    kind = param.kind
    if kind == "str" or kind == "template" or kind == "node":
        if isinstance(value, bool):
            report.error(path, f"{what}: expected a {'node name' if kind == 'node' else 'string'}, got {value!r}"
                               " (YAML reads yes/no/on/off as true/false: quote the name, or rename it)")
        elif not isinstance(value, str | int):
            report.error(path, f"{what}: expected a {'node name' if kind == 'node' else 'string'}, got {value!r}")
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            report.error(path, f"{what}: expected an integer, got {value!r}")
    elif kind == "number":
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value < 0 \
                or (param.positive and value == 0):
            bound = "above 0" if param.positive else ">= 0"
            report.error(path, f"{what}: expected a number of seconds ({bound}), got {value!r}")
    elif kind == "bool":
        if not isinstance(value, bool):
            report.error(path, f"{what}: expected true or false")
    elif kind == "enum":
        if value not in param.choices:
            report.error(path, f"{what}: expected one of {', '.join(param.choices)}, got {value!r}")
    elif kind == "routes":
        if not isinstance(value, dict) or not all(isinstance(t, str) for t in value.values()):
            report.error(path, f"{what}: expected a mapping of choices to node ids")
    elif kind in ("list",):
        if not isinstance(value, list):
            report.error(path, f"{what}: expected a list")
    elif kind == "regex":
        try:
            re.compile(str(value))
        except re.error as exc:
            report.error(path, f"{what}: invalid regular expression: {exc}")
        except (RecursionError, OverflowError):
            report.error(path, f"{what}: invalid regular expression: too large or nested too deeply")
    elif kind == "expr":
        if isinstance(value, str):
            try:
                expr.parse(value)
            except expr.ExpressionError as exc:
                report.error(path, f"{what}: {exc.message} (at column {exc.column + 1} of the expression)")
    elif kind == "prompts":
        _check_prompts(what, path, value, report)


def _check_prompts(what: str, path: Path_, value: Any, report: Report) -> None:
    items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        where = (*path, str(index)) if isinstance(value, list) else path
        if isinstance(item, str):
            continue
        if not isinstance(item, dict) or len(item) != 1 or next(iter(item)) not in PROMPT_KINDS:
            report.error(where, f"{what}: a prompt is text, or one of {', '.join(PROMPT_KINDS)} with its value"
                         " (e.g. {money: \"{balance}\"})")


# -- graph checks -------------------------------------------------------------------------------

def _check_graph(flow: Flow, report: Report) -> None:
    for node in flow.nodes.values():
        for path, target in node.routes():
            if target not in flow.nodes:
                report.error(("nodes", node.id, *path), f"node {node.id!r}: no node {target!r} in flow {flow.id!r}")
    if report.errors:
        return
    reached = {flow.start}
    pending = [flow.start]
    while pending:
        node = flow.nodes[pending.pop()]
        for _, target in node.routes():
            if target not in reached:
                reached.add(target)
                pending.append(target)
    for node_id in flow.nodes:
        if node_id not in reached:
            report.error(("nodes", node_id, "<key>"), f"node {node_id!r} is unreachable (no route leads to it"
                         f" from the start node {flow.start!r})")
    _check_spin_loops(flow, report)


def _check_spin_loops(flow: Flow, report: Report) -> None:
    """A cycle made only of nodes that never wait for the caller would spin forever."""
    quick = {node_id for node_id, node in flow.nodes.items() if not node.waits}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []
    reported: set[frozenset[str]] = set()

    def visit(node_id: str) -> None:
        state[node_id] = 1
        stack.append(node_id)
        for _, target in flow.nodes[node_id].routes():
            if target not in quick:
                continue
            if state.get(target) == 1:
                cycle = stack[stack.index(target):]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    loop = " → ".join([*cycle, target])
                    report.error(("nodes", target, "<key>"), f"loop {loop} never waits for the caller"
                                 " (add a menu, collect or other input node to it)")
            elif target not in state:
                visit(target)
        stack.pop()
        state[node_id] = 2

    for node_id in sorted(quick):
        if node_id not in state:
            visit(node_id)


# -- variables ----------------------------------------------------------------------------------

def _check_variables(flow: Flow, report: Report) -> None:
    known = BUILTIN_VARIABLES | set(flow.variables)
    for node in flow.nodes.values():
        known |= node.assigns()
    for node in flow.nodes.values():
        for path, variable in node.variables_used():
            root = variable.split(".")[0]
            if variable not in known and root not in known:
                report.error(("nodes", node.id, *path), f"node {node.id!r}: unknown variable {variable!r}"
                             " (declare it under variables: or set it in a node first)")


# -- a set of flows -----------------------------------------------------------------------------

def static_prompts(flow: Flow) -> Iterable[tuple[str, Prompt]]:
    """(node id, prompt) for every prompt known before a call (no variables, no sound files): what
    text-to-speech can render ahead of the first caller, and what a studio recording can replace."""
    for node in flow.nodes.values():
        for name, param in node.params.items():
            if param.kind == "prompts":
                for kind, value in prompt_items(node.values.get(name)):
                    if kind not in ("sound", "recording") and "{" not in value:
                        yield node.id, Prompt(kind, value, flow.language)  # type: ignore[arg-type]


def sound_prompts(flow: Flow) -> Iterable[tuple[Path_, str]]:
    for node in flow.nodes.values():
        for name, param in node.params.items():
            if param.kind == "prompts":
                for index, (kind, value) in enumerate(prompt_items(node.values.get(name))):
                    if kind == "sound":
                        yield ("nodes", node.id, name, str(index)), value


def validate_set(flows: list[Flow], sound_exists: SoundExists | None = None) -> list[FlowError]:
    """Checks across flows: one id per flow, one flow per DID, subflow targets, sound files."""
    errors: list[FlowError] = []
    by_id: dict[str, Flow] = {}
    by_did: dict[str, Flow] = {}
    for flow in flows:
        report = Report(flow.source, flow.marks)
        if flow.id in by_id:
            report.error(("flow",), f"flow id {flow.id!r} is already used by {by_id[flow.id].source}")
        by_id.setdefault(flow.id, flow)
        for index, did in enumerate(flow.dids):
            if did in by_did and by_did[did] is not flow:
                report.error(("dids", str(index)), f"DID {did} is already served by flow {by_did[did].id!r}"
                             f" ({by_did[did].source})")
            by_did.setdefault(did, flow)
        errors.extend(report.errors)
    for flow in flows:
        report = Report(flow.source, flow.marks)
        for node in flow.nodes.values():
            for path, target_flow, target_node in node.jumps():
                target = by_id.get(target_flow)
                if target is None:
                    report.error(("nodes", node.id, *path), f"node {node.id!r}: no flow {target_flow!r}")
                elif target_node is not None and target_node not in target.nodes:
                    report.error(("nodes", node.id, *path), f"node {node.id!r}: flow {target_flow!r} has no node"
                                 f" {target_node!r}")
        if sound_exists is not None:
            for path, name in sound_prompts(flow):
                if "{" not in name and not sound_exists(name, flow.language):
                    report.error(path, f"sound file {name!r} not found in the Asterisk sounds directory")
        errors.extend(report.errors)
    return errors


def flow_files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            files.append(path)
    return files


def load_flows(paths: Iterable[Path], sound_exists: SoundExists | None = None) -> tuple[list[Flow], list[FlowError]]:
    """Read and validate flow files (directories: every *.yaml in them)."""
    flows: list[Flow] = []
    errors: list[FlowError] = []
    for path in flow_files(paths):
        try:
            text = path.read_bytes().decode("utf-8")  # never the locale's encoding
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(FlowError(str(path), 1, 1, f"cannot read the file: {exc}"))
            continue
        flow, problems = _parse_guarded(text, str(path))
        errors.extend(problems)
        if flow is not None:
            flows.append(flow)
    errors.extend(validate_set(flows, sound_exists))
    return flows, sorted(errors)


def _parse_guarded(text: str, source: str) -> tuple[Flow | None, list[FlowError]]:
    """`parse_flow`, with a last line of defence: a flow the checks did not foresee is an error of its
    file, never an exception that takes a reload (or the controller) down."""
    try:
        return parse_flow(text, source)
    except Exception as exc:  # a bug in a check: the fuzz tests look for these
        log.exception("IVR flow %s: unexpected error while checking it", source)
        return None, [FlowError(source, 1, 1, f"cannot check this flow ({type(exc).__name__}: {exc});"
                                              " please report it")]


def flow_set(flows: list[Flow], did_overrides: Mapping[str, str] | None = None) -> FlowSet:
    """The live set: each flow's own DIDs, then `did_overrides` (the configuration's `dids`) on top."""
    by_did = {did: flow.id for flow in flows for did in flow.dids}
    by_did.update(did_overrides or {})
    return FlowSet({flow.id: flow for flow in flows}, by_did)
