"""Live administration (README "Administration (live configuration)"): the managed items, changed through
the API and applied at once.

A change (one item, several items of one kind, or a whole applied document) is validated as a whole `Config`
with the configuration file's rules and messages, refused by a live-state guard or committed in ONE
transaction with its audit rows, then made current (`LiveConfig.replace`), whose subscribers apply it. A
refused change changes nothing, in the store or live. Changes are made one at a time, each from what the
previous one left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from controller.config import Config
from controller.live_config import LiveConfig
from controller.plugins.access.state_persistor import AuditLog
from controller.plugins.admin.kinds import (
    KIND_BY_NAME,
    KINDS,
    MANAGED_SECTIONS,
    Change,
    Kind,
    differences,
    document,
    empty_collections,
)
from controller.plugins.admin.state_persistor import AdminRecords, Statement
from controller.plugins.admin.validation import Check, problems_of
from controller.settings import SettingsError, load_data_as, load_yaml_sections
from controller.store.db import Store, StoreUnavailable

log = logging.getLogger("controller.admin")

#: The audit log's actor of what the configuration file seeded.
FILE_ACTOR = "config-file"
#: A live-state guard: why the change from old to new must not be made now (None: it may).
Guard = Callable[[Config, Config], "str | None"]
Publish = Callable[..., object]


class AdminRefused(Exception):
    """A change that is refused: HTTP status (404 unknown item, 409 refused now, 422 invalid), a message and,
    for 422, every problem as `path: message`. Nothing was changed."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []


class AdminService:
    def __init__(self, store: Store, live: LiveConfig, audit: AuditLog, now: Callable[[], float],
                 publish: Publish | None = None) -> None:
        self.records = AdminRecords(store)
        self.store = store
        self.live = live
        self.audit = audit
        self.now = now
        self.publish = publish
        self.guards: dict[str, list[Guard]] = {}
        self.checks: list[Check] = []

    # -- hooks for other plugins --

    def register_guard(self, kind: str, guard: Guard) -> None:
        """`guard(old, new)` is asked before a change touching `kind` is made; a message refuses it (409)."""
        self.guards.setdefault(self.kind(kind).name, []).append(guard)

    def register_check(self, check: Check) -> None:
        """`check(config)` gives the problems of a whole configuration (422), e.g. a DID's flow is not loaded."""
        self.checks.append(check)

    # -- reading --

    @staticmethod
    def kind(name: str) -> Kind:
        kind = KIND_BY_NAME.get(name) or next((k for k in KINDS if k.plural == name), None)
        if kind is None:
            raise AdminRefused(404, f"no kind {name!r} (kinds: {', '.join(k.name for k in KINDS)})")
        return kind

    def document(self, *, masked: bool = True) -> dict[str, Any]:
        """The managed document as controller.yaml writes it (secrets as "***" unless `masked` is False)."""
        return document(self.live.current, masked=masked)

    def items(self, kind_name: str) -> list[dict[str, Any]]:
        kind = self.kind(kind_name)
        return [{"key": key, "value": kind.to_data(value)} for key, value in kind.items(self.live.current).items()]

    def item(self, kind_name: str, key: str) -> dict[str, Any]:
        kind = self.kind(kind_name)
        items = kind.items(self.live.current)
        if key not in items:
            raise AdminRefused(404, f"no {kind.name} {key!r}")
        return {"kind": kind.name, "key": key, "value": kind.to_data(items[key])}

    # -- changing --

    async def put(self, actor: str, kind_name: str, key: str, data: Any, *, role: str | None = None) -> list[Change]:
        """Create or replace one item; the changes made ([] when it was already so)."""
        return await self.put_items(actor, kind_name, {key: data}, role=role)

    async def put_items(self, actor: str, kind_name: str, items: dict[str, Any], *,
                        role: str | None = None) -> list[Change]:
        """Create or replace items of one kind in one change (e.g. several ACD settings)."""
        kind = self.kind(kind_name)
        async with self.live.lock:
            current = self.live.current
            present = kind.items(current)
            problems: list[str] = []
            for key, data in items.items():
                try:
                    present[key] = kind.keep_secrets(kind.from_data(key, data), present.get(key), key)
                except SettingsError as exc:
                    problems += exc.problems
            if problems:
                raise AdminRefused(422, f"invalid {kind.name}", problems)
            try:
                changed = kind.with_items(current, present)
            except ValueError as exc:  # a check of the whole section (e.g. acd's ring timeouts): nothing changes
                raise AdminRefused(422, f"invalid {kind.name}", [f"{'.'.join(kind.section)}: {exc}"]) from exc
            return await self._change(actor, role, "config.put", current, changed)

    async def delete(self, actor: str, kind_name: str, key: str, *, role: str | None = None) -> list[Change]:
        kind = self.kind(kind_name)
        async with self.live.lock:
            current = self.live.current
            present = kind.items(current)
            if key not in present:
                raise AdminRefused(404, f"no {kind.name} {key!r}")
            if not kind.removable:
                raise AdminRefused(409, f"{kind.path(key)}: cannot be removed, only changed")
            del present[key]
            return await self._change(actor, role, "config.delete", current, kind.with_items(current, present))

    async def apply(self, actor: str, source: dict[str, Any] | str, *, dry_run: bool, role: str | None = None,
                    source_name: str = "document", notes: list[str] | None = None) -> list[Change]:
        """Make the managed sections what `source` says (a controller.yaml text, or its data): every difference,
        validated as one configuration, in one transaction. A managed section `source` leaves out stays as it
        is; other sections are ignored (each named in `notes`). `dry_run`: the changes it would make, nothing
        changed. Unchanged input: [] and nothing written."""
        async with self.live.lock:
            current = self.live.current
            try:
                if isinstance(source, str):
                    loaded, present, ignored = load_yaml_sections(Config, source, source_name, MANAGED_SECTIONS)
                else:
                    present = [name for name in source if name in MANAGED_SECTIONS]
                    ignored = [name for name in source if name not in MANAGED_SECTIONS]
                    loaded = load_data_as(Config, {name: source[name] for name in present}, "")
                new = replace(current, **{name: getattr(loaded, name) for name in present})
                new = self._keep_secrets(current, new)
            except SettingsError as exc:
                raise AdminRefused(422, "invalid configuration", exc.problems) from exc
            if notes is not None:
                notes += [f"{name}: not a managed section, ignored (change it in the file; some need a restart)"
                          for name in ignored]
            return await self._change(actor, role, "config.apply", current, new, dry_run=dry_run)

    @staticmethod
    def _keep_secrets(current: Config, new: Config) -> Config:
        for kind in KINDS:
            if kind.secret_fields:
                before = kind.items(current)
                items = {key: kind.keep_secrets(value, before.get(key), key)
                         for key, value in kind.items(new).items()}
                new = kind.with_items(new, items)
        return new

    def check(self, old: Config, new: Config, changes: list[Change]) -> None:
        """Refuse (AdminRefused) a change to `new` that adds a problem (422) or that a live-state guard refuses
        (409)."""
        existing = set(problems_of(old, self.checks))  # (a file's mistake must not block every later change)
        problems = [problem for problem in problems_of(new, self.checks) if problem not in existing]
        if problems:
            raise AdminRefused(422, "invalid configuration", problems)
        for kind_name in dict.fromkeys(change.kind for change in changes):
            for guard in self.guards.get(kind_name, []):
                refusal = guard(old, new)
                if refusal:
                    raise AdminRefused(409, refusal)

    async def _change(self, actor: str, role: str | None, action: str, old: Config, new: Config, *,
                      dry_run: bool = False) -> list[Change]:
        changes = differences(old, new)
        if not changes:
            return []
        self.check(old, new, changes)
        if dry_run:
            return changes
        now = self.now()
        statements: list[Statement] = []
        for change in changes:
            kind = KIND_BY_NAME[change.kind]
            if change.op == "remove":
                statements.append(self.records.delete(kind.name, change.key))
            else:
                position = list(kind.items(new)).index(change.key)
                statements.append(self.records.put(kind.name, change.key, change.after, position, now, actor))
            public = change.public()
            statements.append(self.audit.statement(actor, role, action, target=kind.target(change.key),
                                                   before=public["before"], after=public["after"], status=200))
        try:
            await self.store.execute_atomic(statements)
        except StoreUnavailable:
            # Queued (and kept across a stop): it will be committed. Live follows what will be stored.
            log.error("configuration change by %s is applied but not yet stored: the store cannot be written now",
                      actor)
            await self._made(new, changes)
            raise
        await self._made(new, changes)
        return changes

    async def _made(self, new: Config, changes: list[Change]) -> None:
        # On the configuration as it is now: a reload of the file may have changed its other sections meanwhile.
        await self.live.replace(replace(self.live.current, **{name: getattr(new, name) for name in MANAGED_SECTIONS}))
        for change in changes:
            log.info("configuration: %s %s %s", change.op, change.kind, change.key)
            if self.publish is not None:
                self.publish("config.changed", kind=change.kind, key=change.key, op=change.op)

    # -- at start --

    async def open(self, file_config: Config) -> None:
        """At start: an empty database is seeded from the file's managed sections; otherwise the database wins
        (a warning names the file's sections that differ) and becomes current."""
        if await self.seed_if_empty(file_config):
            self._warn_problems(file_config)
            return
        stored = await self.load(file_config)
        self._warn_problems(stored)
        from_file, from_database = document(file_config, masked=False), document(stored, masked=False)
        differing = [name for name in MANAGED_SECTIONS if from_file.get(name) != from_database.get(name)]
        if differing:
            log.warning("the configuration file's %s differ from the database, which wins since the file seeded it "
                        "(README \"Administration (live configuration)\"); `ccctl config apply %s` "
                        "makes them the file's", ", ".join(differing), file_config.source or "FILE")
        await self.live.replace(stored)

    def _warn_problems(self, config: Config) -> None:
        """What the configuration in use breaks (it was taken as it is; a change may not add to it)."""
        for problem in problems_of(config, self.checks):
            log.warning("configuration: %s", problem)

    async def seed_if_empty(self, config: Config) -> bool:
        """Seed an empty database (no item, never seeded) from `config`'s managed sections, in one transaction
        audited as `config-file`; whether it did."""
        if not await self.records.is_empty():
            return False
        now = self.now()
        statements: list[Statement] = []
        for kind in KINDS:
            for position, (key, value) in enumerate(kind.items(config).items()):
                statements.append(self.records.put(kind.name, key, kind.to_data(value, masked=False), position, now,
                                                   FILE_ACTOR))
        statements.append(self.records.mark_seeded(now))
        statements.append(self.audit.statement(FILE_ACTOR, None, "config.seed", target="document",
                                               after=document(config), status=200))
        await self.store.execute_atomic(statements)
        log.info("configuration: the database is seeded from %s (%d items); from now on it wins over the file's "
                 "%s", config.source or "the configuration", len(statements) - 2, ", ".join(MANAGED_SECTIONS))
        return True

    async def load(self, file_config: Config) -> Config:
        """The stored managed sections over `file_config`'s other settings. An item that no longer loads (an
        older version's) is left out and logged; its row stays."""
        config = empty_collections(file_config)
        by_kind: dict[str, dict[str, Any]] = {}
        for row in await self.records.rows():
            kind = KIND_BY_NAME.get(row.kind)
            if kind is None:
                log.error("configuration: stored item %s:%s is of an unknown kind; ignored", row.kind, row.key)
                continue
            try:
                by_kind.setdefault(kind.name, kind.items(config) if not kind.removable else {})[row.key] = (
                    kind.from_data(row.key, row.data))
            except SettingsError as exc:
                log.error("configuration: stored %s %r does not load (%s); left out", kind.name, row.key,
                          "; ".join(exc.problems))
        for name, items in by_kind.items():
            config = KIND_BY_NAME[name].with_items(config, items)
        return config
