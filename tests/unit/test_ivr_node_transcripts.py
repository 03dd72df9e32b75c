"""Each IVR node's whole conversation with the call, checked exactly: every prompt (and whether a key
may interrupt it), every question's limits and timeouts, recordings, back-end requests, the queue
request, transfers, stored records, events and the variables it leaves. A node that passes the wrong
timeout, drops a prompt or misnames a variable changes its transcript, and these tests fail."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from controller.ivr.flow import flow_set, load_flows
from controller.ivr.port import (
    CollectResult,
    CollectSpec,
    HttpResponse,
    PlayResult,
    QueueOutcome,
    QueueRequest,
    RecordingResult,
    RecordSpec,
    TransferResult,
    TransferTarget,
)
from controller.ivr.runner import FlowResult
from controller.ivr.simulator import SimulatedPort, simulate

AT = datetime.fromisoformat("2026-11-23T10:00+08:00")
Entry = tuple[Any, ...]


def said(prompts: Any) -> list[tuple[str, str, str]]:
    return [(p.kind, p.value, p.language) for p in prompts]


class TranscriptPort(SimulatedPort):
    """The simulator's port, writing down every call a node makes. Keys: "1 2#" as in the simulator;
    a token starting with "!" interrupts the next prompt that allows barge-in with that key."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transcript: list[Entry] = []

    async def play(self, prompts: Any, *, barge_in: bool = False) -> PlayResult:
        self.transcript.append(("play", said(prompts), barge_in))
        if barge_in and self.inputs and self.inputs[0].startswith("!"):
            return PlayResult(self.inputs.popleft()[1:])
        return await super().play(prompts, barge_in=barge_in)

    async def collect(self, spec: CollectSpec) -> CollectResult:
        self.transcript.append(("collect", said(spec.prompts), spec.min_digits, spec.max_digits, spec.terminator,
                                spec.first_digit_timeout, spec.inter_digit_timeout, spec.total_timeout,
                                spec.barge_in))
        return await super().collect(spec)

    async def record(self, spec: RecordSpec) -> RecordingResult:
        self.transcript.append(("record", spec.kind, spec.max_seconds, spec.silence_seconds, spec.beep,
                                spec.terminator))
        return await super().record(spec)

    async def http_request(self, *, method: str, url: str, headers: Any, body: Any,
                           timeout_seconds: float) -> HttpResponse:
        self.transcript.append(("http", method, url, dict(headers), body, timeout_seconds))
        return await super().http_request(method=method, url=url, headers=headers, body=body,
                                          timeout_seconds=timeout_seconds)

    async def enqueue(self, request: QueueRequest) -> QueueOutcome:
        self.transcript.append(("enqueue", request.queue, request.skills, request.priority, request.data))
        return await super().enqueue(request)

    async def transfer(self, target: TransferTarget) -> TransferResult:
        self.transcript.append(("transfer", target.kind, target.number, target.timeout))
        return await super().transfer(target)

    async def hangup(self) -> None:
        self.transcript.append(("hangup",))
        await super().hangup()

    async def save_record(self, kind: Any, payload: Any) -> None:
        self.transcript.append(("save", kind, dict(payload)))
        await super().save_record(kind, payload)

    def emit(self, event: str, **fields: Any) -> None:
        if event != "ivr.node_entered":
            self.transcript.append(("emit", event, fields))
        super().emit(event, **fields)


async def run(tmp_path: Path, nodes: str, keys: str = "", *, variables: str = "{}", extra: str = "",
              **port: Any) -> tuple[FlowResult, TranscriptPort]:
    body = "\n".join("  " + line for line in nodes.strip().splitlines())
    targets = "".join(f"  {name}: {{type: hangup}}\n" for name in ("ok", "ko", "other")
                      if re.search(rf"\b{name}\b(?!:)", nodes) and f"  {name}:" not in body)
    (tmp_path / "t.yaml").write_text(f"flow: t\nlanguage: zh\nvariables: {variables}\nnodes:\n{body}\n{targets}")
    if extra:
        (tmp_path / "other.yaml").write_text(extra)
    flows, errors = load_flows([tmp_path])
    assert errors == [], errors
    sim = TranscriptPort(dtmf=keys, **port)
    result = await simulate(flow_set(flows), "t", sim, AT)
    assert result.error is None, result.error
    return result, sim


