"""Each IVR node type through the simulator, with its error paths (timeouts, bad input, back-end failure)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from controller.ivr.flow import flow_set, load_flows
from controller.ivr.simulator import SimulatedPort, simulate

MONDAY_10 = datetime.fromisoformat("2026-11-23T10:00+08:00")


async def run(tmp_path: Path, nodes: str, dtmf: str = "", *, at: datetime = MONDAY_10, extra_flows: str = "",
              **port: Any) -> tuple[list[str], SimulatedPort, dict[str, Any]]:
    body = "\n".join("  " + line for line in nodes.strip().splitlines())
    (tmp_path / "t.yaml").write_text(f"flow: t\nlanguage: zh\ndids: ['1']\nnodes:\n{body}\n")
    if extra_flows:
        (tmp_path / "other.yaml").write_text(extra_flows)
    flows, errors = load_flows([tmp_path])
    assert errors == [], errors
    sim = SimulatedPort(dtmf=dtmf, **port)
    result = await simulate(flow_set(flows), "t", sim, at)
    assert result.error is None, result.error
    return result.visited, sim, dict(result.variables)


async def test_play_says_numbers_money_dates_and_digits(tmp_path: Path) -> None:
    visited, sim, _ = await run(tmp_path, """
say: {type: play, prompts: ["您好", {number: 1024}, {money: "12.30"}, {date: "2026-12-01"}, {digits: "95588"}],
      next: bye}
bye: {type: hangup}
""")
    assert visited == ["say", "bye"] and sim.hung_up
    assert [(p.kind, p.value) for p in sim.played] == [("tts", "您好"), ("number", "1024"), ("money", "12.30"),
                                                        ("date", "2026-12-01"), ("digits", "95588")]


async def test_menu_timeout_then_a_key_and_the_default_after_retries(tmp_path: Path) -> None:
    nodes = """
menu: {type: menu, prompt: ["请选择"], options: {"1": one}, retries: 2, default: fallback, variable: choice}
one: {type: hangup}
fallback: {type: hangup}
"""
    visited, sim, variables = await run(tmp_path, nodes, "_ 1")
    assert visited == ["menu", "one"] and variables["choice"] == "1"
    assert any(p.value == "您没有输入。" for p in sim.played)  # the timeout prompt
    visited, _, _ = await run(tmp_path, nodes, "_ 7")
    assert visited == ["menu", "fallback"]


async def test_collect_terminator_pattern_min_digits_and_failure(tmp_path: Path) -> None:
    nodes = r"""
account: {type: collect, prompt: ["请输入账号"], variable: account, min_digits: 4, max_digits: 8,
          pattern: '^[1-9]\d+$', retries: 3, next: ok, failure: failed}
ok: {type: hangup}
failed: {type: hangup}
"""
    visited, _, variables = await run(tmp_path, nodes, "123456#")
    assert visited == ["account", "ok"] and variables["account"] == "123456"
    # too short, then not matching the pattern, then right (max_digits ends it without the terminator)
    visited, sim, variables = await run(tmp_path, nodes, "12# 0123# 1234567890")
    assert visited == ["account", "ok"] and variables["account"] == "12345678"
    assert sum(p.value == "输入有误，请重新输入。" for p in sim.played) == 2
    visited, _, _ = await run(tmp_path, nodes, "_ _ _")
    assert visited == ["account", "failed"]


async def test_http_maps_fields_and_routes_failures(tmp_path: Path) -> None:
    nodes = """
lookup: {type: http, url: "http://crm/balance?n={caller}", timeout: 2, map: {balance: data.balance},
         next: ok, failure: failed}
