"""The kinds of managed items and how each maps to the managed sections of a `Config` (README "Administration
(live configuration)"). The managed document has exactly the layout of those sections of controller.yaml;
an item is one entry of a section (an agent, a DID, ...), found by its key. Adding a kind is adding an entry
to KINDS.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, replace
from typing import Any, Literal

from controller.config import AcdAgentConfig, AcdQueueConfig, AcdSettings, Config, Role, WebhookSettings
from controller.reports.kpis import Standards
from controller.settings import SettingsError, load_data_as

#: How a secret is shown; given back in a change, it means "keep the current one".
MASK = "***"

Shape = Literal["list", "values", "mapping", "fields", "single"]
Op = Literal["add", "change", "remove"]


@dataclass(frozen=True)
class Kind:
    """One kind of item. `shape` says how its section holds items:
    list: a list of dataclasses, keyed by their `key_field`; values: a list of strings, each its own key;
    mapping: a mapping key -> value; fields: some fields of a dataclass, keyed by field name;
    single: one dataclass, keyed by the kind's name."""

    name: str  # "agent": in changes, audit targets (`agent:1006`) and CTI events
    plural: str  # "agents": the URL's /api/config/{plural}
    section: tuple[str, ...]  # where it is in a Config: ("acd", "agents")
    shape: Shape
    item_type: Any = str  # one item's type (list, mapping, single)
    key_field: str = ""  # list: the item's field that is its key
    fields: tuple[str, ...] = ()  # fields: the dataclass's fields that are items
    secret_fields: tuple[str, ...] = ()  # masked in the document and in changes
    writers: tuple[Role, ...] = ("supervisor", "admin")  # who may change it
    summary: str = ""

    @property
    def removable(self) -> bool:
        return self.shape in ("list", "values", "mapping")

    def path(self, key: str) -> str:
        """Where an item is, at the start of its messages: `agents[1006]`, `standards`, `center_name`."""
        if self.shape == "single":
            return self.name
        if self.shape == "fields":
            return key
        return f"{self.plural}[{key}]"

    def target(self, key: str) -> str:
        """The audit log's target."""
        return f"{self.name}:{key}"

    # -- items <-> Config --

    def items(self, config: Config) -> dict[str, Any]:
        """The kind's items in `config`, by key, in the section's order."""
        section = _get(config, self.section)
        if self.shape == "list":
            return {str(getattr(item, self.key_field)): item for item in section}
        if self.shape == "values":
            return {str(value): value for value in section}
        if self.shape == "mapping":
            return {str(key): value for key, value in section.items()}
        if self.shape == "fields":
            return {name: getattr(section, name) for name in self.fields}
        return {self.name: section}

    def with_items(self, config: Config, items: dict[str, Any]) -> Config:
        """`config` with the kind's items replaced by `items` (fields and single: those given)."""
        section = _get(config, self.section)
        if self.shape in ("list", "values"):
            value: Any = list(items.values())
        elif self.shape == "mapping":
            value = dict(items)
        elif self.shape == "fields":
            value = replace(section, **items)
        else:
            value = items.get(self.name, section)
        return typing.cast(Config, _set(config, self.section, value))

    # -- items <-> JSON --

    def to_data(self, value: Any, *, masked: bool = True) -> Any:
        """An item as JSON-ready data (as the file writes it); secrets as MASK unless `masked` is False."""
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            return value
        data = dataclasses.asdict(value)
        if masked:
            data.update({name: MASK for name in self.secret_fields if data.get(name)})
        return data

    def item_hint(self, key: str) -> Any:
        if self.shape == "fields":
            return typing.get_type_hints(section_type(self.section))[key]
        return self.item_type

    def from_data(self, key: str, data: Any) -> Any:
        """An item from JSON data (the key from elsewhere, e.g. the URL), with the configuration file's rules
        and messages (`agents[1006].skills.billing: ...`); raises SettingsError."""
        where = self.path(key)
        if self.shape == "values":
            if data is not None and data != key:
                raise SettingsError([f"{where}: the body must be the reason itself ({key!r}) or empty"])
            return load_data_as(str, key, where)
        if self.shape == "fields" and key not in self.fields:
            raise SettingsError([f"{key}: unknown setting (expected one of: {', '.join(self.fields)})"])
        if self.shape == "list":
            if not isinstance(data, dict):
                raise SettingsError([f"{where}: expected a mapping"])
            given = data.get(self.key_field, key)
            if given != key:
                raise SettingsError([f"{where}.{self.key_field}: must be {key!r} (the key in the path), "
                                     f"got {given!r}"])
            data = {self.key_field: key, **data}
        return load_data_as(self.item_hint(key), data, where)

    def keep_secrets(self, value: Any, current: Any, key: str) -> Any:
        """`value` whose masked secrets (MASK) are taken from `current` (the item as it is now)."""
        masked = [name for name in self.secret_fields if getattr(value, name, None) == MASK]
        if not masked:
            return value
        if current is None:
            raise SettingsError([f"{self.path(key)}.{name}: {MASK} keeps the current secret, but there is no "
                                 f"{self.name} {key!r} yet: give the secret" for name in masked])
        return replace(value, **{name: getattr(current, name) for name in masked})