def tts(*texts: str, language: str = "zh") -> list[tuple[str, str, str]]:
    return [("tts", text, language) for text in texts]


# -- menu ----------------------------------------------------------------------------------------

MENU = """m: {type: menu, prompt: [choose], options: {"1": ok, "#": other}, timeout: 4, retries: 3,
    invalid_prompt: [wrong], timeout_prompt: [silent], default: ko, variable: choice}"""
ASK_MENU = ("collect", tts("choose"), 1, 1, None, 4, 3.0, 30, True)


async def test_menu_retries_with_the_right_prompt_then_takes_the_default(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, MENU, "_ 9 _")
    assert result.visited == ["m", "ko"]
    assert sim.transcript == [ASK_MENU, ("play", tts("silent"), False), ASK_MENU, ("play", tts("wrong"), False),
                              ASK_MENU, ("hangup",)]
    assert "choice" not in result.variables


async def test_menu_key_sets_its_variable_and_reports_it(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, MENU, "9 #")
    assert result.visited == ["m", "other"] and result.variables["choice"] == "#"
    assert sim.transcript == [ASK_MENU, ("play", tts("wrong"), False), ASK_MENU,
                              ("emit", "ivr.input_collected", {"flow": "t", "node": "m", "variable": "choice",
                                                               "value": "#", "sensitive": False}), ("hangup",)]


async def test_menu_without_a_variable_and_a_long_timeout(tmp_path: Path) -> None:
    nodes = 'm: {type: menu, prompt: [choose], options: {"1": ok}, timeout: 45, retries: 1, default: ko}'
    result, sim = await run(tmp_path, nodes, "1")
    assert sim.transcript[0] == ("collect", tts("choose"), 1, 1, None, 45, 3.0, 45, True)  # total >= first
    assert sim.transcript[1] == ("emit", "ivr.input_collected", {"flow": "t", "node": "m", "variable": None,
                                                                  "value": "1", "sensitive": False})
    assert result.visited == ["m", "ok"] and "None" not in result.variables
    result, sim = await run(tmp_path, nodes, "_")   # one attempt: no retry prompt before the default
    assert result.visited == ["m", "ko"] and sim.transcript == [sim.transcript[0], ("hangup",)]


async def test_a_key_that_interrupts_a_prompt_answers_the_next_menu(tmp_path: Path) -> None:
    nodes = f"""
hello: {{type: play, prompts: [welcome, more], barge_in: true, next: m}}
{MENU}"""
    result, sim = await run(tmp_path, nodes, "!1")
    assert result.visited == ["hello", "m", "ok"]
    assert sim.transcript[0] == ("play", tts("welcome", "more"), True)
    assert [entry[0] for entry in sim.transcript] == ["play", "emit", "hangup"]  # no question asked
    result, sim = await run(tmp_path, nodes.replace("barge_in: true", "barge_in: false"), "!1 1")
    assert sim.transcript[0] == ("play", tts("welcome", "more"), False) and sim.transcript[1] == ASK_MENU


# -- collect -------------------------------------------------------------------------------------

COLLECT = r"""c: {type: collect, prompt: [enter], variable: acct, min_digits: 3, max_digits: 6, terminator: "*",
    timeout: 7, inter_digit_timeout: 2, total_timeout: 40, pattern: '[1-9]\d+', retries: 3,
    invalid_prompt: [bad], timeout_prompt: [nothing], next: ok, failure: ko}"""
ASK_COLLECT = ("collect", tts("enter"), 3, 6, "*", 7, 2, 40, True)


async def test_collect_too_short_and_not_matching_then_failure(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, COLLECT, "_ 12* 0123*")
    assert result.visited == ["c", "ko"] and "acct" not in result.variables
    assert sim.transcript == [ASK_COLLECT, ("play", tts("nothing"), False), ASK_COLLECT, ("play", tts("bad"), False),
                              ASK_COLLECT, ("hangup",)]


async def test_collect_accepts_the_shortest_input_and_reports_it(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, COLLECT, "123*")
    assert result.visited == ["c", "ok"] and result.variables["acct"] == "123"
    assert sim.transcript == [ASK_COLLECT, ("emit", "ivr.input_collected", {"flow": "t", "node": "c",
                                                                            "variable": "acct", "value": "123",
                                                                            "sensitive": False}),
                              ("hangup",)]