ok: {type: hangup}
failed: {type: hangup}
"""
    ok = {"crm/balance": {"status": 200, "json": {"data": {"balance": "8.50"}}}}
    visited, sim, variables = await run(tmp_path, nodes, http_answers=ok)
    assert visited == ["lookup", "ok"] and variables["balance"] == "8.50"
    assert sim.requests[0]["url"] == "http://crm/balance?n=13800138000"
    for answer in ({"status": 503}, {"status": 0, "error": "timeout"}, {"status": 200, "json": {"data": {}}}):
        visited, _, _ = await run(tmp_path, nodes, http_answers={"crm/balance": answer})
        assert visited == ["lookup", "failed"], answer  # 5xx, timeout, missing field


@pytest.mark.parametrize(("caller", "sent"), [
    ("x&admin=1", "http://crm/users/x%26admin%3D1/balance?n=x%26admin%3D1"),
    ("../../internal/keys?all=1#", "http://crm/users/%2E%2E%2F%2E%2E%2Finternal%2Fkeys%3Fall%3D1%23/balance"
                                   "?n=%2E%2E%2F%2E%2E%2Finternal%2Fkeys%3Fall%3D1%23"),
    ("13800138000", "http://crm/users/13800138000/balance?n=13800138000")])
async def test_http_percent_encodes_every_value_it_puts_in_the_url(tmp_path: Path, caller: str, sent: str) -> None:
    """A caller id from the SIP From header cannot add parameters or climb the back-end's paths."""
    nodes = """
lookup: {type: http, url: "http://crm/users/{caller}/balance?n={caller}", map: {balance: balance},
         next: ok, failure: failed}
ok: {type: hangup}
failed: {type: hangup}
"""
    _, sim, _ = await run(tmp_path, nodes, caller=caller, http_answers={"crm/": {"status": 200, "json": {}}})
    assert sim.requests[0]["url"] == sent


async def test_sensitive_input_is_usable_by_the_flow_and_masked_everywhere_else(tmp_path: Path) -> None:
    nodes = """
account: {type: collect, prompt: ["账号"], variable: account, max_digits: 4, next: pin}
pin: {type: collect, prompt: ["密码"], variable: pin, max_digits: 6, sensitive: true, next: choice}
choice: {type: menu, prompt: ["确认请按1"], options: {"1": check}, variable: confirm, sensitive: true, default: check}
check: {type: http, url: "http://bank/verify?account={account}&pin={pin}", map: {ok: ok}, next: agents,
        failure: agents}
agents: {type: queue, queue: general, answered: bye, otherwise: bye}
bye: {type: hangup}
"""
    visited, sim, variables = await run(tmp_path, nodes, "1234 654321 1",
                                        http_answers={"bank/": {"status": 200, "json": {"ok": True}}})
    assert visited == ["account", "pin", "choice", "check", "agents", "bye"]
    assert sim.requests[0]["url"] == "http://bank/verify?account=1234&pin=654321"  # the flow had the PIN
    assert (variables["account"], variables["pin"], variables["confirm"]) == ("1234", "***", "***")
    inputs = [fields for event, fields in sim.events if event == "ivr.input_collected"]
    assert [(i["variable"], i["value"], i["sensitive"]) for i in inputs] == [
        ("account", "1234", False), ("pin", "***", True), ("confirm", "***", True)]
    queued = sim.queued[0].data
    assert (queued["account"], queued["pin"], queued["confirm"]) == ("1234", "***", "***")
    assert "654321" not in repr(sim.events) + repr(variables) + repr(sim.queued)


