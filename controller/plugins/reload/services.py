"""Reload means reload (SIGHUP, `POST /api/config/reload`, `POST /api/flows/reload`): read the configuration
file again and put every setting that can change without a restart live, through the live configuration.

Each setting that differs from what runs now is one of three kinds (README "Reloading the configuration"):
- applied: it takes effect at once (services read it from `live.current` or follow its changes);
- needs a restart: what is set up once at start (listen addresses and ports, the data directory, the
  ARI/AMI connections, ...); the running value stays and is reported;
- managed in the database: agents, queues, DIDs, webhooks, standards, users and tokens (README "Which
  source wins"): the file's version is ignored; `ccctl config apply FILE` applies it.

A file with any problem changes nothing: the answer gives its `file:line:column: message` lines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.config import Config, load_config
from controller.live_config import LiveConfig
from controller.settings import SettingsError

log = logging.getLogger("controller.reload")

#: Settings used once at start, each with why. A path names a section or a field (`http.port`).
NEEDS_RESTART: dict[str, str] = {
    "data_dir": "the store and the instance lock are opened there at start",
    "ari": "the ARI connection and application are set up at start",
    "ami": "the AMI connection is set up at start",
    "http.listen": "the HTTP server listens from the start",
    "http.port": "the HTTP server listens from the start",
    "http.tls_cert": "the certificate's path (the files themselves are read again on each reload)",
    "http.tls_key": "the key's path (the files themselves are read again on each reload)",
    "agi": "the FastAGI server is set up at start",
    "asterisk.sounds_dir": "prompts are rendered there and the flows' sounds are checked there from the start",
    "ivr.flows_dir": "the flows' folder is chosen at start (the flows in it are reloaded)",
    "compat": "the queue_log and CDR writers and the AMI server are set up at start",
    "demo": "demo mode decides at start which credentials are accepted",
    "auth.min_password_length": "the API's description of a password (OpenAPI) is built at start",
    "guard": "read by ccc-guard when it starts: restart the guard",
    "leadership": "the lease is taken and renewed with the settings read at start",
}
#: Sections the database holds once it is seeded (README "Which source wins").
MANAGED: dict[str, str] = {
    "acd": "agents, queues, not-ready reasons, standard prompts and ACD settings",
    "standards": "service standards",
    "dids": "DID to flow mapping",
    "webhooks": "webhooks",
    "tokens": "API tokens (their own API)",
    "users": "users (their own API)",
}


def _covers(rule: str, path: str) -> bool:
    return path == rule or path.startswith(rule + ".")


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted paths of the settings that differ between two configurations: fields of nested sections
    one by one, any other value (a list, a mapping) whole."""
    paths: list[str] = []
    for item in dataclasses.fields(old):
        if item.metadata.get("internal"):
            continue
        path = f"{prefix}{item.name}"
        before, after = getattr(old, item.name), getattr(new, item.name)
        if before == after:
            continue
        if dataclasses.is_dataclass(before) and type(before) is type(after):
            paths += differences(before, after, path + ".")
        else:
            paths.append(path)
    return paths


def kind_of(path: str) -> str:
    """"managed", "restart" or "applied"."""
    if any(_covers(rule, path) for rule in MANAGED):
        return "managed"
    if any(_covers(rule, path) for rule in NEEDS_RESTART):
        return "restart"
    return "applied"


def _with_value(config: Any, path: list[str], value: Any) -> Any:
    """A copy of a frozen (nested) dataclass with the field at `path` set to `value`."""
    name, *rest = path
    return dataclasses.replace(config, **{name: _with_value(getattr(config, name), rest, value) if rest else value})


def _value_at(config: Any, path: list[str]) -> Any:
    for name in path:
        config = getattr(config, name)
    return config


@dataclass
class ReloadReport:
    """What a reload did, as the API answers it and the log says it."""

    applied: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)
    managed_in_database: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the file's: then nothing changed

    def as_dict(self) -> dict[str, list[str]]:
        return dataclasses.asdict(self)

    def log_lines(self, path: str = "FILE") -> list[tuple[int, str]]:
        if self.problems:
            return [(logging.ERROR, "configuration reload refused, nothing changed: " + "; ".join(self.problems))]
        lines = [(logging.INFO, "configuration reloaded: applied " + (", ".join(self.applied) or "no change"))]
        if self.restart_required:
            lines.append((logging.WARNING, "configuration: changed in the file but used only at start (restart the "
                                           "controller to apply): " + ", ".join(
                                               f"{path} ({NEEDS_RESTART[_rule(path, NEEDS_RESTART)]})"
                                               for path in self.restart_required)))
        if self.managed_in_database:
            lines.append((logging.WARNING, "configuration: the file's " + ", ".join(self.managed_in_database)
                          + f" differ from the database, which wins; `ccctl config apply {path}` applies them"))
        return lines


def _rule(path: str, rules: dict[str, str]) -> str:
    return next(rule for rule in rules if _covers(rule, path))


def plan(current: Config, from_file: Config) -> tuple[Config, ReloadReport]:
    """The configuration to make live (the running one with every setting that can change taken from the
    file) and the report of what differs, by kind."""
    report = ReloadReport()
    new = current
    for path in differences(current, from_file):
        kind = kind_of(path)
        if kind == "managed":
            report.managed_in_database.append(path)
        elif kind == "restart":
            report.restart_required.append(path)
        else:
            report.applied.append(path)
            steps = path.split(".")
            new = _with_value(new, steps, _value_at(from_file, steps))
    return new, report


class ConfigReloader:
    """Reads the configuration file again and makes what can change live (`live.replace`); one at a time."""

    def __init__(self, path: str | Path, live: LiveConfig) -> None:
        self.path = str(path)  # "": started without a file (tests), nothing to read
        self.live = live
        self._lock = asyncio.Lock()

    async def reload(self) -> ReloadReport:
        async with self._lock:
            try:
                if not self.path:
                    raise SettingsError(["the controller was started without a configuration file"])
                from_file = await asyncio.to_thread(load_config, self.path)
            except SettingsError as exc:
                report = ReloadReport(problems=list(exc.problems))
            else:
                new, report = plan(self.live.current, from_file)
                if report.applied:
                    await self.live.replace(new)
        for level, line in report.log_lines(self.path):
            log.log(level, "%s", line)
        return report