async def test_collect_defaults_and_no_terminator(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, 'c: {type: collect, prompt: [enter], variable: v, terminator: "", next: ok}',
                            "12345")
    assert sim.transcript[0] == ("collect", tts("enter"), 1, 20, None, 5.0, 3.0, 30.0, True)
    assert result.variables["v"] == "12345"
    result, sim = await run(tmp_path, "c: {type: collect, prompt: [enter], variable: v, next: ok}", "_ _ _")
    assert sim.transcript == [("collect", tts("enter"), 1, 20, "#", 5.0, 3.0, 30.0, True),
                              ("play", tts("您没有输入。"), False)] * 2 + [
                                  ("collect", tts("enter"), 1, 20, "#", 5.0, 3.0, 30.0, True)]
    assert result.visited == ["c"] and result.ended == "end"  # no failure route: the flow ends
    result, sim = await run(tmp_path, "c: {type: collect, prompt: [enter], variable: v, min_digits: 4, next: ok}",
                            "12# 1234#")
    assert sim.transcript[1] == ("play", tts("输入有误，请重新输入。"), False) and result.variables["v"] == "1234"


# -- callback ------------------------------------------------------------------------------------

CALLBACK = """cb: {type: callback, prompt: [offer], number_prompt: [enter], done_prompt: [done], due_minutes: 30,
    timeout: 6, retries: 2, next: ok, declined: ko}"""
OFFER = ("collect", tts("offer"), 1, 1, None, 6, 3.0, 30, True)
ENTER = ("collect", tts("enter"), 5, 20, "#", 6, 3.0, 30, True)


def booked(number: str, *, at: datetime = AT, minutes: float = 30) -> list[Entry]:
    due = at.timestamp() + 60 * minutes
    return [("emit", "ivr.input_collected", {"flow": "t", "node": "cb", "variable": "callback_number",
                                             "value": number}),
            ("save", "callback", {"number": number, "due_at": due, "flow": "t", "queue": "", "when": ""}),
            ("play", tts("done"), False), ("hangup",)]


async def test_callback_on_the_callers_own_number(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, CALLBACK, "1", caller="13800138000")
    assert sim.transcript == [OFFER, *booked("13800138000")]
    assert (result.variables["callback_number"], result.variables["callback_due_at"]) == \
        ("13800138000", AT.timestamp() + 1800)
    assert result.visited == ["cb", "ok"]


async def test_callback_on_another_number_of_five_digits_or_more(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, CALLBACK, "2 1234# 2 12345#")
    assert sim.transcript == [OFFER, ENTER, OFFER, ENTER, *booked("12345")]
    assert result.variables["callback_number"] == "12345"


async def test_callback_without_a_caller_number_asks_for_one_and_declines_after_the_retries(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, CALLBACK, "1 13900139000#", caller="")
    assert sim.transcript[:2] == [OFFER, ENTER] and result.variables["callback_number"] == "13900139000"
    result, sim = await run(tmp_path, CALLBACK, "3 _", caller="13800138000")
    assert sim.transcript == [OFFER, OFFER, ("hangup",)] and result.visited == ["cb", "ko"]
    assert "callback_number" not in result.variables


# -- survey --------------------------------------------------------------------------------------

SURVEY = """s: {type: survey, prompt: [rate], invalid_prompt: [one to five], thanks_prompt: [thanks], timeout: 3,
    retries: 3, comment: true, comment_prompt: [comment please], comment_max_seconds: 30, next: ok}"""
RATE = ("collect", tts("rate"), 1, 1, None, 3, 3.0, 30, True)


async def test_survey_rating_after_two_wrong_keys_and_a_comment(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, SURVEY, "0 6 5", variables="{agent_id: '1001'}")
    comment = "survey_comment-simulated-call-1"
    assert sim.transcript == [
        RATE, ("play", tts("one to five"), False), RATE, ("play", tts("one to five"), False), RATE,
        ("play", tts("comment please"), False), ("record", "survey_comment", 30, 5.0, True, "#"),
        ("save", "survey", {"score": 5, "comment_recording": comment, "flow": "t", "agent_id": "1001"}),
        ("emit", "survey.result", {"flow": "t", "node": "s", "rating": 5, "comment": comment}),
        ("play", tts("thanks"), False), ("hangup",)]
    assert result.variables["survey_score"] == 5


