"""Several Asterisk servers: the nodes' configuration, dial strings across nodes, the trunks rendered, and
the ACD's agents on a node that is down (the real nodes: tests/e2e/test_multinode.py)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from controller.acd.engine import AcdEngine, AcdError
from controller.acd.model import PHONE_UNREACHABLE, AgentSettings, AgentStateChanged, Offer, QueueSettings
from controller.clock import FakeClock
from controller.config import DEFAULT_NODE, AriSettings, Config, NodeSettings, load_config
from controller.deploy.render import render_node_trunks
from controller.nodes import NodeDialing, Nodes
from controller.settings import SettingsError


def two_nodes(**overrides: object) -> Config:
    return Config(nodes=[NodeSettings("a", AriSettings(url="http://10.0.0.1:8088/ari"), sip_address="10.0.0.1:5060"),
                         NodeSettings("b", AriSettings(url="http://10.0.0.2:8088/ari"), sip_address="10.0.0.2:5060")],
                  **overrides)  # type: ignore[arg-type]


def test_without_nodes_the_ari_and_ami_sections_are_the_one_node() -> None:
    config = Config(ari=AriSettings(url="http://pbx:8088/ari", app="cc"))
    (node,) = config.asterisk_nodes
    assert (node.name, node.ari.url, node.ari.app) == (DEFAULT_NODE, "http://pbx:8088/ari", "cc")
    nodes = Nodes(config)
    assert nodes.default.ari.node == DEFAULT_NODE
    assert nodes.default.ari.dial_route("PJSIP/8001") == "PJSIP/8001"  # one node: dial strings as given


def test_a_nodes_list_is_read_from_the_file_and_its_first_node_is_ari(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("nodes:\n"
                    "  - {name: a, ari: {url: 'http://10.0.0.1:8088/ari', password: x}, sip_address: '10.0.0.1:5060'}\n"
                    "  - {name: b, ari: {url: 'http://10.0.0.2:8088/ari', password: x}, ami: {host: 10.0.0.2}}\n")
    config = load_config(path)
    assert [node.name for node in config.asterisk_nodes] == ["a", "b"]
    assert config.ari.url == "http://10.0.0.1:8088/ari"  # what reads `ari` (the app's name…) reads node a's
    assert config.asterisk_nodes[1].ami.host == "10.0.0.2"


@pytest.mark.parametrize(("yaml_text", "problem"), [
    ("nodes:\n  - {name: a}\n  - {name: a}\n", "each name once"),
    ("nodes:\n  - {name: 'a b'}\n", "letters, digits"),
    ("nodes:\n  - {name: a, ari: {app: x}}\n  - {name: b, ari: {app: y}}\n", "same ARI application"),
    ("nodes:\n  - {name: a}\nacd:\n  agents:\n    - {id: '1', name: x, number: '1', endpoint: c/8001}\n",
     "endpoint 'c/8001' names no node \\(nodes: a;"),
])
def test_bad_nodes_are_refused_with_a_clear_error(tmp_path: Path, yaml_text: str, problem: str) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text(yaml_text)
    with pytest.raises(SettingsError, match=problem):
        load_config(path)


async def test_a_live_change_naming_no_node_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    from controller.live_config import LiveConfig
    from controller.plugins.access.state_persistor import AuditLog
    from controller.plugins.admin.services import AdminRefused, AdminService
    from controller.store.db import Store

    store = Store(tmp_path / "db.sqlite3")
    await store.open()
    writer = asyncio.create_task(store.run_writer())
    try:
        live = LiveConfig(two_nodes())
        admin = AdminService(store, live, AuditLog(store, time.time), time.time)
        await admin.open(live.current)
        agent = {"name": "x", "number": "9", "endpoint": "c/8001"}
        with pytest.raises(AdminRefused) as refused:
            await admin.put("test", "agent", "9", agent)
        assert any("names no node" in problem for problem in refused.value.problems), refused.value.problems
        assert live.current.acd.agents == []
        assert await admin.put("test", "agent", "9", {**agent, "endpoint": "b/8001"})
        assert [a.endpoint for a in live.current.acd.agents] == ["b/8001"]
    finally:
        writer.cancel()
        await store.close()


def test_a_phone_names_its_node_and_is_dialled_through_the_trunk_from_the_others() -> None:
    dialing = NodeDialing(["a", "b"])
    assert dialing.split_phone("b/8002") == ("b", "8002")
    assert dialing.split_phone("8001") == ("a", "8001")  # no node: the first one
    assert dialing.split_phone("x/8001") == ("a", "x/8001")  # not a node's name: the endpoint as written
    assert dialing.route("a", "PJSIP/b/8002") == "PJSIP/8002@ccc-node-b"
    assert dialing.route("b", "PJSIP/b/8002") == "PJSIP/8002"
    assert dialing.route("b", "PJSIP/8001") == "PJSIP/8001@ccc-node-a"
    assert dialing.route("b", "PJSIP/13900001111@loopback-trunk") == "PJSIP/13900001111@loopback-trunk"
    assert dialing.route("b", "Local/100@ctx") == "Local/100@ctx"
    assert dialing.node_of_dial("PJSIP/b/8002") == "b" and dialing.node_of_dial("PJSIP/1@trunk") == "a"


def test_each_node_client_routes_the_dial_strings_it_originates() -> None:
    nodes = Nodes(two_nodes())
    assert nodes.client("a").dial_route("PJSIP/b/8002") == "PJSIP/8002@ccc-node-b"
    assert nodes.client("b").dial_route("PJSIP/b/8002") == "PJSIP/8002"
    assert nodes.client_for_dial("PJSIP/b/8002") is nodes.client("b")  # click-to-dial: on the phone's node
    assert nodes.client("gone") is nodes.client("a")  # a stored call of a node no longer configured


def test_the_trunks_of_a_node_reach_every_other_node_and_take_their_calls() -> None:
    parts = render_node_trunks(two_nodes(), "a")
    pjsip = parts["pjsip.conf"]
    assert "[ccc-node-b]\ntype = aor\ncontact = sip:10.0.0.2:5060" in pjsip
    assert "type = identify\nendpoint = ccc-node-b\nmatch = 10.0.0.2" in pjsip
    assert "ccc-node-a" not in pjsip  # no trunk to itself
    assert "context = ccc-from-nodes" in pjsip
    assert "Dial(PJSIP/${EXTEN},,)" in parts["ccc-nodes.conf"]
    with pytest.raises(ValueError, match="no node 'c'"):
        render_node_trunks(two_nodes(), "c")


async def test_a_node_is_down_only_after_its_stream_stayed_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("controller.nodes.DOWN_AFTER", 0.05)
    nodes = Nodes(two_nodes())
    downs: list[str] = []
    ups: list[str] = []
    nodes.on_down.append(downs.append)
    nodes.on_up.append(ups.append)
    nodes.disconnected("b")
    nodes.connected("b")  # back within DOWN_AFTER: a blip, not down
    await asyncio.sleep(0.1)
    assert downs == [] and nodes.phone_reachable("b/8002")
    nodes.disconnected("b")
    await asyncio.sleep(0.1)
    assert downs == ["b"] and not nodes.phone_reachable("b/8002") and nodes.phone_reachable("a/8001")
    assert nodes.health()["b"]["down"] is True and nodes.health()["a"]["down"] is False
    nodes.connected("b")
    assert ups == ["b"] and nodes.phone_reachable("b/8002")


def engine_with_phones() -> tuple[AcdEngine, set[str]]:
    unreachable: set[str] = set()
    agents = [AgentSettings("1001", "A", "1001", "a/8001", queues={"q": 0}),
              AgentSettings("1002", "B", "1002", "b/8002", queues={"q": 0})]
    engine = AcdEngine([QueueSettings("q")], agents, FakeClock())
    engine.phone_reachable = lambda endpoint: endpoint.split("/")[0] not in unreachable
    return engine, unreachable


def states(decisions: list[object]) -> list[tuple[str, str, str | None]]:
    return [(d.agent_id, d.state, d.reason) for d in decisions if isinstance(d, AgentStateChanged)]


def test_agents_whose_phone_is_on_a_node_that_is_down_are_not_ready_until_it_is_back() -> None:
    engine, unreachable = engine_with_phones()
    engine.login("1001")
    engine.login("1002")
    unreachable.add("b")
    assert states(engine.phones_unreachable()) == [("1002", "not_ready", PHONE_UNREACHABLE)]
    assert [(d.agent_id) for d in engine.enqueue("c1", "q") if isinstance(d, Offer)] == ["1001"]
    with pytest.raises(AcdError):  # not a reason agents choose themselves
        engine.not_ready("1001", PHONE_UNREACHABLE)
    unreachable.clear()
    assert states(engine.phones_reachable_again()) == [("1002", "ready", None)]


def test_an_agent_who_chose_another_state_meanwhile_keeps_it_when_the_node_is_back() -> None:
    engine, unreachable = engine_with_phones()
    engine.login("1002")
    unreachable.add("b")
    engine.phones_unreachable()
    engine.not_ready("1002", "meal")
    unreachable.clear()
    assert engine.phones_reachable_again() == []
    assert engine.agent("1002").reason == "meal"


def test_an_agent_logging_in_on_a_phone_whose_node_is_down_is_not_ready() -> None:
    engine, unreachable = engine_with_phones()
    unreachable.add("b")
    assert states(engine.login("1002")) == [("1002", "not_ready", PHONE_UNREACHABLE)]
