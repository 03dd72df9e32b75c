"""The live configuration's appliers for DIDs, service standards and standard prompts (webhooks:
test_live_webhooks.py): a change reaches the next decision, never a call in progress."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from controller.acd.engine import AcdError
from controller.acd.model import Offer
from controller.app import Controller
from controller.clock import FakeClock
from controller.config import (
    AcdAgentConfig,
    AcdQueueConfig,
    AcdSettings,
    Config,
    IvrSettings,
    TokenSettings,
    WebhookSettings,
)
from controller.http.server import build_app
from controller.ivr.port import Prompt
from controller.ivr.repository import FlowRepository
from controller.plugins.acd import resources as acd_resources
from controller.plugins.acd.services import AcdService
from controller.plugins.ivr.services import IvrService
from controller.plugins.reports.services import ReportService
from controller.reports.kpis import Standards
from tests.unit.test_acd_calls import Records, Rig, rig  # noqa: F401 (fixture)

FLOW = "flow: {id}\ndids: [\"{did}\"]\nnodes:\n  a: {{type: hangup, prompt: [\"sound:{id}\"]}}\n"


def flows(tmp_path: Path) -> Path:
    for flow_id, did in (("sales", "100"), ("support", "200")):
        (tmp_path / f"{flow_id}.yaml").write_text(FLOW.format(id=flow_id, did=did))
    return tmp_path


def with_dids(config: Config, dids: dict[str, str]) -> Config:
    return dataclasses.replace(config, dids=dids)


def ivr_service(tmp_path: Path, dids: dict[str, str] | None = None) -> IvrService:
    async def unused(*args: Any) -> Any:
        raise AssertionError("not in these tests")

    config = Config(ivr=IvrSettings(flows_dir=str(flows(tmp_path))), dids=dids or {})
    service = IvrService(config=config, clock=FakeClock(), store=None, publish=print,  # type: ignore[arg-type]
                         media_for=unused, http=unused, enqueue=None, fallback=unused)  # type: ignore[arg-type]
    assert service.load() == []
    return service


def test_did_overrides_change_the_next_calls_flow_not_a_snapshot_in_use(tmp_path: Path) -> None:
    repository = FlowRepository(flows(tmp_path), did_overrides={"300": "sales"})
    assert repository.load().ok
    in_progress = repository.snapshot
    repository.set_did_overrides({"300": "support", "100": "support"})
    assert repository.flow_for_did("300").id == "support"  # type: ignore[union-attr]
    assert repository.flow_for_did("100").id == "support"  # type: ignore[union-attr]  # overrides the flow's own
    assert repository.flow_for_did("200").id == "support"  # type: ignore[union-attr]
    assert in_progress.flow_for_did("300").id == "sales"  # type: ignore[union-attr]  # a call keeps its flow
    repository.set_did_overrides({})
    assert repository.flow_for_did("300") is None and repository.flow_for_did("100").id == "sales"  # type: ignore[union-attr]
    assert repository.reload().ok and repository.flow_for_did("300") is None  # a reload keeps the live DIDs


async def test_the_ivr_follows_the_managed_dids(tmp_path: Path) -> None:
    service = ivr_service(tmp_path, {"300": "sales"})
    old = service.config
    await service.apply_dids(old, with_dids(old, {"300": "support", "400": "sales"}))
    assert (service.flow_for_did("300"), service.flow_for_did("400")) == ("support", "sales")
    await service.apply_dids(old, with_dids(old, {}))
    assert service.flow_for_did("300") is None and service.flow_for_did("100") == "sales"


def test_a_did_naming_a_flow_that_is_not_loaded_is_a_problem_with_its_path(tmp_path: Path) -> None:
    service = ivr_service(tmp_path)
    assert service.did_problems(with_dids(service.config, {"300": "sales"})) == []
    assert service.did_problems(with_dids(service.config, {"300": "nope", "100": "sales"})) == [
        "dids[300]: flow 'nope' is not loaded (loaded: sales, support)"]


def standards_and_prompts(config: Config, prompts: dict[str, str], **standards: float) -> Config:
    return dataclasses.replace(config, standards=Standards(**standards),
                               acd=dataclasses.replace(config.acd, standard_prompts=prompts))


async def unused_media(prompt: Prompt) -> str:
    raise AssertionError("no prompt in this test")


async def test_standards_change_the_next_check_and_reports(rig: Rig) -> None:  # noqa: F811
    published: list[dict[str, Any]] = []
    rig.acd.publish = lambda event_type, **fields: published.append({"type": event_type, **fields})
    await rig.connect()
    rig.clock.advance(100)
    rig.acd.check_standards()

    def alerts() -> list[tuple[str, float]]:
        return [(e["kind"], e["threshold"]) for e in published if e["type"] == "alert.raised"]

    assert alerts() == []  # within max_talk_seconds (180 by default)
    reports = ReportService(config=rig.acd.config, store=None, acd=rig.acd, clock=rig.clock)  # type: ignore[arg-type]
    config = rig.acd.config
    await rig.acd.live_config.replace(standards_and_prompts(config, {}, max_talk_seconds=60))
    rig.acd.check_standards()
    assert alerts() == [("talk", 60)]
    assert reports.standards.max_talk_seconds == 60


async def test_the_next_play_uses_the_prompt_as_changed_and_a_removed_one_is_refused(rig: Rig) -> None:  # noqa: F811
    played: list[Prompt] = []

    async def media_for(prompt: Prompt) -> str:
        played.append(prompt)
        return "sound:x"

    rig.acd.media_for = media_for
    await rig.connect()
    config = rig.acd.config
    await rig.acd.live_config.replace(standards_and_prompts(config, {"fees": "免收手续费。", "hours": "sound:hours"}))
    assert (await (await rig.command("play", target="fees")))["played"] == "fees"
    assert (await (await rig.command("play", target="hours")))["played"] == "hours"
    assert played == [Prompt("tts", "免收手续费。", "zh"), Prompt("sound", "hours", "zh")]
    await rig.acd.live_config.replace(standards_and_prompts(config, {"hours": "sound:hours"}))
    with pytest.raises(AcdError, match="no standard prompt 'fees' \\(configured: hours\\)"):
        await (await rig.command("play", target="fees"))


async def test_playing_a_prompt_that_is_not_administered_answers_404(rig: Rig) -> None:  # noqa: F811
    await rig.connect()
    config = rig.acd.config
    await rig.acd.live_config.replace(standards_and_prompts(config, {"hours": "sound:hours"}))
    tokens = [TokenSettings("sup", "sup-token", "supervisor")]
    app = build_app(tokens, acd_resources.routes(rig.acd, is_live=lambda call_id: call_id == "C1"))
    async with TestClient(TestServer(app)) as client:
        headers = {"Authorization": "Bearer sup-token"}
        response = await client.post("/api/calls/C1/play", json={"prompt": "fees"}, headers=headers)
        assert response.status == 404 and "configured: hours" in (await response.json())["error"]
        response = await client.post("/api/calls/C1/play", json={"prompt": "hours"}, headers=headers)
        assert response.status == 200, await response.text()  # the positive check


async def test_the_controller_wires_the_appliers_and_the_retention_jobs_webhook_names(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    file = Config(data_dir=str(tmp_path / "data"), ivr=IvrSettings(flows_dir=str(flows(tmp_path / "flows"))),
                  webhooks=[WebhookSettings("crm", "http://127.0.0.1:9/e", "s")])
    controller = Controller(file)
    await controller.store.open()
    try:
        assert controller.ivr.did_problems(with_dids(file, {"400": "nope"})) == []  # the flows are not read yet
        controller.ivr.load()
        assert controller.retention.webhooks == ["crm"]
        new = dataclasses.replace(file, dids={"300": "support"}, standards=Standards(max_talk_seconds=60),
                                  webhooks=[WebhookSettings("erp", "http://127.0.0.1:9/e", "s2")],
                                  acd=dataclasses.replace(file.acd, standard_prompts={"hours": "sound:hours"}))
        await controller.live.replace(new)
        assert controller.retention.webhooks == ["erp"] and list(controller.webhooks.webhooks) == ["erp"]
        assert controller.webhooks.webhooks["erp"].secret == "s2"
        assert controller.ivr.flow_for_did("300") == "support"
        assert controller.acd.standards.max_talk_seconds == 60
        assert controller.acd.standard_prompts == {"hours": "sound:hours"}
        assert controller.ivr.did_problems in controller.admin.checks
    finally:
        await controller.store.close()


def test_a_reload_that_drops_a_live_dids_flow_is_refused_and_says_where_the_did_is_set(tmp_path: Path) -> None:
    config_file = tmp_path / "controller.yaml"
    config_file.write_text('dids:\n  "300": sales\n')
    (tmp_path / "flows").mkdir()
    repository = FlowRepository(flows(tmp_path / "flows"), did_overrides={"300": "sales"},
                                config_source=str(config_file))
    assert repository.load().ok
    repository.set_did_overrides({"300": "sales", "400": "support"})  # 400: set through the API
    (tmp_path / "flows" / "support.yaml").unlink()
    (tmp_path / "flows" / "sales.yaml").unlink()
    result = repository.reload()
    assert [str(error) for error in result.errors] == [
        f"{config_file}:2:10: dids: 300 goes to flow 'sales', which does not exist (loaded: none)",
        "live configuration (/api/config/dids):1:1: dids: 400 goes to flow 'support', which does not exist"
        " (loaded: none)"]
    assert repository.flow_for_did("400").id == "support"  # type: ignore[union-attr]  # the live flows stay


async def test_the_standards_check_reads_each_agents_standing_not_a_full_view(rig: Rig) -> None:  # noqa: F811
    """The check runs every second for every agent, whatever the call rate: it reads their state, since when and call,
    and builds no `AgentView` (counters, a copy of the seconds per state: ~10x the work). It still alerts."""
    published: list[dict[str, Any]] = []
    rig.acd.publish = lambda event_type, **fields: published.append({"type": event_type, **fields})
    await rig.connect()
    views = [0]
    agent = rig.acd.engine.agent

    def counted_agent(agent_id: str) -> Any:
        views[0] += 1
        return agent(agent_id)

    rig.acd.engine.agent = counted_agent  # type: ignore[method-assign]
    rig.clock.advance(200)  # beyond max_talk_seconds (180 by default)
    rig.acd.check_standards()
    assert [(e["kind"], e["agent_id"], e["call_id"]) for e in published if e["type"] == "alert.raised"] == [
        ("talk", "a1", "C1")]
    assert views == [0]


async def test_the_standards_check_reads_what_a_standard_limits_not_every_agent_and_queue() -> None:
    """The check runs every second, whatever the call rate: it reads the agents in a state a standard limits (talking,
    on hold, ACW) and the queues with calls, not every agent and queue of the center (at 500 agents in 20 queues
    it was ~4x its work with 100 in 2, for no alert more: README "Benchmarks"). It still alerts on what it reads."""
    published: list[dict[str, Any]] = []
    queues = [AcdQueueConfig(name=f"q{q}", announce_interval=0, wrapup_seconds=0, announce_agent_number=False,
                             no_agents="wait") for q in range(6)]
    agents = [AcdAgentConfig(id=f"a{n}", name="", number=f"{1000 + n}", endpoint=f"{8000 + n}",
                             queues={f"q{n % 6}": 0}) for n in range(60)]
    clock = FakeClock()
    acd = AcdService(config=Config(acd=AcdSettings(queues=queues, agents=agents)), clock=clock, records=Records(),
                     publish=lambda event_type, **fields: published.append({"type": event_type, **fields}),
                     media_for=unused_media)  # type: ignore[arg-type]
    for agent in agents:
        if agent.queues != {"q5": 0}:  # q5's agents stay logged out: its call waits
            acd.command("login", agent.id)
    engine = acd.engine
    (talking,) = [d.agent_id for d in engine.enqueue("C1", "q0") if isinstance(d, Offer)]
    engine.answered("C1", talking)
    engine.enqueue("C2", "q5")
    standings, stats, waiting = [0], [0], []
    standings_of, queue_stats, waiting_in = engine.standings, engine.queue_stats, engine.waiting

    def counted_standings(*args: Any) -> Any:
        read = standings_of(*args)
        standings[0] += len(read)
        return read

    def counted_stats(name: str) -> Any:
        stats[0] += 1
        return queue_stats(name)

    def counted_waiting(name: str) -> Any:
        waiting.append(name)
        return waiting_in(name)

    engine.standings, engine.queue_stats, engine.waiting = (  # type: ignore[method-assign]
        counted_standings, counted_stats, counted_waiting)
    clock.advance(200)  # beyond max_talk_seconds (180 by default), within max_wait_seconds (600)
    acd.check_standards()
    assert [(e["kind"], e["agent_id"], e["call_id"]) for e in published if e["type"] == "alert.raised"] == [
        ("talk", talking, "C1")]
    assert (standings, stats, waiting) == ([1], [0], ["q5"])  # the agent talking; the queue with a call