async def test_survey_without_an_answer_and_the_lowest_rating(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, SURVEY, "_ _ _")
    assert sim.transcript[-3:] == [
        ("save", "survey", {"score": None, "comment_recording": None, "flow": "t", "agent_id": None}),
        ("emit", "survey.result", {"flow": "t", "node": "s", "rating": None, "comment": None}), ("hangup",)]
    assert result.variables["survey_score"] is None and ("play", tts("thanks"), False) not in sim.transcript
    result, sim = await run(tmp_path, SURVEY.replace("comment: true", "comment: false"), "1")
    assert sim.transcript == [RATE, ("save", "survey", {"score": 1, "comment_recording": None, "flow": "t",
                                                        "agent_id": None}),
                              ("emit", "survey.result", {"flow": "t", "node": "s", "rating": 1, "comment": None}),
                              ("play", tts("thanks"), False), ("hangup",)]


# -- voicemail, transfer, hangup, play -----------------------------------------------------------------

async def test_voicemail_records_and_stores_the_message(tmp_path: Path) -> None:
    nodes = ("v: {type: voicemail, prompt: [after the tone], max_seconds: 60, silence_seconds: 3, beep: false,"
             " done_prompt: [saved], next: ok}")
    result, sim = await run(tmp_path, nodes)
    name = "voicemail-simulated-call-1"
    assert sim.transcript == [("play", tts("after the tone"), False), ("record", "voicemail", 60, 3, False, "#"),
                              ("save", "voicemail", {"recording": name, "duration": 5.0, "reason": "silence",
                                                     "flow": "t"}),
                              ("play", tts("saved"), False), ("hangup",)]
    assert result.variables["voicemail_recording"] == name
    _, sim = await run(tmp_path, "v: {type: voicemail}")
    assert sim.transcript[1] == ("record", "voicemail", 120.0, 5.0, True, "#")


@pytest.mark.parametrize(("outcome", "route"), [("connected_then_ended", "ok"), ("no_answer", "ko"),
                                                ("busy", "ko"), ("failed", "ko")])
async def test_transfer_plays_dials_and_routes(tmp_path: Path, outcome: str, route: str) -> None:
    nodes = ("x: {type: transfer, to: '{target}', kind: extension, timeout: 20, prompt: [connecting],"
             " next: ok, failure: ko}")
    result, sim = await run(tmp_path, nodes, variables="{target: '8002'}", transfer_result=outcome)
    assert sim.transcript == [("play", tts("connecting"), False), ("transfer", "extension", "8002", 20),
                              ("hangup",)]
    assert result.visited == ["x", route] and result.variables["transfer_result"] == outcome
    _, sim = await run(tmp_path, "x: {type: transfer, to: '95588'}")
    assert sim.transcript == [("play", tts("正在为您转接，请稍候。"), False), ("transfer", "external", "95588", 30.0)]


async def test_hangup_says_goodbye_then_hangs_up(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, "h: {type: hangup, prompt: [bye]}")
    assert sim.transcript == [("play", tts("bye"), False), ("hangup",)] and result.ended == "hangup"
    result, sim = await run(tmp_path, "h: {type: play, prompts: [last words]}")
    assert sim.transcript == [("play", tts("last words"), False)] and result.ended == "end"


async def test_play_speaks_each_kind_with_variables_filled_in(tmp_path: Path) -> None:
    nodes = ("p: {type: play, prompts: ['Hi {name}', {money: '{amount}'}, {number: 7}, {sound: beep},"
             " {digits: '{missing}'}, {date: '2026-12-01'}], next: ok}")
    result, sim = await run(tmp_path, nodes, variables="{name: Li, amount: 12.0, missing: null}")
    assert sim.transcript[0] == ("play", [("tts", "Hi Li", "zh"), ("money", "12", "zh"), ("number", "7", "zh"),
                                          ("sound", "beep", "zh"), ("digits", "", "zh"),
                                          ("date", "2026-12-01", "zh")], False)
    assert result.visited == ["p", "ok"]


# -- http ------------------------------------------------------------------------------------------

