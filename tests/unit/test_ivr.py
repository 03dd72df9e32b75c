"""IVR flows through the simulator (no PBX) and validation errors with file:line:column."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from controller.cli.main import main
from controller.ivr import expr
from controller.ivr.flow import flow_set, is_plain, load_flows, plain_variables, screen_pop_data
from controller.ivr.repository import FlowRepository
from controller.ivr.simulator import SimulatedPort, simulate

REPO = Path(__file__).resolve().parents[2]
OPEN = datetime.fromisoformat("2026-11-23T10:00+08:00")
CLOSED = datetime.fromisoformat("2026-11-23T23:00+08:00")
BALANCE = {"balance?": {"status": 200, "json": {"balance": "123.45", "due_date": "2026-12-01"}},
           "customer?": {"status": 200, "json": {"tier": "vip"}}}


async def run_demo(dtmf: str, at: datetime = OPEN, **port: object) -> tuple[list[str], SimulatedPort]:
    flows, errors = load_flows([REPO / "ivr_flows"])
    assert errors == []
    sim = SimulatedPort(did="4008001234", dtmf=dtmf, http_answers=port.pop("answers", BALANCE), **port)  # type: ignore[arg-type]
    result = await simulate(flow_set(flows), "hotline", sim, at)
    return result.visited, sim


async def test_bill_inquiry_reads_balance_and_date() -> None:
    visited, sim = await run_demo("2 2")
    assert visited == ["greeting", "hours", "customer", "main_menu", "bill_lookup", "bill_read", "bill_menu",
                       "goodbye"]
    said = [(p.kind, p.value) for p in sim.played]
    assert ("money", "123.45") in said and ("date", "2026-12-01") in said
    assert sim.hung_up


async def test_backend_failure_apologises_and_queues() -> None:
    visited, sim = await run_demo("2 5", answers={"balance?": {"status": 503}})
    assert visited[4:7] == ["bill_lookup", "bill_failed", "general"]
    assert sim.queued[0].queue == "general"


async def test_wrong_key_three_times_goes_to_default_and_vip_priority() -> None:
    visited, sim = await run_demo("7 8 6 4")
    assert visited[3:6] == ["main_menu", "general", "survey"]
    assert sim.queued[0].priority == 10  # the demo back-end said vip
    assert sim.saved[-1] == ("survey", {"score": 4, "comment_recording": None, "flow": "hotline",
                                        "agent_id": "sim-agent"})


async def test_after_hours_voicemail_and_callback() -> None:
    visited, sim = await run_demo("1", at=CLOSED)
    assert visited == ["greeting", "hours", "after_hours", "after_hours_menu", "voicemail", "goodbye"]
    assert sim.saved[0][0] == "voicemail"
    visited, sim = await run_demo("2 1", at=CLOSED)
    assert visited[-2:] == ["callback", "goodbye"]
    assert sim.saved[0][1]["number"] == "13800138000"


async def test_overflow_offers_callback_then_voicemail() -> None:
    visited, _sim = await run_demo("3 _ _", queue_result="overflow", overflow_target="callback")
    assert visited[4:] == ["orders", "overflow_offer", "voicemail", "goodbye"]


async def test_english_subflow_and_region() -> None:
    visited, sim = await run_demo("9 2 2")
    assert visited[3:] == ["main_menu", "english", "menu", "balance", "balance_read", "menu_again", "goodbye"]
    assert sim.language == "en"
    visited, sim = await run_demo("1", caller="13802880000")  # a Guangdong mobile number
    assert "general_gd" in visited


def test_expressions_are_safe() -> None:
    variables = {"tier": "vip", "balance": "-3.5", "region": {"province": "广东省"}}
    assert expr.evaluate(expr.parse("tier == 'vip' and 10 or 0"), variables) == 10
    assert expr.evaluate(expr.parse("balance < 0 and region.province in ['广东省']"), variables) is True
    for bad in ("__import__('os')", "tier.upper()", "x[0]", "1 +", "a = 1"):
        with pytest.raises(expr.ExpressionError):
            expr.parse(bad)


BAD_FLOWS = {
    "unknown type": ("nodes:\n  a: {type: dance}\n", 2, "unknown type 'dance'"),
    "missing next target": ("nodes:\n  a: {type: play, prompts: [hi], next: nowhere}\n", 2, "no node 'nowhere'"),
    "unreachable": ("nodes:\n  a: {type: hangup}\n  b: {type: hangup}\n", 3, "'b' is unreachable"),
    "spin loop": ("nodes:\n  a: {type: set, values: {x: '1'}, next: b}\n  b: {type: goto, node: a}\n", 2,
                  "never waits for the caller"),
    "unknown variable": ("nodes:\n  a: {type: play, prompts: [{money: '{balance}'}]}\n", 2,
                         "unknown variable 'balance'"),
    "bad expression": ("nodes:\n  a:\n    type: switch\n    cases: [{when: 'x ==', next: a}]\n    default: a\n", 4,
                       "unexpected"),
    "bad parameter": ("nodes:\n  a: {type: menu, prompt: hi, options: {'1': a}, default: a, colour: red}\n", 2,
                      "unknown parameter 'colour'"),
    "bad regex": ("nodes:\n  a: {type: collect, prompt: hi, variable: v, pattern: '([', next: a}\n", 2,
                  "invalid regular expression"),
    "yaml syntax": ("nodes:\n  a: {type: hangup\n", 3, "YAML"),
}


@pytest.mark.parametrize("case", sorted(BAD_FLOWS))
def test_validation_points_at_file_and_line(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text, line, message = BAD_FLOWS[case]
    path = tmp_path / "bad.yaml"
    path.write_text("flow: bad\nlanguage: zh\n" + text)
    assert main(["flows", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:{line + 2}:" in out and message in out, out


def test_missing_sound_and_duplicate_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.yaml").write_text('flow: a\ndids: ["1"]\nnodes:\n  x: {type: play, prompts: [{sound: nope}]}\n')
    (tmp_path / "b.yaml").write_text('flow: b\ndids: ["1"]\nnodes:\n  x: {type: hangup}\n')
    (tmp_path / "sounds").mkdir()
    assert main(["flows", "validate", str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"),
                 "--sounds-dir", str(tmp_path / "sounds")]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path / 'a.yaml'}:4:" in out and "sound file 'nope' not found" in out
    assert f"{tmp_path / 'b.yaml'}:2:" in out and "DID 1 is already served" in out
    assert main(["flows", "validate", str(REPO / "ivr_flows")]) == 0


def test_reload_keeps_the_old_flows_when_the_new_ones_are_broken(tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text('flow: f\ndids: ["1"]\nnodes:\n  a: {type: hangup, prompt: [one]}\n')
    repository = FlowRepository(tmp_path)
    assert repository.load().ok
    in_progress = repository.snapshot
    flow.write_text('flow: f\ndids: ["1"]\nnodes:\n  a: {type: hangup, prompt: [two]}\n')
    assert repository.reload().ok
    assert repository.snapshot is not in_progress
    assert in_progress.flows["f"].nodes["a"]["prompt"] == ["one"]  # a call in progress keeps its version
    flow.write_text('flow: f\nnodes:\n  a: {type: nope}\n')
    result = repository.reload()
    assert not result.ok and "unknown type" in str(result.errors[0])
    assert repository.snapshot.flows["f"].nodes["a"]["prompt"] == ["two"]


def test_simulate_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "simulate", str(REPO / "ivr_flows"), "--did", "4008001234", "--dtmf", "1",
                 "--at", "2026-11-23T23:00+08:00", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"voicemail"' in out and '"after_hours_menu"' in out


def test_screen_pop_data_keeps_the_flows_own_values_only() -> None:
    variables = {"caller": "13800138000", "did": "4008001234", "call_id": "c1", "language": "zh",
                 "today": "2026-11-26", "time": "09:30", "weekday": "thu", "flow": "hotline",
                 "region": {"province": "北京市", "city": "北京市"}, "menu_choice": "0", "tier": "vip",
                 "balance": 12.5, "order": {"id": 7}, "agent_id": None}
    assert screen_pop_data(variables) == {"menu_choice": "0", "tier": "vip", "balance": 12.5, "agent_id": None}


def test_the_plain_variables_a_call_keeps_are_those_is_plain_accepts() -> None:
    """What the IVR saves at each node and keeps in the call's data: strings, numbers, booleans and None;
    structured values (an HTTP node's answer, the region) stay out."""
    variables = {"digits": "12", "count": 3, "balance": 12.5, "vip": True, "agent_id": None,
                 "order": {"id": 7}, "items": [1, 2], "pair": (1, 2), "raw": b"x"}
    assert plain_variables(variables) == {"digits": "12", "count": 3, "balance": 12.5, "vip": True, "agent_id": None}
    assert plain_variables(variables) == {name: value for name, value in variables.items() if is_plain(value)}


def simulate_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    import json

    assert main(["flows", "simulate", *args, "--json"]) == 0
    return dict(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize(("now", "second_node"), [("2026-11-26T10:00", "customer"),
                                                  ("2026-11-26T23:30", "after_hours")])
def test_simulate_without_at_runs_now_in_the_flows_time_zone(now: str, second_node: str,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Not a fixed date (it was 2023-11-14 22:13 in Shanghai: after hours for every example)."""
    from zoneinfo import ZoneInfo

    from controller.cli import flows as cli_flows

    asked: list[ZoneInfo] = []

    def fake_now(zone: ZoneInfo) -> datetime:
        asked.append(zone)
        return datetime.fromisoformat(now).replace(tzinfo=zone)

    monkeypatch.setattr(cli_flows, "now", fake_now)
    out = simulate_json(capsys, str(REPO / "ivr_flows"), "--did", "4008001234", "--dtmf", "1")
    assert asked == [ZoneInfo("Asia/Shanghai")]
    assert out["at"] == now + ":00+08:00" and out["visited"][:3] == ["greeting", "hours", second_node]  # type: ignore[index]


def test_simulate_now_is_the_real_time(capsys: pytest.CaptureFixture[str]) -> None:
    out = simulate_json(capsys, str(REPO / "ivr_flows"), "--did", "4008001234", "--dtmf", "1")
    at = datetime.fromisoformat(str(out["at"]))
    assert abs(at.timestamp() - datetime.now().timestamp()) < 60 and at.utcoffset() is not None
    assert at.utcoffset().total_seconds() == 8 * 3600  # type: ignore[union-attr]


def test_simulate_at_without_an_offset_is_a_local_time_of_the_flows_schedule(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ny.yaml").write_text(
        "flow: ny\nnodes:\n  s: {type: schedule, timezone: America/New_York, hours: {daily: ['09:00-18:00']},"
        " open: o, closed: c}\n  o: {type: hangup}\n  c: {type: hangup}\n")
    out = simulate_json(capsys, str(tmp_path), "--at", "2026-11-23T10:00")   # 10:00 in New York, whatever the host
    assert out["at"] == "2026-11-23T10:00:00-05:00" and out["visited"] == ["s", "o"]
    out = simulate_json(capsys, str(tmp_path), "--at", "2026-11-23T10:00+00:00")  # 05:00 in New York
    assert out["visited"] == ["s", "c"]
    assert main(["flows", "simulate", str(tmp_path), "--at", "2026-11-23T10:00"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "-- ny at 2026-11-23T10:00-05:00 (America/New_York)"


def test_simulate_help_says_the_default_is_now(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["flows", "simulate", "--help"])
    assert "default: now" in " ".join(capsys.readouterr().out.split())


def _demo_flows() -> object:
    flows, errors = load_flows([REPO / "ivr_flows"])
    assert errors == []
    return flow_set(flows)


def test_resume_point_same_version_same_node_or_start() -> None:
    """A caller taken over after a restart: their node when the flow is unchanged, the node of the same
    id when the flow changed, the start when that node is gone, nothing when the flow is gone; the
    moment's variables (now, time…) are recomputed, the collected ones kept."""
    from controller.ivr.runner import resume_point
    flows = _demo_flows()
    version = flows.flows["hotline"].version  # type: ignore[attr-defined]
    saved = {"flow": "hotline", "version": version, "node": "main_menu",
             "variables": {"tier": "vip", "now": "2020-01-01T00:00:00", "time": "00:00"}}
    point = resume_point(flows, saved)  # type: ignore[arg-type]
    assert point is not None and (point.flow_id, point.node, point.how) == ("hotline", "main_menu", "same_version")
    assert point.variables == {"tier": "vip"}
    point = resume_point(flows, {**saved, "version": "0123456789ab"})  # type: ignore[arg-type]
    assert point is not None and (point.node, point.how) == ("main_menu", "same_node")
    point = resume_point(flows, {**saved, "version": "0123456789ab", "node": "gone"})  # type: ignore[arg-type]
    assert point is not None and (point.node, point.how) == (None, "start")
    assert resume_point(flows, {**saved, "flow": "no_such_flow"}) is None  # type: ignore[arg-type]


async def test_a_flow_resumed_at_a_menu_replays_it_and_reports_each_node() -> None:
    """run_flow from a saved node with saved variables: the menu's prompt is played again, the key
    pressed now routes on, and each node entered is reported with the variables (sensitive ones left out)."""
    from controller.ivr.runner import run_flow
    flows = _demo_flows()
    entered: list[tuple[str, str, dict[str, object]]] = []
    sim = SimulatedPort(did="4008001234", dtmf="2 2", http_answers=BALANCE)
    result = await run_flow(flows, "hotline", sim, start_node="main_menu",  # type: ignore[arg-type]
                            variables={"tier": "vip"}, on_node=lambda f, n, v, _a: entered.append((f, n, dict(v))))
    assert result.visited[:2] == ["main_menu", "bill_lookup"]
    assert [n for _, n, _ in entered][:2] == ["main_menu", "bill_lookup"]
    assert entered[0][2]["tier"] == "vip"
    assert sim.played, "the menu's prompt is played again"


async def test_a_flow_settled_at_its_queue_node_goes_on_by_the_outcome() -> None:
    """After a talk resumed by a new process: the queue node is not run again (no new enqueue), the flow
    goes on from its route for the visit's outcome, with the queue variables set."""
    from controller.ivr.nodes.queue import QueueNode
    from controller.ivr.port import QueueOutcome
    from controller.ivr.runner import run_flow
    flows = _demo_flows()
    sim = SimulatedPort(did="4008001234", dtmf="5", http_answers=BALANCE)
    outcome = QueueOutcome("answered_then_ended", agent_id="1001")

    def settled(node: object, ctx: object) -> object:
        assert isinstance(node, QueueNode)
        return node.after(ctx, outcome)  # type: ignore[arg-type]
    result = await run_flow(flows, "hotline", sim, start_node="general", settled=settled)  # type: ignore[arg-type]
    assert result.visited[:2] == ["general", "survey"]
    assert sim.queued == []  # not queued again
    assert result.variables["agent_id"] == "1001"


async def test_a_menu_resumed_goes_on_with_the_attempts_it_had_left() -> None:
    """The ivr part keeps a menu's failed attempts; resumed with 2 of its 3 used, the menu asks once more
    and then takes its default route; each failed attempt is reported (and a changed flow starts afresh)."""
    from controller.ivr.runner import resume_point, run_flow
    flows = _demo_flows()
    menu = flows.flows["hotline"].nodes["main_menu"]  # type: ignore[attr-defined]
    assert menu["retries"] == 3
    reports: list[tuple[str, int]] = []
    sim = SimulatedPort(did="4008001234", dtmf="", http_answers=BALANCE)
    result = await run_flow(flows, "hotline", sim, start_node="main_menu", attempts_used=2,  # type: ignore[arg-type]
                            on_node=lambda _f, node, _v, attempts: reports.append((node, attempts)))
    assert result.visited[:2] == ["main_menu", menu["default"]]
    assert reports[:2] == [("main_menu", 2), ("main_menu", 3)]
    version = flows.flows["hotline"].version  # type: ignore[attr-defined]
    saved = {"flow": "hotline", "version": version, "node": "main_menu", "attempts": 2, "variables": {}}
    assert resume_point(flows, saved).attempts_used == 2  # type: ignore[arg-type,union-attr]
    assert resume_point(flows, {**saved, "version": "x"}).attempts_used == 0  # type: ignore[arg-type,union-attr]
