"""Live administration with a real store: the file's loader on API data, the managed document's round trip,
changes that are all-or-nothing (store, audit and live), guards, seeding once."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import Any

import pytest
import yaml

from controller.config import (
    AcdAgentConfig,
    AcdQueueConfig,
    AcdSettings,
    Config,
    WebhookSettings,
)
from controller.live_config import LiveConfig
from controller.plugins.access.state_persistor import AuditLog
from controller.plugins.admin.kinds import KINDS, document
from controller.plugins.admin.services import AdminRefused, AdminService
from controller.reports.kpis import Standards
from controller.settings import SettingsError, load_data_as, load_yaml_sections
from controller.store.db import StatementFailed, Store, StoreUnavailable
from tests.unit.test_access import Clock
from tests.unit.test_store import disk_full

FILE = Config(
    source="controller.yaml",
    acd=AcdSettings(
        queues=[AcdQueueConfig("general"), AcdQueueConfig("billing", wrapup_seconds=30, overflow="queue:general")],
        agents=[AcdAgentConfig("1001", "Li", "1001", "agent1001", skills={"billing": 5}, queues={"general": 0}),
                AcdAgentConfig("1002", "Wang", "1002", "agent1002", queues={"billing": 1})],
        not_ready_reasons=["meal", "meeting"], standard_prompts={"verify": "Please hold"}, center_name="Hotline"),
    standards=Standards(max_talk_seconds=300),
    dids={"4000": "main"},
    webhooks=[WebhookSettings("crm", "http://127.0.0.1:9/hook", "s3cret-value", types=["call.*"])])


class Published:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, type_: str, **data: Any) -> None:
        self.events.append({"type": type_, **data})


async def admin_service(store: Store, file: Config = FILE) -> tuple[AdminService, Published]:
    published = Published()
    admin = AdminService(store, LiveConfig(file), AuditLog(store, Clock()), Clock(), publish=published)
    await admin.open(file)
    return admin, published


async def stored(store: Store) -> list[tuple[str, str, str]]:
    return [(row["kind"], row["key"], row["data"])
            for row in await store.fetchall("SELECT * FROM admin_items ORDER BY kind, key")]


async def audit_rows(store: Store) -> list[dict[str, Any]]:
    return await AuditLog(store, Clock()).query(action="config.")


# -- the file's loader on API data --

def test_data_gets_the_file_loaders_checks_with_field_paths() -> None:
    with pytest.raises(SettingsError) as error:
        load_data_as(AcdAgentConfig, {"id": "1006", "name": "Zhao", "number": "1006", "endpoint": "agent1006",
                                      "skills": {"billing": "x"}, "colour": "red"}, "agents[1006]")
    assert error.value.problems == [
        "agents[1006].skills.billing: expected an integer, got 'x'",
        "agents[1006]: unknown key 'colour' (expected one of: caller_id, enabled, endpoint, id, name, number, "
        "queues, skills)"]
    with pytest.raises(SettingsError) as error:
        load_data_as(AcdAgentConfig, {"id": "1006"}, "agents[1006]")
    assert "agents[1006]: missing required key 'name'" in error.value.problems
    with pytest.raises(SettingsError) as error:  # the dataclass's own check, as the file gives it
        load_data_as(WebhookSettings, {"name": "x", "url": "u", "secret": "s", "max_attempts": 101}, "webhooks[x]")
    assert error.value.problems == ["webhooks[x]: max_attempts: expected at most 100, got 101"]
    with pytest.raises(SettingsError) as error:  # JSON says what it means: a number is not a string
        load_data_as(AcdAgentConfig, {"id": "1006", "name": "Zhao", "number": 1006, "endpoint": "e"}, "agents[1006]")
    assert error.value.problems == ["agents[1006].number: expected a string, got 1006"]
    agent = load_data_as(AcdAgentConfig, {"id": "1006", "name": "${HOME}", "number": "1006", "endpoint": "e",
                                          "enabled": False}, "agents[1006]")
    assert agent == AcdAgentConfig("1006", "${HOME}", "1006", "e", enabled=False)  # no environment from a request
    with pytest.raises(SettingsError) as error:  # what goes into a dial string is checked for what it is
        load_data_as(AcdAgentConfig, {"id": "1006", "name": "Zhao", "number": "1006", "endpoint": "8001&PJSIP/9"},
                     "agents[1006]")
    assert error.value.problems == ["agents[1006]: endpoint: expected a PJSIP endpoint name (letters, digits, "
                                    "'.', '_', '-', '/'), got '8001&PJSIP/9'"]


def test_a_yaml_text_loads_only_the_managed_sections_with_positions() -> None:
    text = "http:\n  port: 1\ndids:\n  '4001': sales\nacd:\n  agents:\n    - {id: a, name: b, number: '1', " \
           "endpoint: e, skills: {x: y}}\n"
    with pytest.raises(SettingsError) as error:
        load_yaml_sections(Config, text, "new.yaml", ("acd", "dids"))
    assert error.value.problems == ["new.yaml:7:62: acd.agents[0].skills.x: expected an integer, got 'y'"]
    loaded, present, ignored = load_yaml_sections(Config, text.replace("x: y", "x: 3"), "new.yaml", ("acd", "dids"))
    assert (present, ignored) == (["dids", "acd"], ["http"])
    assert loaded.dids == {"4001": "sales"} and loaded.http.port == 8080  # http: ignored, its default


# -- the managed document --

async def test_document_round_trip_is_no_change(store: Store) -> None:
    admin, published = await admin_service(store)
    exported = admin.document()
    assert exported["webhooks"][0]["secret"] == "***"  # never shown
    assert exported["acd"]["agents"][0]["enabled"] is True and exported["dids"] == {"4000": "main"}
    rows = await stored(store)
    assert await admin.apply("user:ops", exported, dry_run=False) == []
    assert await admin.apply("user:ops", yaml.safe_dump(exported, allow_unicode=True), dry_run=False) == []
    assert await stored(store) == rows and admin.live.current == FILE and published.events == []
    # and a real difference is seen (the check above is not blind)
    exported["acd"]["center_name"] = "New"
    changes = await admin.apply("user:ops", exported, dry_run=True)
    assert [c.public() for c in changes] == [{"op": "change", "kind": "acd_setting", "key": "center_name",
                                              "before": "Hotline", "after": "New"}]


async def test_every_kind_maps_items_back_to_the_same_config() -> None:
    for kind in KINDS:
        assert kind.with_items(FILE, kind.items(FILE)) == FILE, kind.name
        items = {key: kind.from_data(key, kind.to_data(value, masked=False)) for key, value in kind.items(FILE).items()}
        assert items == kind.items(FILE), kind.name


async def test_a_dry_run_changes_nothing(store: Store) -> None:
    admin, published = await admin_service(store)
    rows, audit = await stored(store), await audit_rows(store)
    text = yaml.safe_dump({**admin.document(), "dids": {"4000": "main", "4001": "sales"}, "logging": {"level": "x"}})
    notes: list[str] = []
    changes = await admin.apply("user:ops", text, dry_run=True, notes=notes)
    assert [(c.op, c.kind, c.key) for c in changes] == [("add", "did", "4001")]
    assert notes == ["logging: not a managed section, ignored (change it in the file; some need a restart)"]
    assert await stored(store) == rows and await audit_rows(store) == audit
    assert admin.live.current == FILE and published.events == []
    changes = await admin.apply("user:ops", text, dry_run=False)  # the same, for real
    assert admin.live.current.dids == {"4000": "main", "4001": "sales"}
    assert published.events == [{"type": "config.changed", "kind": "did", "key": "4001", "op": "add"}]


# -- changes --

async def test_a_put_is_stored_audited_made_live_and_published(store: Store) -> None:
    admin, published = await admin_service(store)
    seen: list[tuple[Config, Config]] = []
    admin.live.subscribe("test", lambda old, new: seen.append((old, new)))
    body = {"name": "Zhao", "number": "1006", "endpoint": "agent1006", "skills": {"billing": 3},
            "queues": {"billing": 0}}
    changes = await admin.put("user:sup", "agent", "1006", body, role="supervisor")
    assert [(c.op, c.key) for c in changes] == [("add", "1006")]
    assert admin.live.current.acd.agents[-1] == AcdAgentConfig("1006", "Zhao", "1006", "agent1006", {"billing": 3},
                                                               {"billing": 0})
    assert seen == [(FILE, admin.live.current)]
    assert published.events == [{"type": "config.changed", "kind": "agent", "key": "1006", "op": "add"}]
    entry = (await audit_rows(store))[0]
    assert (entry["actor"], entry["role"], entry["action"], entry["target"]) == (
        "user:sup", "supervisor", "config.put", "agent:1006")
    assert entry["before"] is None and entry["after"]["skills"] == {"billing": 3}
    assert await admin.put("user:sup", "agent", "1006", body) == []  # the same again: nothing to do
    # a restart reads the database (the file does not have 1006)
    again, _ = await admin_service(store)
    assert again.live.current == admin.live.current


async def test_a_bad_item_changes_nothing(store: Store) -> None:
    admin, published = await admin_service(store)
    rows, audit = await stored(store), await audit_rows(store)
    bad = [({"name": "Zhao", "number": "1006", "endpoint": "e", "skills": {"billing": "x"}},
            "agents[1006].skills.billing: expected an integer, got 'x'"),
           ({"name": "Zhao", "number": "1006", "endpoint": "e", "queues": {"sales": 0}},
            "agents[1006].queues.sales: no queue 'sales' (queues: billing, general)"),
           ({"id": "1007", "name": "Zhao", "number": "1006", "endpoint": "e"},
            "agents[1006].id: must be '1006' (the key in the path), got '1007'")]
    for body, problem in bad:
        with pytest.raises(AdminRefused) as refused:
            await admin.put("user:sup", "agent", "1006", body)
        assert refused.value.status == 422 and refused.value.problems == [problem]
    with pytest.raises(AdminRefused) as refused:  # removing a queue agents still name
        await admin.delete("user:sup", "queue", "billing")
    assert refused.value.problems == ["agents[1002].queues.billing: no queue 'billing' (queues: general)"]
    with pytest.raises(AdminRefused) as refused:
        await admin.delete("user:sup", "agent", "9999")
    assert refused.value.status == 404
    with pytest.raises(AdminRefused) as refused:  # one bad item in a document: none of it
        await admin.apply("user:ops", {"dids": {"4001": "x"}, "acd": {"agents": [{"id": "1"}]}}, dry_run=False)
    assert refused.value.problems == ["acd.agents[0]: missing required key 'name'",
                                      "acd.agents[0]: missing required key 'number'",
                                      "acd.agents[0]: missing required key 'endpoint'"]
    assert await stored(store) == rows and await audit_rows(store) == audit
    assert admin.live.current == FILE and published.events == []


async def test_a_guard_refuses_and_nothing_changes(store: Store) -> None:
    admin, published = await admin_service(store)
    rows = await stored(store)
    admin.register_guard("queue", lambda old, new: "2 callers are waiting in queue general" if "general" not in
                         {q.name for q in new.acd.queues} else None)
    document_without_general = admin.document()
    document_without_general["acd"]["queues"] = [{**q, "overflow": None} for q in
                                                 document_without_general["acd"]["queues"] if q["name"] != "general"]
    for agent in document_without_general["acd"]["agents"]:
        agent["queues"] = {}
    with pytest.raises(AdminRefused) as refused:
        await admin.apply("user:ops", document_without_general, dry_run=False)
    assert (refused.value.status, refused.value.message) == (409, "2 callers are waiting in queue general")
    assert await stored(store) == rows and admin.live.current == FILE and published.events == []
    await admin.put("user:ops", "queue", "billing", {"wrapup_seconds": 5})  # a queue change the guard allows
    assert admin.live.current.acd.queues[1].wrapup_seconds == 5


async def test_a_check_hook_refuses(store: Store) -> None:
    admin, _ = await admin_service(store)
    admin.register_check(lambda config: [f"dids[{did}]: no flow {flow!r}" for did, flow in config.dids.items()
                                         if flow != "main"])
    with pytest.raises(AdminRefused) as refused:
        await admin.put("user:ops", "did", "4001", "nope")
    assert refused.value.problems == ["dids[4001]: no flow 'nope'"]
    await admin.put("user:ops", "did", "4001", "main")
    assert admin.live.current.dids == {"4000": "main", "4001": "main"}


async def test_a_webhook_secret_is_masked_and_kept(store: Store) -> None:
    admin, _ = await admin_service(store)
    hook = admin.item("webhook", "crm")["value"]
    assert hook["secret"] == "***"
    changes = await admin.put("user:ops", "webhook", "crm", {**hook, "timeout": 2.0})
    assert admin.live.current.webhooks[0].secret == "s3cret-value" and admin.live.current.webhooks[0].timeout == 2
    assert changes[0].public()["after"]["secret"] == "***" and changes[0].public()["before"]["secret"] == "***"
    entry = (await audit_rows(store))[0]
    assert "s3cret-value" not in json.dumps(entry)
    with pytest.raises(AdminRefused) as refused:
        await admin.put("user:ops", "webhook", "new", {**hook, "name": "new"})
    assert refused.value.problems == ["webhooks[new].secret: *** keeps the current secret, but there is no webhook "
                                      "'new' yet: give the secret"]


async def test_settings_and_singletons(store: Store) -> None:
    admin, _ = await admin_service(store)
    await admin.put_items("user:ops", "acd_setting", {"center_name": "热线", "outbound_wrapup_seconds": 10})
    assert (admin.live.current.acd.center_name, admin.live.current.acd.outbound_wrapup_seconds) == ("热线", 10.0)
    await admin.put_items("user:ops", "acd_setting", {"outbound_agent_ring_seconds": 20})  # the next click-to-dial
    assert admin.live.current.acd.outbound_agent_ring_seconds == 20.0
    with pytest.raises(AdminRefused) as refused:
        await admin.put_items("user:ops", "acd_setting", {"outbound_customer_ring_seconds": 2})
    assert "outbound_customer_ring_seconds: expected 5 to 120 seconds" in refused.value.problems[0], refused.value
    assert admin.live.current.acd.outbound_customer_ring_seconds == 30.0  # unchanged
    await admin.put("user:ops", "standards", "standards", {"max_talk_seconds": 200})
    assert admin.live.current.standards == Standards(max_talk_seconds=200)
    with pytest.raises(AdminRefused) as refused:
        await admin.put("user:ops", "standards", "standards", {"service_level_target": 2})
    assert refused.value.problems == ["standards: service_level_target: expected a fraction from 0 to 1 (0.8 for "
                                      "80%), got 2.0"]
    with pytest.raises(AdminRefused) as refused:
        await admin.delete("user:ops", "standards", "standards")
    assert refused.value.status == 409
    await admin.put("user:sup", "not_ready_reason", "lunch", None)
    await admin.delete("user:sup", "not_ready_reason", "meal")
    assert admin.live.current.acd.not_ready_reasons == ["meeting", "lunch"]
    again, _ = await admin_service(store)
    assert again.live.current == admin.live.current  # the order too


# -- start --

async def test_the_file_seeds_once_then_the_database_wins(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await admin_service(store)
    seed = [entry for entry in await audit_rows(store) if entry["action"] == "config.seed"]
    assert len(seed) == 1 and seed[0]["actor"] == "config-file"
    assert "s3cret-value" not in json.dumps(seed)
    changed_file = replace(FILE, dids={"4000": "other"}, webhooks=[])
    with caplog.at_level(logging.WARNING, "controller.admin"):
        again, _ = await admin_service(store, changed_file)
    assert again.live.current.dids == {"4000": "main"} and again.live.current.webhooks == FILE.webhooks
    assert "the configuration file's dids, webhooks differ from the database" in caplog.text
    assert len([e for e in await audit_rows(store) if e["action"] == "config.seed"]) == 1
    # an emptied database (every item removed) is not seeded again
    for reason in ("meal", "meeting"):
        await again.delete("user:ops", "not_ready_reason", reason)
    third, _ = await admin_service(store)
    assert third.live.current.acd.not_ready_reasons == []


async def test_a_group_of_statements_commits_all_or_nothing(store: Store) -> None:
    ok = ("INSERT INTO admin_meta (name, value) VALUES (?, ?)", ("a", "1"))
    with pytest.raises(StatementFailed):
        await store.execute_atomic([ok, ("INSERT INTO admin_meta (name, value) VALUES (?, ?)", ("a", "2"))])
    assert await store.fetchall("SELECT * FROM admin_meta") == []
    store.write("INSERT INTO admin_meta (name, value) VALUES ('b', '1')")  # batched with the next group
    await store.execute_atomic([ok])
    assert [row["name"] for row in await store.fetchall("SELECT name FROM admin_meta ORDER BY name")] == ["a", "b"]


def test_the_document_has_the_files_layout() -> None:
    exported = document(FILE)
    loaded = load_yaml_sections(Config, yaml.safe_dump(document(FILE, masked=False)), "x", ("acd", "standards",
                                                                                         "dids", "webhooks"))[0]
    assert replace(FILE, source="") == replace(loaded, source="", data_dir=FILE.data_dir)
    assert list(exported) == ["acd", "standards", "dids", "webhooks"]


async def test_a_problem_the_file_already_had_does_not_block_other_changes(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    broken = replace(FILE, acd=replace(FILE.acd, agents=[*FILE.acd.agents, AcdAgentConfig(
        "1003", "Zhang", "1003", "agent1003", queues={"sales": 0})]))  # no queue sales: the file's mistake
    with caplog.at_level(logging.WARNING, "controller.admin"):
        admin, _ = await admin_service(store, broken)
    assert "configuration: agents[1003].queues.sales: no queue 'sales'" in caplog.text  # said at start
    await admin.put("user:ops", "did", "4001", "main")
    assert admin.live.current.dids == {"4000": "main", "4001": "main"}
    with pytest.raises(AdminRefused) as refused:  # a new problem of the same sort is still refused
        await admin.put("user:ops", "agent", "1004", {"name": "Sun", "number": "1004", "endpoint": "e",
                                                      "queues": {"sales": 0}})
    assert refused.value.problems == ["agents[1004].queues.sales: no queue 'sales' (queues: billing, general)"]


async def test_a_failing_subscriber_does_not_keep_the_others_from_the_change(caplog: pytest.LogCaptureFixture) -> None:
    live = LiveConfig(FILE)
    told: list[str] = []

    def failing(old: Config, new: Config) -> None:
        raise RuntimeError("boom")

    async def asynchronous(old: Config, new: Config) -> None:
        told.append(f"async {old.dids} -> {new.dids}")

    live.subscribe("failing", failing)
    live.subscribe("async", asynchronous)
    live.subscribe("plain", lambda old, new: told.append("plain"))
    new = replace(FILE, dids={})
    with caplog.at_level(logging.ERROR, "controller.config"):
        await live.replace(new)
    assert live.current is new and told == ["async {'4000': 'main'} -> {}", "plain"]
    assert "live configuration: failing failed to apply the change" in caplog.text


async def test_a_change_the_store_cannot_write_now_is_live_and_committed_later(store: Store) -> None:
    admin, published = await admin_service(store)
    await disk_full(store, True)
    with pytest.raises(StoreUnavailable):  # the API answers 503 with why
        await admin.put("user:ops", "standard_prompt", "terms", "x" * 6000)
    assert admin.live.current.acd.standard_prompts["terms"] == "x" * 6000  # live follows what will be stored
    assert published.events == [{"type": "config.changed", "kind": "standard_prompt", "key": "terms", "op": "add"}]
    await disk_full(store, False)
    assert await store._commit_pending()  # the writer's retry
    assert ("standard_prompt", "terms", json.dumps("x" * 6000)) in await stored(store)
    assert (await audit_rows(store))[0]["target"] == "standard_prompt:terms"