HTTP = """h: {type: http, url: "http://crm/b?n={caller}", method: POST, headers: {X-Did: "{did}"}, timeout: 2.5,
    body: {n: "{caller}", list: ["{did}", 5], nested: {a: "{caller}"}}, map: {bal: data.balance, due: data.due},
    next: ok, failure: ko}"""


async def test_http_sends_the_filled_request_and_maps_the_answer(tmp_path: Path) -> None:
    answer = {"crm/b": {"status": 200, "json": {"data": {"balance": "8.50", "due": "2026-12-01"}}}}
    result, sim = await run(tmp_path, HTTP, http_answers=answer, did="4008001234")
    assert sim.transcript[0] == ("http", "POST", "http://crm/b?n=13800138000", {"X-Did": "4008001234"},
                                 {"n": "13800138000", "list": ["4008001234", 5], "nested": {"a": "13800138000"}},
                                 2.5)
    assert (result.variables["bal"], result.variables["due"], result.variables["http_status"]) == \
        ("8.50", "2026-12-01", 200)
    assert result.visited == ["h", "ok"] and "http_error" not in result.variables


@pytest.mark.parametrize(("answer", "error"), [
    ({"status": 199}, "HTTP 199"), ({"status": 300}, "HTTP 300"), ({"status": 503}, "HTTP 503"),
    ({"status": 0, "error": "timed out after 2.5 s"}, "timed out after 2.5 s"),
    ({"status": 200, "json": {"data": {"balance": "1"}}}, "the answer has no 'data.due'"),
    ({"status": 200, "json": ["not", "a", "mapping"]}, "the answer has no 'data.balance'"),
])
async def test_http_failures_take_the_failure_route_with_the_reason(tmp_path: Path, answer: dict[str, Any],
                                                                    error: str) -> None:
    result, _ = await run(tmp_path, HTTP, http_answers={"crm/b": answer})
    assert result.visited == ["h", "ko"]
    assert (result.variables["http_error"], result.variables["http_status"]) == (error, answer["status"])
    assert "bal" not in result.variables  # nothing half-mapped


async def test_http_any_2xx_is_a_success_and_get_is_the_default(tmp_path: Path) -> None:
    nodes = 'h: {type: http, url: "http://crm/x", next: ok, failure: ko}'
    result, sim = await run(tmp_path, nodes, http_answers={"crm/x": {"status": 299}})
    assert result.visited == ["h", "ok"]
    assert sim.transcript[0] == ("http", "GET", "http://crm/x", {}, None, 5.0)


# -- queue -----------------------------------------------------------------------------------------

QUEUE = """q: {type: queue, queue: "q_{tier}", skills: {mandarin: 5}, priority: "tier == 'vip' and 10 or 0",
    data: [tier, region.city, account], answered: ok, overflow: other, otherwise: ko}"""


async def test_queue_request_carries_queue_skills_priority_and_data(tmp_path: Path) -> None:
    result, sim = await run(tmp_path, QUEUE, variables="{tier: vip, account: '42', region: {city: 深圳市}}")
    assert sim.transcript[0] == ("enqueue", "q_vip", {"mandarin": 5}, 10, {"tier": "vip", "region.city": "深圳市",
                                                                           "account": "42"})
    assert (result.variables["queue_result"], result.variables["agent_id"]) == ("answered_then_ended", "sim-agent")
    assert result.visited == ["q", "ok"]


@pytest.mark.parametrize(("priority", "expected"), [("7", 7), ("'3'", 3), ("2.9", 2), ("'x'", 0), ("null", 0),
                                                    ("1 / 0", 0), ("[1]", 0)])
async def test_queue_priority_is_an_integer(tmp_path: Path, priority: str, expected: int) -> None:
    nodes = f'q: {{type: queue, queue: general, priority: "{priority}", otherwise: ko}}'
    _, sim = await run(tmp_path, nodes)
    assert sim.transcript[0][3] == expected


async def test_queue_without_data_sends_every_variable_but_now(tmp_path: Path) -> None:
    _, sim = await run(tmp_path, "q: {type: queue, queue: general, priority: 4, otherwise: ko}",
                       variables="{tier: gold}")
    queue, skills, priority, data = sim.transcript[0][1:]
    assert (queue, skills, priority) == ("general", {}, 4)
    assert data["tier"] == "gold" and data["caller"] == "13800138000" and "now" not in data and "today" in data


