"""The helpers every node uses: filling {variables} into text, reading prompt lists, finding the
variables a value uses, the node registry, and the schedule's day names."""

from __future__ import annotations

from typing import Any

import pytest

from controller.ivr.nodes import NODE_TYPES, Context, Node, prompt_items, template_variables
from controller.ivr.nodes.schedule import minutes, weekdays
from controller.ivr.port import Prompt
from controller.ivr.simulator import SimulatedPort


def context(**variables: Any) -> Context:
    return Context(SimulatedPort(), "f", dict(variables), "zh")


@pytest.mark.parametrize(("template", "expected"), [
    ("{a}", "1"), ("{b}", "2.5"), ("{c}", "3"), ("{none}", ""), ("{unset}", ""), ("{t}", "True"),
    ("x{a}y{a}", "x1y1"), ("{r.city}", "深圳"), ("{r.nope}", ""), ("{ a }", "{ a }"), ("{1a}", "{1a}"),
    ("{a.}", "{a.}"), ("plain", "plain"), (5, "5"), ("{_x}", "u"),
])
def test_render_fills_variables(template: Any, expected: str) -> None:
    ctx = context(a=1, b=2.5, c=3.0, none=None, t=True, r={"city": "深圳"}, _x="u")
    assert ctx.render(template) == expected


def test_prompts_carry_the_current_language_and_a_language_switch_reaches_the_port() -> None:
    ctx = context(n=7)
    assert ctx.prompts(["hi {n}", {"number": "{n}"}]) == [Prompt("tts", "hi 7", "zh"), Prompt("number", "7", "zh")]
    ctx.set("language", "en")
    assert (ctx.language, ctx.port.language, ctx.variables["language"]) == ("en", "en", "en")
    assert ctx.prompts("hello") == [Prompt("tts", "hello", "en")]
    ctx.set("language", "zh")
    assert (ctx.language, ctx.port.language) == ("zh", "zh")
    ctx.set("language", "en")
    ctx.set("language", "fr")  # not a language we speak: a plain variable
    assert (ctx.language, ctx.port.language, ctx.variables["language"]) == ("en", "en", "fr")
    ctx.emit("x.y", a=1)
    assert ctx.port.events[-1] == ("x.y", {"flow": "f", "a": 1})  # type: ignore[attr-defined]


@pytest.mark.parametrize(("items", "expected"), [
    (None, []), ("hi", [("tts", "hi")]), (["a", {"sound": "b"}], [("tts", "a"), ("sound", "b")]),
    ({"money": 12.0}, [("money", "12")]), ([{"number": 3}], [("number", "3")]), ([{"a": 1, "b": 2}], []),
    ([5], []), ([], []), ({"digits": None}, [("digits", "")]),
])
def test_prompt_items(items: Any, expected: list[tuple[str, str]]) -> None:
    assert prompt_items(items) == expected


def test_template_variables_walk_strings_lists_and_mappings() -> None:
    value = {"a": "{x} and {y.z}", "b": ["{w}", 5, {"c": "{v}"}], "d": "{ no }"}
    assert list(template_variables(("p",), value)) == [
        (("p", "a"), "x"), (("p", "a"), "y.z"), (("p", "b", "0"), "w"), (("p", "b", "2", "c"), "v")]
    assert list(template_variables(("p",), 5)) == []


def test_the_registry_finds_every_node_type() -> None:
    assert sorted(NODE_TYPES) == ["callback", "collect", "fax", "goto", "hangup", "http", "menu", "play", "queue",
                                  "region", "schedule", "set", "survey", "switch", "transfer", "voicemail"]
    assert "menu" in NODE_TYPES and "dance" not in NODE_TYPES and NODE_TYPES.get("dance") is None
    assert NODE_TYPES.get("dance", "nothing") == "nothing"
    assert NODE_TYPES["menu"].type == "menu" and NODE_TYPES.get("menu") is NODE_TYPES["menu"]
    assert all(issubclass(cls, Node) for cls in NODE_TYPES.values())
    waits = {name for name, cls in NODE_TYPES.items() if cls.waits}
    assert waits == {"callback", "collect", "fax", "menu", "queue", "survey", "transfer", "voicemail"}


def test_routes_and_variables_of_a_node() -> None:
    menu = NODE_TYPES["menu"]("m", {"prompt": ["{a}"], "options": {"1": "x", 2: "y"}, "default": "z"})
    assert list(menu.routes()) == [(("options", "1"), "x"), (("options", "2"), "y"), (("default",), "z")]
    assert list(menu.variables_used()) == [(("prompt", "0"), "a")]
    assert menu.assigns() == set() and list(menu.jumps()) == []
    queue = NODE_TYPES["queue"]("q", {"queue": "{b}", "priority": "c + d.e", "data": ["f"], "otherwise": "z"})
    assert sorted(queue.variables_used()) == [(("data", "0"), "f"), (("priority",), "c"), (("priority",), "d.e"),
                                              (("queue",), "b")]