async def test_sensitive_must_be_true_or_false(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("flow: t\nlanguage: zh\nnodes:\n  pin: {type: collect, prompt: [x], "
                                     "variable: pin, sensitive: 'yes please', next: bye}\n  bye: {type: hangup}\n")
    _, errors = load_flows([tmp_path])
    assert [(error.line, error.message) for error in errors] == [
        (4, "collect node 'pin': sensitive: expected true or false")]


async def test_set_and_switch_with_safe_expressions(tmp_path: Path) -> None:
    nodes = """
init: {type: set, values: {tier: "'vip'", score: "2 * 3"}, next: branch}
branch: {type: switch, cases: [{when: "tier == 'gold'", next: gold}, {when: "score > 5 and tier == 'vip'", next: vip}],
         default: other}
gold: {type: hangup}
vip: {type: hangup}
other: {type: hangup}
"""
    visited, _, variables = await run(tmp_path, nodes)
    assert visited == ["init", "branch", "vip"] and variables["score"] == 6


async def test_schedule_hours_holidays_and_time_zone(tmp_path: Path) -> None:
    nodes = """
hours: {type: schedule, hours: {mon-fri: ["09:00-18:00"]}, holidays: ["2026-10-01"], open: opened,
        closed: shut, holiday: feast}
opened: {type: hangup}
shut: {type: hangup}
feast: {type: hangup}
"""
    assert (await run(tmp_path, nodes))[0][-1] == "opened"
    assert (await run(tmp_path, nodes, at=datetime.fromisoformat("2026-11-22T10:00+08:00")))[0][-1] == "shut"  # Sunday
    assert (await run(tmp_path, nodes, at=datetime.fromisoformat("2026-11-23T19:30+08:00")))[0][-1] == "shut"
    assert (await run(tmp_path, nodes, at=datetime.fromisoformat("2026-10-01T10:00+08:00")))[0][-1] == "feast"
    # 02:00 UTC is 10:00 in Shanghai
    assert (await run(tmp_path, nodes, at=datetime.fromisoformat("2026-11-23T02:00+00:00")))[0][-1] == "opened"


@pytest.mark.parametrize(("caller", "route"), [("13802880000", "south"), ("13800138000", "elsewhere"),
                                               ("", "elsewhere"), ("not-a-number", "elsewhere")])
async def test_region_routes_by_home_province(tmp_path: Path, caller: str, route: str) -> None:
    visited, _, _ = await run(tmp_path, """
where: {type: region, routes: {广东: south}, default: elsewhere}
south: {type: hangup}
elsewhere: {type: hangup}
""", caller=caller)
    assert visited[-1] == route


@pytest.mark.parametrize(("result", "route"), [("answered_then_ended", "after"), ("timeout", "waited"),
                                               ("no_agents", "nobody"), ("unavailable", "broken"),
                                               ("overflow", "other")])
async def test_queue_results_take_their_routes(tmp_path: Path, result: str, route: str) -> None:
    visited, sim, variables = await run(tmp_path, """
queue: {type: queue, queue: general, priority: "caller == '13800138000' and 10 or 0", answered: after, timeout: waited,
        no_agents: nobody, unavailable: broken, otherwise: other}
after: {type: hangup}
waited: {type: hangup}
nobody: {type: hangup}
broken: {type: hangup}
other: {type: hangup}
""", queue_result=result)
    assert visited[-1] == route and sim.queued[0].queue == "general" and sim.queued[0].priority == 10
    assert variables["queue_result"] == result


@pytest.mark.parametrize(("after_talk", "hangs_up_after"), [
    ("answered: bye", True),                 # a hang-up with nothing played
    ("otherwise: bye", True),                # (the route of a talk that ended, when `answered` is not given)
    ("answered: goodbye", False),            # a hang-up with a closing prompt
    ("answered: thanks", False),             # a prompt, then the hang-up
])
async def test_the_queue_tells_the_acd_whether_the_call_ends_with_nothing_played_after_the_talk(
        tmp_path: Path, after_talk: str, hangs_up_after: bool) -> None:
    """So that the talk bridge can be destroyed with the caller in it (no removeChannel first: nothing is played)."""
    routes = after_talk if after_talk.startswith("otherwise") else f"{after_talk}, otherwise: other"
    _, sim, _ = await run(tmp_path, f"""
queue: {{type: queue, queue: general, {routes}, timeout: goodbye, no_agents: thanks, overflow: other,
        unavailable: bye}}
bye: {{type: hangup}}
goodbye: {{type: hangup, prompt: ["再见"]}}
thanks: {{type: play, prompts: ["谢谢"], next: bye}}
other: {{type: hangup}}
""", queue_result="answered_then_ended")
    assert sim.queued[0].hangs_up_after is hangs_up_after


async def test_an_agent_can_transfer_the_caller_back_to_a_node(tmp_path: Path) -> None:
    visited, _, _ = await run(tmp_path, """
queue: {type: queue, queue: general, answered: bye, otherwise: menu_again}
menu_again: {type: play, prompts: ["还有什么可以帮您？"], next: bye}
bye: {type: hangup}
""", queue_result="transferred", overflow_target="node:menu_again")
    assert visited == ["queue", "menu_again", "bye"]


async def test_voicemail_is_saved_with_its_recording(tmp_path: Path) -> None:
    visited, sim, _ = await run(tmp_path, """
vm: {type: voicemail, max_seconds: 60, next: bye}
bye: {type: hangup}
""")
    assert visited == ["vm", "bye"]
    kind, payload = sim.saved[0]
    assert kind == "voicemail" and payload["recording"].startswith("voicemail-")


async def test_callback_own_number_other_number_and_declined(tmp_path: Path) -> None:
    nodes = """
cb: {type: callback, due_minutes: 30, next: booked, declined: nope}
booked: {type: hangup}
nope: {type: hangup}
"""
    visited, sim, _ = await run(tmp_path, nodes, "1")
    assert visited[-1] == "booked" and sim.saved[0][1]["number"] == "13800138000"
    visited, sim, _ = await run(tmp_path, nodes, "2 13900139000#")
    assert visited[-1] == "booked" and sim.saved[0][1]["number"] == "13900139000"
    visited, sim, _ = await run(tmp_path, nodes, "_ _")
    assert visited[-1] == "nope" and sim.saved == []


async def test_callback_the_caller_picks_the_time_and_the_queue_is_named(tmp_path: Path) -> None:
    nodes = """
cb: {type: callback, queue: general, when_prompt: ["尽快回电请按1，明天上午回电请按2"], next: booked}
booked: {type: hangup}
"""
    _, sim, _ = await run(tmp_path, nodes, "1 2")
    assert {key: sim.saved[0][1][key] for key in ("number", "queue", "when")} == \
        {"number": "13800138000", "queue": "general", "when": "next_morning"}
    _, sim, _ = await run(tmp_path, nodes, "1 1")
    assert sim.saved[0][1]["when"] == "asap"


async def test_survey_invalid_then_valid_and_no_answer(tmp_path: Path) -> None:
    nodes = """
survey: {type: survey, retries: 2, next: bye}
bye: {type: hangup}
"""
    _, sim, variables = await run(tmp_path, nodes, "9 4")
    assert variables["survey_score"] == 4 and sim.saved[0][1]["score"] == 4
    _, sim, variables = await run(tmp_path, nodes, "_ _")
    assert variables["survey_score"] is None and sim.saved[0][1]["score"] is None


@pytest.mark.parametrize(("result", "route"), [("connected_then_ended", "after"), ("no_answer", "sorry"),
                                               ("busy", "sorry"), ("failed", "sorry")])
async def test_transfer_success_and_failures(tmp_path: Path, result: str, route: str) -> None:
    visited, _, _ = await run(tmp_path, """
xfer: {type: transfer, to: "95588", timeout: 20, next: after, failure: sorry}
after: {type: hangup}
sorry: {type: hangup}
""", transfer_result=result)
    assert visited[-1] == route


async def test_goto_another_flow_and_its_language(tmp_path: Path) -> None:
    visited, sim, _ = await run(tmp_path, """
jump: {type: goto, flow: english}
""", extra_flows="flow: english\nlanguage: en\nnodes:\n  hello: {type: play, prompts: [Hello], next: bye}\n"
                  "  bye: {type: hangup}\n")
    assert visited == ["jump", "hello", "bye"] and sim.language == "en" and sim.hung_up


def test_a_yaml_boolean_as_a_node_name_gets_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("flow: t\nlanguage: zh\nnodes:\n  cb: {type: callback, declined: no}\n")
    _, errors = load_flows([tmp_path])
    assert [(e.line, e.column) for e in errors] == [(4, 34)]  # at the value
    assert "declined: expected a node name, got False (YAML reads yes/no/on/off as true/false" in errors[0].message


def test_a_flow_names_its_recording_policy(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("flow: a\nlanguage: zh\nrecording: always\nnodes:\n  bye: {type: hangup}\n")
    (flows, errors) = load_flows([tmp_path / "a.yaml"])
    assert errors == [] and flows[0].recording == "always"
    (tmp_path / "b.yaml").write_text("flow: b\nlanguage: zh\nrecording: sometimes\nnodes:\n  bye: {type: hangup}\n")
    _, errors = load_flows([tmp_path / "b.yaml"])
    assert [(e.line, e.message) for e in errors] == [
        (3, "recording: expected one of always, never, on_demand, got 'sometimes'")]