@pytest.mark.parametrize(("outcome", "target", "route"), [
    ("overflow", "node:ok", "ok"), ("transferred", "node:ko", "ko"), ("overflow", "voicemail", "other"),
    ("overflow", None, "other"), ("overflow", "node:other", "other"),
    ("transferred", None, "ok"), ("answered_then_ended", None, "ok"), ("timeout", None, "ko"),
    ("no_agents", None, "ko"), ("unavailable", None, "ko"),
])
async def test_queue_outcomes_take_their_routes(tmp_path: Path, outcome: str, target: str | None,
                                                route: str) -> None:
    result, _ = await run(tmp_path, QUEUE, variables="{tier: vip, account: '1'}", queue_result=outcome,
                          overflow_target=target)
    assert result.visited == ["q", route]
    assert (result.variables["queue_result"], result.variables["overflow_target"]) == \
        (outcome, target if outcome in ("overflow", "transferred") else None)


# -- set, switch, goto -------------------------------------------------------------------------------

async def test_set_evaluates_text_and_keeps_other_values(tmp_path: Path) -> None:
    nodes = """s: {type: set, values: {a: "1 + 2", b: 5, c: [x], language: "'en'", d: "a * 2"}, next: p}
p: {type: play, prompts: [hi]}"""
    result, sim = await run(tmp_path, nodes)
    assert (result.variables["a"], result.variables["b"], result.variables["c"], result.variables["d"]) == \
        (3, 5, ["x"], 6)
    assert sim.transcript == [("play", tts("hi", language="en"), False)]  # `language` switches the voice


async def test_switch_takes_the_first_true_case_in_order(tmp_path: Path) -> None:
    nodes = """s: {type: switch, cases: [{when: "n > 5", next: ok}, {when: "n > 1", next: other}], default: ko}"""
    for n, route in ((9, "ok"), (3, "other"), (1, "ko")):
        result, _ = await run(tmp_path, nodes, variables=f"{{n: {n}}}")
        assert result.visited == ["s", route], n


async def test_goto_a_node_and_another_flows_node(tmp_path: Path) -> None:
    extra = ("flow: other_flow\nlanguage: en\nnodes:\n  start: {type: play, prompts: [first], next: late}\n"
             "  late: {type: play, prompts: [hello]}\n")
    result, sim = await run(tmp_path, "g: {type: goto, flow: other_flow, node: late}", extra=extra)
    assert result.visited == ["g", "late"] and sim.transcript == [("play", tts("hello", language="en"), False)]
    result, _ = await run(tmp_path, "g: {type: goto, flow: other_flow}", extra=extra)
    assert result.visited == ["g", "start", "late"] and result.variables["language"] == "en"
    result, _ = await run(tmp_path, "g: {type: goto, node: ok}")
    assert result.visited == ["g", "ok"]


async def test_survey_accepts_every_rating_and_retries_exactly(tmp_path: Path) -> None:
    for key in "12345":
        result, _ = await run(tmp_path, SURVEY.replace("comment: true", "comment: false"), key)
        assert result.variables["survey_score"] == int(key)
    result, sim = await run(tmp_path, SURVEY, "_ _ _")
    assert sim.transcript == [RATE, ("play", tts("one to five"), False), RATE, ("play", tts("one to five"), False),
                              RATE, *sim.transcript[5:]] and len(sim.transcript) == 8


