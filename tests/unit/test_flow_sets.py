"""A set of flows: cross-flow checks (ids, DIDs, subflow targets, sound files), reading files, the
prompts known before a call, and the live set's DID lookup."""

from __future__ import annotations

from pathlib import Path

from controller.ivr.flow import (
    EMPTY,
    flow_files,
    flow_set,
    load_flows,
    parse_flow,
    sound_prompts,
    static_prompts,
    validate_set,
)
from controller.ivr.port import Prompt


def flow(text: str, source: str = "f.yaml") -> object:
    parsed, errors = parse_flow(text, source)
    assert errors == [] and parsed is not None, errors
    return parsed


A = 'flow: a\ndids: ["100", "101"]\nnodes:\n  x: {type: goto, flow: b, node: y}\n'
B = 'flow: b\nlanguage: en\ndids: ["200"]\nnodes:\n  y: {type: hangup}\n'


def test_cross_flow_errors_name_both_files() -> None:
    a, b = flow(A, "a.yaml"), flow(B, "b.yaml")
    assert validate_set([a, b]) == []  # type: ignore[list-item]
    again = flow(A.replace("flow: a", "flow: b").replace('"100", "101"', '"101", "300"'), "c.yaml")
    assert [str(e) for e in validate_set([a, b, again])] == [  # type: ignore[list-item]
        "c.yaml:1:7: flow id 'b' is already used by b.yaml",
        "c.yaml:2:8: DID 101 is already served by flow 'a' (a.yaml)",
    ]


def test_subflow_targets_must_exist() -> None:
    a = flow(A, "a.yaml")
    assert [str(e) for e in validate_set([a])] == ["a.yaml:4:25: node 'x': no flow 'b'"]  # type: ignore[list-item]
    b = flow(B.replace("  y:", "  z:"), "b.yaml")
    assert [str(e) for e in validate_set([a, b])] == [  # type: ignore[list-item]
        "a.yaml:4:25: node 'x': flow 'b' has no node 'y'"]


def test_sound_files_are_checked_per_language_and_templates_are_not() -> None:
    text = ("flow: s\nlanguage: en\nnodes:\n"
            "  p: {type: play, prompts: [{sound: here}, {sound: gone}, {sound: 'x/{v}'}]}\nvariables: {v: 1}\n")
    s = flow(text)
    asked: list[tuple[str, str]] = []

    def exists(name: str, language: str) -> bool:
        asked.append((name, language))
        return name == "here"

    assert [str(e) for e in validate_set([s], exists)] == [  # type: ignore[list-item]
        "f.yaml:4:44: sound file 'gone' not found in the Asterisk sounds directory"]
    assert asked == [("here", "en"), ("gone", "en")]
    path = ("nodes", "p", "prompts")
    assert list(sound_prompts(s)) == [((*path, "0"), "here"), ((*path, "1"), "gone"),  # type: ignore[arg-type]
                                      ((*path, "2"), "x/{v}")]


def test_static_prompts_are_the_ones_known_before_a_call() -> None:
    text = ("flow: s\nlanguage: en\nvariables: {v: 1}\nnodes:\n"
            "  p: {type: play, prompts: [Hello, {sound: beep}, {recording: r}, 'Hi {v}', {number: 42}], next: m}\n"
            "  m: {type: menu, prompt: [Choose], options: {'1': p}, default: p, invalid_prompt: [Again]}\n")
    s = flow(text)
    assert list(static_prompts(s)) == [  # type: ignore[arg-type]
        ("p", Prompt("tts", "Hello", "en")), ("p", Prompt("number", "42", "en")),
        ("m", Prompt("tts", "Choose", "en")), ("m", Prompt("tts", "Again", "en")),
        ("m", Prompt("tts", "您没有输入。", "en"))]


