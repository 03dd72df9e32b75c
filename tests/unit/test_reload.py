"""Reload means reload: which settings of a re-read configuration file go live, which need a restart and which
the database manages; a bad file changes nothing."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.config import AcdAgentConfig, AcdSettings, Config, DialingSettings, HttpSettings, LoggingSettings
from controller.live_config import LiveConfig
from controller.plugins.reload.services import MANAGED, NEEDS_RESTART, ConfigReloader, differences, kind_of, plan


def test_a_reload_applies_what_can_change_keeps_the_rest_and_says_which_is_which() -> None:
    current = Config(acd=AcdSettings(agents=[AcdAgentConfig("1001", "王芳", "1001", "8001")]))
    from_file = replace(current, logging=LoggingSettings(level="debug", format="json"),
                        dialing=replace(current.dialing, denied_prefixes=["00", "+", "139"]),
                        http=HttpSettings(port=9090), data_dir="/elsewhere",
                        acd=AcdSettings(agents=[AcdAgentConfig("1001", "王芳芳", "1001", "8001")]),
                        dids={"4008001234": "hotline"})
    new, report = plan(current, from_file)
    assert report.applied == ["logging.level", "logging.format", "dialing.denied_prefixes"]
    assert report.restart_required == ["data_dir", "http.port"]
    assert report.managed_in_database == ["dids", "acd.agents"]
    assert (new.logging.level, new.logging.format, new.dialing.denied_prefixes) == ("debug", "json", ["00", "+", "139"])
    assert (new.http.port, new.data_dir) == (8080, current.data_dir)  # the running values stay
    assert new.acd == current.acd and new.dids == {}  # the database's
    lines = report.log_lines("/etc/ccc/controller.yaml")
    assert lines[0] == (logging.INFO, "configuration reloaded: applied logging.level, logging.format, "
                                      "dialing.denied_prefixes")
    assert lines[1][0] == logging.WARNING and "http.port (the HTTP server listens from the start)" in lines[1][1]
    assert lines[2] == (logging.WARNING, "configuration: the file's dids, acd.agents differ from the database, which "
                                         "wins; `ccctl config apply /etc/ccc/controller.yaml` applies them")
    assert plan(current, current)[1].as_dict() == {"applied": [], "restart_required": [],
                                                     "managed_in_database": [], "problems": []}


def _leaf_paths(cls: type, prefix: str = "") -> list[str]:
    paths = []
    for item in dataclasses.fields(cls):
        if item.metadata.get("internal"):
            continue
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        if dataclasses.is_dataclass(default):
            paths += _leaf_paths(type(default), f"{prefix}{item.name}.")
        else:
            paths.append(f"{prefix}{item.name}")
    return paths


def test_every_rule_names_a_real_setting_and_every_setting_has_a_kind() -> None:
    leaves = _leaf_paths(Config)
    for rule in (*NEEDS_RESTART, *MANAGED):
        assert any(leaf == rule or leaf.startswith(rule + ".") for leaf in leaves), rule
    kinds = {leaf: kind_of(leaf) for leaf in leaves}
    assert kinds["http.port"] == kinds["ari.url"] == kinds["http.tls_cert"] == "restart"
    assert kinds["acd.agents"] == kinds["webhooks"] == kinds["users"] == kinds["tokens"] == "managed"
    assert kinds["logging.level"] == kinds["dialing.allowed_prefixes"] == kinds["auth.idle_minutes"] == "applied"
    assert kinds["customers.tier_url"] == kinds["retention.calls_days"] == kinds["asterisk.trunk_dial"] == "applied"
    assert kinds["auth.min_password_length"] == "restart"  # the OpenAPI document's password schema


def write(path: Path, **sections: object) -> Path:
    path.write_text(yaml.safe_dump(sections, allow_unicode=True))
    return path


async def test_the_reloader_replaces_the_live_configuration_and_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "controller.yaml", data_dir=str(tmp_path))
    from controller.config import load_config
    live = LiveConfig(load_config(path))
    seen: list[tuple[str, str]] = []
    live.subscribe("test", lambda old, new: seen.append((old.logging.level, new.logging.level)))
    reloader = ConfigReloader(path, live)
    assert (await reloader.reload()).applied == [] and seen == []  # nothing changed: no replacement
    write(path, data_dir=str(tmp_path), logging={"level": "debug"}, dialing={"denied_prefixes": ["00"]})
    report = await reloader.reload()
    assert report.applied == ["logging.level", "dialing.denied_prefixes"] and seen == [("info", "debug")]
    before = live.current
    path.write_text(f"data_dir: {tmp_path}\nlogging:\n  level: loud\n")
    refused = await reloader.reload()
    assert refused.problems == [f"{path}:3:10: logging.level: expected one of debug, info, warning, error, got 'loud'"]
    assert live.current is before and len(seen) == 1


async def test_without_a_file_a_reload_says_so() -> None:
    report = await ConfigReloader("", LiveConfig(Config())).reload()
    assert report.problems == ["the controller was started without a configuration file"]


@pytest.mark.parametrize("path", ["dialing", "dialing.rate_limit_calls"])
def test_differences_go_down_to_fields(path: str) -> None:
    changed = replace(Config(), dialing=DialingSettings(rate_limit_calls=3))
    assert differences(Config(), changed) == ["dialing.rate_limit_calls"]
    assert kind_of(path) == "applied"


async def test_a_reload_during_an_admin_change_is_kept(tmp_path: Path) -> None:
    """An admin change built before a reload and stored after it must not put the file's old settings back."""
    import asyncio

    from controller.plugins.access.state_persistor import AuditLog
    from controller.plugins.admin.services import AdminService
    from controller.store.db import Store

    path = write(tmp_path / "controller.yaml", data_dir=str(tmp_path), acd={"queues": [{"name": "general"}]})
    from controller.config import load_config
    live = LiveConfig(load_config(path))
    store = Store(tmp_path / "s.sqlite3")
    await store.open()
    try:
        admin = AdminService(store, live, AuditLog(store, lambda: 0.0), lambda: 0.0)
        await admin.open(live.current)
        writing, reloaded = asyncio.Event(), asyncio.Event()
        execute_atomic = store.execute_atomic

        async def slow_write(statements: Any) -> Any:
            writing.set()
            await reloaded.wait()
            return await execute_atomic(statements)

        store.execute_atomic = slow_write  # type: ignore[method-assign]
        change = asyncio.create_task(admin.put("token:ops", "queue", "billing", {"name": "billing"}))
        await writing.wait()
        write(path, data_dir=str(tmp_path), acd={"queues": [{"name": "general"}]}, logging={"level": "debug"})
        assert (await ConfigReloader(path, live).reload()).applied == ["logging.level"]
        reloaded.set()
        await change
        assert live.current.logging.level == "debug"  # the reload stays
        assert [queue.name for queue in live.current.acd.queues] == ["general", "billing"]  # and the change is made
    finally:
        await store.close()