@pytest.mark.parametrize(("spec", "days"), [
    ("daily", [0, 1, 2, 3, 4, 5, 6]), ("all", [0, 1, 2, 3, 4, 5, 6]), ("mon-sun", [0, 1, 2, 3, 4, 5, 6]),
    ("mon-fri", [0, 1, 2, 3, 4]), ("Sat-Sun", [5, 6]), (" tue ", [1]), ("sun", [6]), ("mon-mon", [0]),
    ("fri-mon", None), ("mon-", None), ("-fri", None), ("monday", None), ("", None), ("mon-xyz", None),
])
def test_weekdays(spec: str, days: list[int] | None) -> None:
    assert weekdays(spec) == days


@pytest.mark.parametrize(("value", "span"), [
    ("09:00-18:00", (540, 1080)), ("00:00-24:00", (0, 1440)), ("23:59-24:00", (1439, 1440)),
    ("00:00-00:01", (0, 1)), ("18:00-09:00", None), ("10:00-10:00", None), ("24:00-24:00", None),
    ("23:00-24:01", None),
    ("09:60-10:00", None), ("25:00-26:00", None), ("9:00-10:00", None), (" 09:00-10:00", None), (900, None),
])
def test_minutes(value: Any, span: tuple[int, int] | None) -> None:
    assert minutes(value) == span


@pytest.mark.parametrize(("name", "short"), [
    ("广东省", "广东"), ("深圳市", "深圳"), ("广西壮族自治区", "广西"), ("新疆维吾尔自治区", "新疆"),
    ("宁夏回族自治区", "宁夏"),
    ("西藏自治区", "西藏"), ("香港特别行政区", "香港"), ("北京", "北京"), ("省", "省"), ("自治区", "自治区"),
])
def test_region_names_are_shortened_to_match_routes(name: str, short: str) -> None:
    from controller.ivr.nodes.region import _short

    assert _short(name) == short


async def test_a_caller_from_an_autonomous_region_takes_its_route(tmp_path: Any) -> None:
    from controller.ivr.flow import flow_set, load_flows
    from controller.ivr.simulator import simulate

    (tmp_path / "r.yaml").write_text("flow: r\nnodes:\n  r: {type: region, routes: {广西: gx, 新疆壮族: wrong},"
                                     " default: other}\n  gx: {type: hangup}\n  wrong: {type: hangup}\n"
                                     "  other: {type: hangup}\n")
    flows, errors = load_flows([tmp_path])
    assert errors == []
    result = await simulate(flow_set(flows), "r", SimulatedPort(caller="07712345678"))  # Nanning landline
    assert result.visited == ["r", "gx"]
    assert result.variables["region"]["province"] == "广西壮族自治区"


def test_discovery_finds_the_same_types_as_the_registry() -> None:
    from controller.ivr.nodes import _discover

    found = _discover()
    assert found == dict(NODE_TYPES) and len(found) == 16
    assert all(name == cls.type for name, cls in found.items())


async def test_a_key_pressed_during_a_prompt_answers_a_one_key_question_at_once() -> None:
    from controller.ivr.nodes._input import ask
    from controller.ivr.port import CollectResult

    ctx = context()
    ctx.pending_key = "5"
    node = NODE_TYPES["menu"]("m", {"prompt": "x", "options": {"5": "y"}, "default": "y"})
    assert await ask(ctx, node, "question", timeout=4) == CollectResult("5", "max_digits")
    assert ctx.pending_key is None and ctx.played == []   # no prompt was played
    ctx.pending_key = "5"  # a longer question does not take it: it asks, and forgets the key
    ctx.port.inputs.append("123#")  # type: ignore[attr-defined]
    assert await ask(ctx, node, "number", max_digits=6, terminator="#", timeout=4) == CollectResult("123", "terminator")
    assert ctx.pending_key is None and ctx.played == [("m", [Prompt("tts", "number", "zh")])]


def test_a_fresh_registry_loads_the_types_on_first_use() -> None:
    from controller.ivr.nodes import _Registry

    for first_use in (lambda r: "menu" in r, lambda r: r["menu"], lambda r: list(r), lambda r: r.get("menu")):
        registry = _Registry()
        assert dict.__len__(registry) == 0
        assert first_use(registry)
        assert dict(registry) == dict(NODE_TYPES)