def test_files_and_directories(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(A)
    (tmp_path / "b.yml").write_text(B)
    (tmp_path / "notes.txt").write_text("not a flow")
    (tmp_path / "sub").mkdir()
    assert flow_files([tmp_path]) == [tmp_path / "a.yaml", tmp_path / "b.yml"]
    assert flow_files([tmp_path / "notes.txt"]) == [tmp_path / "notes.txt"]
    flows, errors = load_flows([tmp_path])
    assert (sorted(f.id for f in flows), errors) == (["a", "b"], [])
    (tmp_path / "c.yaml").write_bytes(b"flow: c\n\xff\xfe")
    (tmp_path / "d.yaml").write_text(B.replace("flow: b", "flow: d").replace('"200"', '"201"'))
    flows, errors = load_flows([tmp_path])
    assert [f.id for f in flows] == ["a", "b", "d"]  # the files after an unreadable one are read
    assert len(errors) == 1 and str(errors[0]).startswith(f"{tmp_path / 'c.yaml'}:1:1: cannot read the file: ")
    flows, errors = load_flows([tmp_path / "missing.yaml"])
    assert flows == [] and str(errors[0]).startswith(f"{tmp_path / 'missing.yaml'}:1:1: cannot read the file: ")


def test_errors_are_sorted_by_file_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("flow: b\nnodes:\n  x: {type: dance}\n")
    (tmp_path / "a.yaml").write_text("flow: a\nlanguage: fr\nnodes:\n  x: {type: hangup, colour: red}\n")
    _, errors = load_flows([tmp_path])
    assert [(Path(e.file).name, e.line) for e in errors] == [("a.yaml", 2), ("a.yaml", 4), ("b.yaml", 3)]


def test_the_live_set_finds_flows_by_did() -> None:
    a, b = flow(A, "a.yaml"), flow(B, "b.yaml")
    live = flow_set([a, b])  # type: ignore[list-item]
    assert live.flow_for_did("101") is a and live.flow_for_did("200") is b and live.flow_for_did("999") is None
    assert EMPTY.flow_for_did("100") is None and dict(EMPTY.flows) == {}
    moved = flow_set([a, b], {"100": "b", "999": "a"})  # type: ignore[list-item]
    assert (moved.flow_for_did("100"), moved.flow_for_did("101"), moved.flow_for_did("999")) == (b, a, a)


def test_the_version_is_the_texts_hash_and_defaults_are_filled_in() -> None:
    import hashlib

    text = "flow: v\nnodes:\n  h: {type: hangup}\n"
    v = flow(text)
    assert v.version == hashlib.sha256(text.encode()).hexdigest()[:12]  # type: ignore[attr-defined]
    assert (v.language, v.dids, v.variables, v.start, v.recording, v.source) == \
        ("zh", [], {}, "h", "on_demand", "f.yaml")  # type: ignore[attr-defined]
    w = flow("flow: w\nlanguage: en\ndids: [4008001234]\nstart: b\nrecording: never\nvariables: {x: 1}\n"
             "nodes:\n  a: {type: hangup}\n  b: {type: goto, node: a}\n")
    assert (w.language, w.dids, w.variables, w.start, w.recording) == \
        ("en", ["4008001234"], {"x": 1}, "b", "never")  # type: ignore[attr-defined]


def errors_of(text: str) -> list[str]:
    return [str(e) for e in parse_flow(text, "t.yaml")[1]]


def test_a_character_yaml_does_not_allow_is_placed_exactly() -> None:
    assert errors_of("flow: a\x00\n") == ["t.yaml:1:8: YAML: the character '\\x00' is not allowed in YAML"]
    assert errors_of('flow: a\nnodes:\n  h: {type: hangup, prompt: "a\x07b"}\n') == [
        "t.yaml:3:31: YAML: the character '\\x07' is not allowed in YAML"]


def test_graph_checks_stop_at_missing_routes_and_report_loops_once() -> None:
    assert errors_of("flow: a\nnodes:\n  p: {type: play, prompts: x, next: nowhere}\n  q: {type: hangup}\n") == [
        "t.yaml:3:37: node 'p': no node 'nowhere' in flow 'a'"]  # not also "q is unreachable"
    assert errors_of("flow: a\nnodes:\n  a: {type: goto, node: b}\n  b: {type: goto, node: a}\n"
                     "  m: {type: menu, prompt: x, options: {'1': a}, default: b}\n") == [
        "t.yaml:5:3: node 'm' is unreachable (no route leads to it from the start node 'a')",
        "t.yaml:3:3: loop a → b → a never waits for the caller (add a menu, collect or other input node to it)"]


def test_accepted_details() -> None:
    assert errors_of('flow: a\ndids: ["1", "1"]\ndescription: the same DID twice in one flow is fine\n'
                     "nodes:\n  h: {type: hangup}\n") == []
    assert errors_of("\ufeffflow: a\nnodes:\n  h: {type: hangup}\n") == []  # a byte-order mark
    assert errors_of("flow: a\nnodes:\n  2: {type: goto, node: 3}\n  3: {type: hangup}\n") == []  # numeric ids
    two, _ = parse_flow('flow: a\ndids: ["1", "1"]\nnodes:\n  h: {type: hangup}\n', "t.yaml")
    assert validate_set([two]) == []  # type: ignore[list-item]


def test_loops_are_found_behind_a_first_route_that_waits_and_reported_once() -> None:
    assert errors_of("flow: a\nnodes:\n  a: {type: switch, cases: [{when: 'true', next: m}], default: b}\n"
                     "  b: {type: goto, node: a}\n  m: {type: menu, prompt: x, options: {'1': a}, default: a}\n") == [
        "t.yaml:3:3: loop a → b → a never waits for the caller (add a menu, collect or other input node to it)"]
    assert errors_of("flow: a\nnodes:\n  a: {type: goto, node: b}\n"
                     "  b: {type: switch, cases: [{when: 'true', next: a}], default: a}\n") == [
        "t.yaml:3:3: loop a → b → a never waits for the caller (add a menu, collect or other input node to it)"]


def test_unknown_variables_in_every_kind_of_parameter() -> None:
    unknown = "unknown variable 'who' (declare it under variables: or set it in a node first)"
    assert errors_of("flow: a\nnodes:\n  c: {type: collect, prompt: x, variable: v, invalid_prompt: ['{who}'],"
                     " next: c}\n") == [f"t.yaml:3:63: node 'c': {unknown}"]  # after a parameter left unset
    assert errors_of("flow: a\nnodes:\n  h: {type: http, url: u, body: {a: ['{who}']}, next: e, failure: e}\n"
                     "  e: {type: hangup}\n") == [f"t.yaml:3:38: node 'h': {unknown}"]
