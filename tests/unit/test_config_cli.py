"""ccctl's configuration commands without a controller: the difference as a readable list, the agents' and
queues' options as the configuration file's fields."""

from __future__ import annotations

import pytest

from controller.cli.config import field_changes, render_changes, summary
from controller.cli.main import build_parser
from controller.cli.managed import AGENTS, QUEUES, _body_from_args

CHANGES = [
    {"op": "add", "kind": "agent", "key": "1006", "before": None,
     "after": {"id": "1006", "name": "王芳", "number": "1006", "endpoint": "8006", "skills": {"billing": 7},
               "queues": {"support": 0}}},
    {"op": "change", "kind": "queue", "key": "support", "before": {"name": "support", "wrapup_seconds": 60.0,
                                                                 "skills": {"billing": 3}, "overflow": None},
     "after": {"name": "support", "wrapup_seconds": 30.0, "skills": {"billing": 5, "vip": 1},
               "overflow": "queue:general"}},
    {"op": "remove", "kind": "did", "key": "4008001234", "before": "hotline", "after": None},
]


def test_the_difference_reads_as_added_changed_field_by_field_and_removed() -> None:
    assert render_changes(CHANGES).splitlines() == [
        "+ agent 1006",
        "    name: 王芳",
        '    number: "1006"',  # quoted: unquoted YAML would read a number
        '    endpoint: "8006"',
        '    skills: {"billing": 7}',
        '    queues: {"support": 0}',
        "~ queue support",
        "    wrapup_seconds: 60.0 -> 30.0",
        "    skills.billing: 3 -> 5",
        "    skills.vip: (none) -> 1",
        "    overflow: null -> queue:general",
        "- did 4008001234",
    ]
    assert summary(CHANGES) == "1 added, 1 changed, 1 removed"


def test_a_removed_field_and_a_plain_value() -> None:
    assert field_changes({"a": 1, "b": "x"}, {"a": 1}) == ["b: x -> (removed)"]
    assert field_changes("old text", "新的文字") == ["value: old text -> 新的文字"]
    assert field_changes({"t": "yes"}, {"t": "a: b"}) == ['t: "yes" -> "a: b"']  # quoted where YAML would differ


def test_agent_options_build_the_item_as_the_file_has_it() -> None:
    args = build_parser().parse_args(["agents", "add", "1006", "--name", "王芳", "--number", "1006", "--phone", "8006",
                                      "--skill", "billing=7", "--queue", "support=0", "--queue", "vip=2"])
    assert args.kind is AGENTS
    assert _body_from_args(AGENTS, args, {"id": "1006"}) == {
        "id": "1006", "name": "王芳", "number": "1006", "endpoint": "8006", "skills": {"billing": 7},
        "queues": {"support": 0, "vip": 2}}


def test_queue_edit_changes_only_the_options_given() -> None:
    current = {"name": "support", "wrapup_seconds": 60.0, "skills": {"billing": 3, "vip": 1},
               "overflow": "queue:general", "announce_wait_time": True}
    args = build_parser().parse_args(["queues", "edit", "support", "--wrapup", "30", "--remove-skill", "vip",
                                      "--overflow", "none", "--announce-wait-time", "no"])
    assert _body_from_args(QUEUES, args, current) == {
        "name": "support", "wrapup_seconds": 30.0, "skills": {"billing": 3}, "overflow": None,
        "announce_wait_time": False}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["queues", "edit", "support", "--strategy", "random"])
    bad_skill = build_parser().parse_args(["queues", "edit", "support", "--remove-skill", "nope"])
    with pytest.raises(SystemExit, match="no skill 'nope'"):
        _body_from_args(QUEUES, bad_skill, current)


def test_without_an_action_agents_and_queues_stay_the_live_views() -> None:
    from controller.cli.acd import cmd_agents, cmd_queues
    assert build_parser().parse_args(["agents"]).func is cmd_agents
    assert build_parser().parse_args(["queues", "--json"]).func is cmd_queues
