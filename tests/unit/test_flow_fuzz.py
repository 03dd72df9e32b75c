"""The flow loader never raises: any text, however malformed, gives `file:line:column` errors or a flow.

Hypothesis writes random YAML-ish documents (structures made of the flows' own vocabulary, and raw
token soup with anchors, aliases, tags and brackets) and random mutations of the shipped flows in
ivr_flows/ (text edits and value swaps at random paths). `CCC_FUZZ_EXAMPLES=5000` runs it longer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.ivr.flow import FLOW_KEYS, FlowError, load_flows, parse_flow, validate_set
from controller.ivr.nodes import NODE_TYPES

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {path.name: path.read_text(encoding="utf-8") for path in sorted((REPO / "ivr_flows").glob("*.yaml"))}
# Under `make mutate` (mutmut sets MUTANT_UNDER_TEST) fewer: these run for most mutants of flow.py.
FUZZ = settings(max_examples=int(os.environ.get("CCC_FUZZ_EXAMPLES", "40" if "MUTANT_UNDER_TEST" in os.environ
                                                else "200")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

PARAM_NAMES = sorted({name for cls in NODE_TYPES.values() for name in cls.params})
WORDS = sorted({*FLOW_KEYS, *NODE_TYPES, *PARAM_NAMES, "greeting", "menu", "bye", "a", "x", "1", "vip",
                "mon-fri", "08:00-18:00", "always", "Asia/Shanghai", "tier == 'vip'", "sound:beep", "{caller}",
                "2026-02-30", "2026-10-01", "2026-13-01 25:61:00", "!!binary ====", "!!timestamp x", "0x1F", "1e400",
                ".inf", "-.nan", "~", "yes", "no", "=", "<<"})
EXPRESSIONS = st.lists(st.sampled_from([*"ab1 ()[]'\",.-+*/<>=!", "and ", "or ", "not ", "in ", "null"]),
                       max_size=30).map("".join)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                    st.sampled_from(WORDS), st.text(max_size=8), EXPRESSIONS)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(WORDS), st.integers(0, 9)), inner, max_size=5)), max_leaves=30)
TOKENS = ["\n", "  ", "- ", ": ", "[", "]", "{", "}", ",", "&a ", "*a", "&b ", "*b", "!!str ", "!!map ",
          "!!python/object:os.system ", "<<: ", "? ", "'", '"', "#", "|\n", ">\n", "---\n", "...\n", "%YAML 1.1\n",
          "\t", "\x00", "\ufeff", "~", *WORDS]


def check_never_raises(text: str, source: str = "fuzz.yaml") -> None:
    flow, errors = parse_flow(text, source)
    assert all(isinstance(e, FlowError) and e.file == source and e.line >= 1 and e.column >= 1 for e in errors)
    assert (flow is None) == bool(errors), (flow, errors)
    if flow is not None:
        validate_set([flow])
        str(flow.nodes)


@FUZZ
@given(VALUES)
def test_random_documents_give_errors_not_exceptions(document: Any) -> None:
    check_never_raises(yaml.safe_dump(document, allow_unicode=True))


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(FLOW_KEYS)), VALUES, max_size=6),
       st.dictionaries(st.sampled_from(["a", "b", "c"]), st.one_of(VALUES, st.fixed_dictionaries(
           {"type": st.sampled_from(sorted(NODE_TYPES))},
           optional={name: VALUES for name in PARAM_NAMES[:12]})), max_size=4))
def test_random_flows_give_errors_not_exceptions(top: dict[str, Any], nodes: dict[str, Any]) -> None:
    check_never_raises(yaml.safe_dump({**top, "nodes": nodes}, allow_unicode=True))


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60))
def test_token_soup_gives_errors_not_exceptions(tokens: list[str]) -> None:
    check_never_raises("".join(tokens))


def _set_at(data: Any, choices: list[int], value: Any) -> Any:
    """`data` with the value at a path picked by `choices` replaced by `value`."""
    if not choices or not isinstance(data, dict | list) or not data:
        return value
    keys = list(data) if isinstance(data, dict) else list(range(len(data)))
    key = keys[choices[0] % len(keys)]
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[key] = _set_at(data[key], choices[1:], value)  # type: ignore[index]
    return copy


@FUZZ
@given(st.sampled_from(sorted(SHIPPED)), st.lists(st.integers(0, 1000), min_size=1, max_size=6), VALUES)
def test_shipped_flows_with_a_value_replaced(name: str, choices: list[int], value: Any) -> None:
    data = yaml.safe_load(SHIPPED[name])
    check_never_raises(yaml.safe_dump(_set_at(data, choices, value), allow_unicode=True), name)


@FUZZ
@given(st.sampled_from(sorted(SHIPPED)), st.lists(st.tuples(
    st.sampled_from(["delete", "duplicate", "insert", "replace", "indent", "truncate"]),
    st.integers(0, 10**6), st.sampled_from(TOKENS)), min_size=1, max_size=4))
def test_shipped_flows_with_text_edits(name: str, edits: list[tuple[str, int, str]]) -> None:
    lines = SHIPPED[name].splitlines(keepends=True)
    for action, where, token in edits:
        if not lines:
            break
        index = where % len(lines)
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "insert":
            column = where % (len(lines[index]) or 1)
            lines[index] = lines[index][:column] + token + lines[index][column:]
        elif action == "replace":
            column = where % (len(lines[index]) or 1)
            lines[index] = lines[index][:column] + token + lines[index][column + len(token):]
        elif action == "indent":
            lines[index] = "  " + lines[index]
        else:
            lines = lines[:index]
    check_never_raises("".join(lines), name)


MALFORMED = {
    "start is a list": ("flow: a\nstart: [greeting]\nnodes:\n  greeting: {type: hangup}\n", 2, 8,
                        "start: expected a node id, got ['greeting']"),
    "type is a list": ("flow: a\nnodes:\n  x: {type: [hangup]}\n", 3, 13,
                       "node 'x': unknown type ['hangup']"),
    "recursive alias": ("flow: a\nnodes: &n\n  x: *n\n", 3, 3, "YAML: a recursive alias: nodes.x contains itself"),
    "an alias in a list": ("flow: a\nnodes: &n\n  x: [*n]\n", 3, 6, "YAML: a recursive alias: nodes.x.0 contains"
                                                                   " itself"),
    "billion laughs": ("".join(f"{name}: &{name} [{', '.join([item] * 10)}]\n" for name, item in
                               [("a", "x"), ("b", "*a"), ("c", "*b"), ("d", "*c"), ("e", "*d"), ("f", "*e")]),
                       5, 4, "more than 100000 values in e (aliases expanding without bound?)"),
    "deeply nested expression": ("flow: a\nnodes:\n  s: {type: switch, cases: [{when: '" + "(" * 2000 + "1"
                                 + ")" * 2000 + "', next: h}], default: h}\n  h: {type: hangup}\n", 3, 36,
                                 "the expression nests too deeply (more than 64 levels)"),
    "a long chain": ("flow: a\nnodes:\n  s: {type: set, values: {x: '" + "+".join(["1"] * 3000) + "'}, next: h}\n"
                     "  h: {type: hangup}\n", 3, 30, "the expression nests too deeply (more than 64 levels)"),
    "deep regex": ("flow: a\nnodes:\n  c: {type: collect, prompt: hi, variable: v, pattern: '" + "(" * 5000
                   + ")" * 5000 + "', next: c}\n", 3, 56, "invalid regular expression: too large or nested too"
                                                           " deeply"),
    "python tag": ("flow: !!python/object:os.system a\nnodes:\n  h: {type: hangup}\n", 1, 7,
                   "YAML: could not determine a constructor for the tag"),
    "duplicate node": ("flow: a\nnodes:\n  h: {type: hangup}\n  h: {type: play, prompts: [x]}\n", 4, 3,
                       "duplicate key 'h'"),
    "merge key": ("flow: a\nnodes:\n  h: {<<: {type: hangup}}\n", 3, 7, "merge keys (<<) are not supported"),
    "mapping as key": ("flow: a\nnodes:\n  ? {x: 1}\n  : {type: hangup}\n", 3, 5, "a key must be a plain value"),
    "infinite timeout": ("flow: a\nnodes:\n  m: {type: menu, prompt: hi, options: {'1': m}, default: m,"
                         " timeout: .inf}\n", 3, 71, "timeout: expected a number of seconds (above 0), got inf"),
}


def test_malformed_flows_that_used_to_raise_are_errors_at_their_place() -> None:
    for case, (text, line, column, message) in MALFORMED.items():
        flow, errors = parse_flow(text, "bad.yaml")
        assert flow is None, case
        assert [(e.line, e.column) for e in errors] == [(line, column)], (case, [str(e) for e in errors])
        assert message in errors[0].message, (case, errors[0].message)


def test_a_file_the_checks_did_not_foresee_is_one_error_not_an_exception(tmp_path: Path, monkeypatch: Any,
                                                                          caplog: Any) -> None:
    """The last line of defence in `load_flows`: a check that raises is that file's error."""
    (tmp_path / "good.yaml").write_text("flow: good\nnodes:\n  h: {type: hangup}\n")
    (tmp_path / "odd.yaml").write_text("flow: odd\nnodes:\n  h: {type: hangup}\n")

    def broken_check(self: Any, report: Any) -> None:
        if self.id == "h" and "odd" in report.source:
            raise KeyError("surprise")

    monkeypatch.setattr(NODE_TYPES["hangup"], "check", broken_check)
    flows, errors = load_flows([tmp_path])
    assert [f.id for f in flows] == ["good"]
    assert [str(e) for e in errors] == [f"{tmp_path / 'odd.yaml'}:1:1: cannot check this flow (KeyError:"
                                        " 'surprise'); please report it"]
    (record,) = [r for r in caplog.records if r.name == "controller.ivr"]
    assert record.getMessage() == f"IVR flow {tmp_path / 'odd.yaml'}: unexpected error while checking it"
    assert record.exc_info is not None and "surprise" in str(record.exc_info[1])  # the traceback is logged


def test_the_value_limit_is_exact() -> None:
    """Root mapping, the flow's id and the list count too: 3 + items values in all."""
    from controller.ivr.flow import MAX_VALUES

    def document(items: int) -> str:
        return "flow: a\nx: [" + ",".join(["1"] * items) + "]\n"

    _, errors = parse_flow(document(MAX_VALUES - 3), "big.yaml")
    assert [e.message for e in errors][:1] == ["unknown key 'x' (expected one of: description, dids, flow, language,"
                                               " nodes, recording, start, variables)"]
    _, errors = parse_flow(document(MAX_VALUES - 2), "big.yaml")
    assert [str(e) for e in errors] == ["big.yaml:2:4: more than 100000 values in x (aliases expanding without"
                                        " bound?)"]