def section_type(path: tuple[str, ...]) -> Any:
    hint: Any = Config
    for name in path:
        hint = typing.get_type_hints(hint)[name]
    return hint


def _get(config: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        config = getattr(config, name)
    return config


def _set(config: Any, path: tuple[str, ...], value: Any) -> Any:
    head, *rest = path
    if rest:
        value = _set(getattr(config, head), tuple(rest), value)
    return replace(config, **{head: value})


_ACD_LISTS = ("queues", "agents", "not_ready_reasons", "standard_prompts")

KINDS: tuple[Kind, ...] = (
    Kind("queue", "queues", ("acd", "queues"), "list", AcdQueueConfig, key_field="name", summary="ACD queues"),
    Kind("agent", "agents", ("acd", "agents"), "list", AcdAgentConfig, key_field="id", summary="agents"),
    Kind("not_ready_reason", "not_ready_reasons", ("acd", "not_ready_reasons"), "values",
         summary="not-ready reasons"),
    Kind("standard_prompt", "standard_prompts", ("acd", "standard_prompts"), "mapping",
         summary="standard prompts agents play to callers (text to speak, or sound:NAME)"),
    Kind("acd_setting", "acd_settings", ("acd",), "fields",
         fields=tuple(f.name for f in dataclasses.fields(AcdSettings) if f.name not in _ACD_LISTS),
         writers=("admin",), summary="the ACD's own settings"),
    Kind("standards", "standards", ("standards",), "single", Standards, summary="service standards"),
    Kind("did", "dids", ("dids",), "mapping", writers=("admin",), summary="DID -> IVR flow"),
    Kind("webhook", "webhooks", ("webhooks",), "list", WebhookSettings, key_field="name", secret_fields=("secret",),
         writers=("admin",), summary="webhooks"),
)
KIND_BY_NAME = {kind.name: kind for kind in KINDS}
#: The top-level sections of controller.yaml the managed document holds.
MANAGED_SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(kind.section[0] for kind in KINDS))


@dataclass(frozen=True)
class Change:
    """One item's difference: before/after as JSON-ready data (None when absent)."""

    op: Op
    kind: str
    key: str
    before: Any = None
    after: Any = None

    def public(self) -> dict[str, Any]:
        """For the API, the audit log and the CTI stream's readers: secrets masked."""
        kind = KIND_BY_NAME[self.kind]
        def masked(data: Any) -> Any:
            if isinstance(data, dict):
                return {k: MASK if k in kind.secret_fields and v else v for k, v in data.items()}
            return data
        return {"op": self.op, "kind": self.kind, "key": self.key, "before": masked(self.before),
                "after": masked(self.after)}


def differences(old: Config, new: Config) -> list[Change]:
    """Every item added, changed or removed from `old` to `new` (the order within a section is not a change)."""
    changes: list[Change] = []
    for kind in KINDS:
        before, after = kind.items(old), kind.items(new)
        for key, value in before.items():
            if key not in after:
                changes.append(Change("remove", kind.name, key, kind.to_data(value, masked=False), None))
            elif after[key] != value:
                changes.append(Change("change", kind.name, key, kind.to_data(value, masked=False),
                                      kind.to_data(after[key], masked=False)))
        changes += [Change("add", kind.name, key, None, kind.to_data(value, masked=False))
                    for key, value in after.items() if key not in before]
    return changes


def document(config: Config, *, masked: bool = True) -> dict[str, Any]:
    """The managed document: the managed sections of `config` as controller.yaml writes them."""
    result: dict[str, Any] = {}
    for kind in KINDS:
        for key, value in kind.items(config).items():
            data = kind.to_data(value, masked=masked)
            target = result
            for name in kind.section[:-1]:
                target = target.setdefault(name, {})
            last = kind.section[-1]
            if kind.shape in ("list", "values"):
                target.setdefault(last, []).append(data)
            elif kind.shape in ("mapping", "fields"):
                target.setdefault(last, {})[key] = data
            else:
                target[last] = data
        if kind.shape in ("list", "values", "mapping"):  # an empty section is written, not left out
            target = result
            for name in kind.section[:-1]:
                target = target.setdefault(name, {})
            target.setdefault(kind.section[-1], [] if kind.shape != "mapping" else {})
    return {section: result[section] for section in MANAGED_SECTIONS if section in result}


def empty_collections(config: Config) -> Config:
    """`config` without any item of the kinds that hold a collection (fields and single keep their values)."""
    for kind in KINDS:
        if kind.removable:
            config = kind.with_items(config, {})
    return config
