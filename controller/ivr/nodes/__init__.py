"""IVR node types: one module per type, each a `Node` subclass declaring its parameters.

Adding a node type is adding a module here: give the class a `type` name, its `params` (what the
YAML may say, checked by validation with file:line:column errors) and `run()` (what it does on a
call, through the `CallPort`). `NODE_TYPES` finds every subclass in this package.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from controller.ivr import expr
from controller.ivr.port import CallPort, Prompt

if TYPE_CHECKING:
    from controller.ivr.flow import Report

#: What a sensitive variable (a PIN, a card number) looks like anywhere but in the flow itself:
#: call records, CTI events, the screen pop and queue data.
MASKED = "***"

PROMPT_KINDS = ("sound", "tts", "number", "digits", "money", "date", "time", "recording")
TEMPLATE_VARIABLE = re.compile(r"\{([^\W\d][\w]*(?:\.[^\W\d][\w]*)*)\}")


@dataclass(frozen=True)
class Param:
    """One parameter of a node: its kind (how it is checked), whether it is required, its default.

    kinds: str int number bool prompts node routes expr template templates regex list any
    enum (with `choices`)
    """

    kind: str
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    doc: str = ""
    positive: bool = False  # kind number: above 0 (a timeout of 0 would wait forever)


@dataclass(frozen=True)
class Jump:
    """Continue in another flow (a subflow), at its start or at `node`."""

    flow: str
    node: str | None = None


Next = str | Jump | None  # the next node id, another flow, or None: the flow ends here


@dataclass
class Context:
    """What a node sees while it runs: the call's port and the flow's variables."""

    port: CallPort
    flow_id: str
    variables: dict[str, Any]
    language: str
    visited: list[str] = field(default_factory=list)
    played: list[tuple[str, list[Prompt]]] = field(default_factory=list)  # (node, prompts) for the simulator
    pending_key: str | None = None  # a key that barged into a prompt: it answers the next menu
    sensitive: set[str] = field(default_factory=set)  # variables that hold sensitive input
    ended: str | None = None  # "hangup" once a hangup node ran
    # A resumed call: the attempts its node (menu, collect) had already used; the node's first run goes on
    # after them. `on_attempt_failed(n)` is told each failed attempt (the live-call picture keeps it).
    attempts_used: int = 0
    on_attempt_failed: Callable[[int], None] | None = None
    nodes: Mapping[str, Node] = field(default_factory=dict)  # the running flow's, by id (where a route leads)

    def attempts(self, retries: int) -> range:
        """The attempts a node with `retries` has left (all of them, except on a resumed call's first node)."""
        used, self.attempts_used = self.attempts_used, 0
        return range(min(used, retries), retries)

    def attempt_failed(self, attempt: int) -> None:
        if self.on_attempt_failed is not None:
            self.on_attempt_failed(attempt + 1)

    def render(self, template: Any, escape: Callable[[str], str] | None = None) -> str:
        """Fill `{name}` placeholders from the variables (unset: empty), each value through `escape`."""
        text = str(template)
        fill = escape or str
        return TEMPLATE_VARIABLE.sub(lambda m: fill(_text(expr.lookup(self.variables, m.group(1)))), text)

    def prompts(self, items: Any) -> list[Prompt]:
        return [Prompt(kind, self.render(value), self.language)  # type: ignore[arg-type]
                for kind, value in prompt_items(items)]

    def set(self, name: str, value: Any, *, sensitive: bool = False) -> None:
        self.variables[name] = value
        if sensitive:
            self.sensitive.add(name)
        else:
            self.sensitive.discard(name)
        if name == "language" and value in ("zh", "en"):
            self.language = value
            self.port.language = value

    def shareable_variables(self) -> dict[str, Any]:
        """The variables as anything outside the flow may see them: sensitive ones masked."""
        return {name: MASKED if name in self.sensitive else value for name, value in self.variables.items()}

    def emit(self, event: str, **fields: Any) -> None:
        self.port.emit(event, flow=self.flow_id, **fields)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def template_variables(path: tuple[str, ...], value: Any) -> Iterator[tuple[tuple[str, ...], str]]:
    """(path, variable) for every {variable} in a value (strings inside lists and mappings too)."""
    if isinstance(value, str):
        for match in TEMPLATE_VARIABLE.finditer(value):
            yield path, match.group(1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from template_variables((*path, str(key)), item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from template_variables((*path, str(index)), item)


def prompt_items(items: Any) -> list[tuple[str, str]]:
    """A prompt list as (kind, value): a string is text to speak; a mapping has one kind key."""
    if items is None:
        return []
    if not isinstance(items, list):
        items = [items]
    result = []
    for item in items:
        if isinstance(item, str):
            result.append(("tts", item))
        elif isinstance(item, Mapping) and len(item) == 1:
            (kind, value), = item.items()
            result.append((str(kind), _text(value)))
    return result


class Node:
    type: ClassVar[str]
    params: ClassVar[dict[str, Param]] = {}
    #: True when the node waits for the caller (input, a recording, an agent): loops through it
    #: cannot spin. Nodes that only compute or look something up do not.
    waits: ClassVar[bool] = False
    doc: ClassVar[str] = ""

    def __init__(self, node_id: str, values: Mapping[str, Any]) -> None:
        self.id = node_id
        self.values = {name: values.get(name, param.default) for name, param in self.params.items()}

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    # -- validation hooks ----------------------------------------------------------------------------

    def routes(self) -> Iterator[tuple[tuple[str, ...], str]]:
        """(path of the parameter, node id) for every node this one can go to."""
        for name, param in self.params.items():
            value = self.values.get(name)
            if value is None:
                continue
            if param.kind == "node":
                yield (name,), str(value)
            elif param.kind == "routes":
                for key, target in value.items():
                    yield (name, str(key)), str(target)

    def jumps(self) -> Iterator[tuple[tuple[str, ...], str, str | None]]:
        """(path, flow id, node id or None) for every other flow this node can go to."""
        return iter(())

    def variables_used(self) -> Iterator[tuple[tuple[str, ...], str]]:
        """(path, variable) for each variable the node's templates and expressions use."""
        for name, param in self.params.items():
            value = self.values.get(name)
            if value is None:
                continue
            if param.kind == "expr" and isinstance(value, str):
                for variable in sorted(expr.variables_in(expr.parse(value))):
                    yield (name,), variable
            elif param.kind in ("template", "any", "prompts"):
                yield from template_variables((name,), value)

    def assigns(self) -> set[str]:
        """Variables this node sets (so using them elsewhere is not an 'unknown variable')."""
        return set()

    def check(self, report: Report) -> None:
        """Checks beyond the parameter kinds (report.error(path, message))."""

    def hangs_up_at_once(self) -> bool:
        """Whether running the node ends the call before anything is played to the caller."""
        return False

    # -- running -------------------------------------------------------------------------------------

    async def run(self, ctx: Context) -> Next:
        raise NotImplementedError

    async def play(self, ctx: Context, items: Any, *, barge_in: bool = False) -> str | None:
        prompts = ctx.prompts(items)
        if not prompts:
            return None
        ctx.played.append((self.id, prompts))
        result = await ctx.port.play(prompts, barge_in=barge_in)
        return result.interrupted_by


def _discover() -> dict[str, type[Node]]:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    types: dict[str, type[Node]] = {}
    pending = list(Node.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "type" in cls.__dict__:
            types[cls.type] = cls
    return types


class _Registry(dict[str, type[Node]]):
    """Node types by name, found on first use (the modules import this package)."""

    def _load(self) -> None:
        if not dict.__len__(self):
            self.update(_discover())

    def __getitem__(self, key: str) -> type[Node]:
        self._load()
        return dict.__getitem__(self, key)

    def __contains__(self, key: object) -> bool:
        self._load()
        return dict.__contains__(self, key)

    def __iter__(self) -> Iterator[str]:
        self._load()
        return dict.__iter__(self)

    def get(self, key: str, default: Any = None) -> Any:
        self._load()
        return dict.get(self, key, default)


NODE_TYPES = _Registry()