class ShortRecordingPort(TranscriptPort):
    def __init__(self, duration: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.duration = duration

    async def record(self, spec: RecordSpec) -> RecordingResult:
        self.transcript.append(("record", spec.kind))
        return RecordingResult("empty", self.duration, "silence")


@pytest.mark.parametrize(("duration", "comment"), [(0.0, None), (0.5, "empty"), (3.0, "empty")])
async def test_a_survey_comment_is_kept_only_when_something_was_recorded(tmp_path: Path, duration: float,
                                                                         comment: str | None) -> None:
    (tmp_path / "t.yaml").write_text(f"flow: t\nnodes:\n  {SURVEY.replace('next: ok', 'next: ok')}\n"
                                     "  ok: {type: hangup}\n")
    flows, errors = load_flows([tmp_path])
    assert errors == []
    sim = ShortRecordingPort(duration, dtmf="4")
    await simulate(flow_set(flows), "t", sim, AT)
    (saved,) = [entry for entry in sim.transcript if entry[0] == "save"]
    assert saved[2]["comment_recording"] == comment


async def test_region_sets_the_callers_region_and_a_city_route_wins(tmp_path: Path) -> None:
    nodes = "r: {type: region, routes: {广东: ok, 广州: other}, default: ko}"
    result, _ = await run(tmp_path, nodes, caller="13802880000")   # a Guangzhou mobile
    assert result.visited == ["r", "other"]
    assert result.variables["region"] == {"description": "广东省广州市", "province": "广东省", "city": "广州市",
                                          "carrier": "中国移动"}
    result, _ = await run(tmp_path, nodes, caller="")
    assert result.visited == ["r", "ko"] and result.variables["region"] == {}


async def test_http_200_without_json_is_a_failure(tmp_path: Path) -> None:
    result, _ = await run(tmp_path, HTTP, http_answers={"crm/b": {"status": 200, "text": "<html>"}})
    assert result.visited == ["h", "ko"] and result.variables["http_error"] == "the answer has no 'data.balance'"


async def test_schedule_always_open_single_ranges_and_holidays_without_their_own_route(tmp_path: Path) -> None:
    sunday_night = datetime.fromisoformat("2026-11-29T03:00+08:00")
    (tmp_path / "t.yaml").write_text(
        "flow: t\nnodes:\n  s: {type: schedule, hours: always, holidays: ['2026-10-01'], open: ok, closed: ko}\n"
        "  ok: {type: hangup}\n  ko: {type: hangup}\n")
    flows, errors = load_flows([tmp_path])
    assert errors == []
    assert (await simulate(flow_set(flows), "t", TranscriptPort(), sunday_night)).visited == ["s", "ok"]
    holiday = datetime.fromisoformat("2026-10-01T10:00+08:00")
    assert (await simulate(flow_set(flows), "t", TranscriptPort(), holiday)).visited == ["s", "ko"]
    (tmp_path / "t.yaml").write_text(
        "flow: t\nnodes:\n  s: {type: schedule, hours: {daily: '09:00-10:00'}, open: ok, closed: ko}\n"
        "  ok: {type: hangup}\n  ko: {type: hangup}\n")
    flows, errors = load_flows([tmp_path])
    assert errors == []
    nine_thirty = datetime.fromisoformat("2026-11-29T09:30+08:00")
    assert (await simulate(flow_set(flows), "t", TranscriptPort(), nine_thirty)).visited == ["s", "ok"]


ASSIGNED = {  # node -> the variables a later node may use without declaring them
    "collect": ("{type: collect, prompt: x, variable: acct, next: use}", ["acct"]),
    "menu": ("{type: menu, prompt: x, options: {'1': use}, default: use, variable: key}", ["key"]),
    "http": ("{type: http, url: u, map: {bal: a.b}, next: use, failure: use}", ["bal", "http_status", "http_error"]),
    "queue": ("{type: queue, queue: q, otherwise: use}", ["agent_id", "queue_result", "overflow_target"]),
    "region": ("{type: region, routes: {广东: use}, default: use}", ["region"]),
    "set": ("{type: set, values: {tier: \"'vip'\"}, next: use}", ["tier"]),
    "transfer": ("{type: transfer, to: '1', next: use, failure: use}", ["transfer_result"]),
    "voicemail": ("{type: voicemail, next: use}", ["voicemail_recording"]),
    "callback": ("{type: callback, next: use, declined: use}", ["callback_number", "callback_due_at"]),
    "survey": ("{type: survey, next: use}", ["survey_score"]),
}


@pytest.mark.parametrize("node_type", sorted(ASSIGNED))
def test_variables_a_node_sets_are_known_to_later_nodes(node_type: str) -> None:
    from controller.ivr.flow import parse_flow

    node, names = ASSIGNED[node_type]
    used = " ".join("{" + name + "}" for name in names)
    text = f"flow: t\nnodes:\n  first: {node}\n  use: {{type: play, prompts: ['{used}']}}\n"
    assert parse_flow(text, "t.yaml")[1] == []
    _, errors = parse_flow(text.replace(used, used + " {other}"), "t.yaml")
    assert [e.message for e in errors] == [
        "node 'use': unknown variable 'other' (declare it under variables: or set it in a node first)"]
