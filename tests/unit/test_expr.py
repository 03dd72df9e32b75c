"""The flows' expression language (controller/ivr/expr.py): every operator, its precedence, types,
errors, and a property test against a reference evaluation written here, independently.

The property test builds random expression trees, renders them to text with as few parentheses as the
documented precedence allows (plus some extra ones), and compares what the evaluator computes from the
text with what `reference` computes from the tree with Python's own operators.
"""

from __future__ import annotations

import math
import os
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.ivr import expr


def ev(text: str, **variables: Any) -> Any:
    return expr.evaluate(expr.parse(text), variables)


# -- examples -----------------------------------------------------------------------------------

COMPARISONS = [
    ("1 < 2", True), ("2 < 2", False), ("3 < 2", False),
    ("1 <= 2", True), ("2 <= 2", True), ("3 <= 2", False),
    ("1 > 2", False), ("2 > 2", False), ("3 > 2", True),
    ("1 >= 2", False), ("2 >= 2", True), ("3 >= 2", True),
    ("2 == 2", True), ("2 == 3", False), ("2 != 2", False), ("2 != 3", True),
    ("2.5 < 3", True), ("2.0 == 2", True), ("0.1 + 0.2 > 0.3", True),
    ("'a' == 'a'", True), ("'a' == 'b'", False), ("'a' != 'b'", True),
    ("'a' < 'b'", False), ("'b' >= 'a'", False),            # texts are not ordered: only numbers are
    ("null == null", True), ("null == 0", False), ("null == ''", False), ("null < 1", False),
    ("true == true", True), ("true == 1", False), ("false == 0", False), ("true != 1", True),
    ("true < 2", False), ("[1, 2] == [1, 2]", True), ("[1, 2] == [2, 1]", False), ("[1] == 1", False),
    ("[1, 'x'] == ['1', 'x']", True), ("[true] == [1]", False),
    ("'1.0' == '1'", False), ("'1.0' == 1", True), ("1 == '1.0'", True), ("'01' == '01'", True),
    ("'b' > 'a'", False), ("null <= 1", False), ("[1] > 0", False), ("'x' >= null", False), ("[1] == '1'", False),
    ("null == [null]", False),
]

MEMBERSHIP = [
    ("2 in [1, 2, 3]", True), ("4 in [1, 2, 3]", False), ("2 not in [1, 2, 3]", False), ("4 not in [1, 2]", True),
    ("'2' in [1, 2]", True), ("1 in [true]", False), ("null in [null]", True), ("null in []", False),
    ("'ell' in 'hello'", True), ("'xyz' in 'hello'", False), ("'ell' not in 'hello'", False),
    ("5 in '12345'", True), ("null in 'None'", False), ("true in 'True'", False), ("[1] in [[1], 2]", True),
    ("1 in 5", False), ("1 not in 5", True), ("'a' in null", False), ("'a' not in null", True),
]

ARITHMETIC = [
    ("1 + 2", 3), ("5 - 7", -2), ("3 * 4", 12), ("7 / 2", 3.5), ("8 / 4", 2.0), ("1 / 0", None), ("1 / 0.0", None),
    ("0 / 5", 0.0), ("-3", -3), ("--3", 3), ("-'4'", -4), ("-'x'", None), ("-null", None), ("-true", None),
    ("'1' + '2'", "12"), ("'1' + 2", 3), ("'a' + 1", None), ("'a' + 'b'", "ab"), ("null + 1", None),
    ("true + 1", None), ("'2.5' * 2", 5.0), ("' 7 ' - 2", 5), ("'1e3' * 1", None), ("'1_000' + 0", None),
    ("'١٢' + 0", None), ("[1] + [2]", None), ("'x' * 3", None), ("'x' - 'y'", None),
]

LOGIC = [
    ("true and false", False), ("true or false", True), ("not true", False), ("not null", True),
    ("0 or tier", "regular"), ("tier and tier == 'regular'", True),
    ("1 and 2", 2), ("0 and 2", 0), ("0 or 'x'", "x"), ("'' or null", None), ("null and x", None),
    ("tier == 'vip' and 10 or 0", 0), ("not 1 == 2", True), ("not 0", True), ("not ''", True), ("not 'a'", False),
]

PRECEDENCE = [
    ("true or true and false", True),        # and binds tighter: true or (true and false)
    ("false and true or true", True),        # (false and true) or true
    ("false and (true or true)", False),
    ("not false and false", False),          # (not false) and false
    ("not (false and false)", True),
    ("not 1 > 2 and 3 > 2", True),           # (not (1 > 2)) and (3 > 2)
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 4 - 3", 3), ("12 / 3 / 2", 2.0), ("2 * 3 - 4 / 2", 4.0),
    ("-2 * 3", -6), ("-(2 + 3)", -5), ("1 + 2 == 3", True),
    ("1 + 1 in [2]", True), ("2 in [2] and 3 in [3]", True), ("1 < 2 and 2 < 3 or false", True),
]


@pytest.mark.parametrize(("text", "value"), COMPARISONS + MEMBERSHIP + ARITHMETIC + LOGIC + PRECEDENCE)
def test_operators(text: str, value: Any) -> None:
    result = ev(text, tier="regular")
    assert result == value and type(result) is type(value), (text, result)


def test_variables_dotted_names_and_unset_ones() -> None:
    variables = {"tier": "vip", "balance": "-3.5", "region": {"province": "广东省", "city": None},
                 "region.city": "深圳市", "n": 3}
    assert expr.evaluate(expr.parse("balance < 0 and region.province in ['广东省']"), variables) is True
    assert expr.evaluate(expr.parse("region.city"), variables) == "深圳市"  # an exact name wins
    assert expr.evaluate(expr.parse("missing"), variables) is None
    assert expr.evaluate(expr.parse("region.country"), variables) is None
    assert expr.evaluate(expr.parse("tier.length"), variables) is None     # no attributes of values
    assert expr.evaluate(expr.parse("n + 1"), variables) == 4
    assert expr.evaluate(expr.parse("'province' in region"), variables) is True
    assert expr.evaluate(expr.parse("[1] in region"), variables) is False   # an unhashable key: no error
    assert expr.variables_in(expr.parse("a + b.c * (d or [e])")) == {"a", "b.c", "d", "e"}
    assert expr.variables_in(expr.parse("not a or -b == [c, not -d]")) == {"a", "b", "c", "d"}
    assert expr.variables_in(expr.parse("1 + 'x' in []")) == set()


def test_strings_and_their_escapes() -> None:
    assert ev(r"'it\'s'") == "it's"
    assert ev(r'"say \"hi\""') == 'say "hi"'
    assert ev(r"'a\\b'") == "a\\b"
    assert ev(r"'广东\'省'") == "广东'省"                  # escapes keep non-ASCII text intact
    assert ev(r"'line\nnext\ttab'") == "line\nnext\ttab"
    with pytest.raises(expr.ExpressionError):
        expr.parse("'a\\\nb'")                        # a backslash escapes a character, not a line break
    assert ev("'广东省' == \"广东省\"") is True


def test_numbers_too_big_for_a_float_are_null_not_an_error() -> None:
    big = "9" * 400
    assert ev(f"{big} / 1") is None
    assert ev(f"{big} + 0.5") is None
    assert ev(f"{big} > 0.5") is True                  # Python compares these exactly
    assert ev("x + 1", x="9" * 5000) is None  # more digits than Python converts: not a number


CHAIN = " (write a < b and b < c, or use parentheses)"
ERRORS = {
    "1 +": (3, "unexpected 'end of expression'"),
    "(1": (2, "expected ')', found 'the end'"),
    "1 2": (2, "unexpected '2'"),
    "a = 1": (2, "unexpected character '='"),
    "f(1)": (1, "calls and indexing are not allowed"),
    "x[0]": (1, "calls and indexing are not allowed"),
    "tier.upper()": (10, "calls and indexing are not allowed"),
    "__import__('os')": (10, "calls and indexing are not allowed"),
    "1 < x < 5": (6, "chained comparison: '<' after '<'" + CHAIN),
    "a == b != c": (7, "chained comparison: '!=' after '=='" + CHAIN),
    "1 in [1] in [true]": (9, "chained comparison: 'in' after 'in'" + CHAIN),
    "1 < 2 == true": (6, "chained comparison: '==' after '<'" + CHAIN),
    "'unterminated": (0, "unexpected character \"'\""),
    "[1, 2": (5, "expected ']', found 'the end'"),
    "not": (3, "unexpected 'end of expression'"),
    "a ! b": (2, "unexpected character '!'"),
    "(" * 70 + "1" + ")" * 70: (64, "the expression nests too deeply (more than 64 levels)"),
    " + ".join(["1"] * 70): (252, "the expression nests too deeply (more than 64 levels)"),
    "-" * 70 + "1": (63, "the expression nests too deeply (more than 64 levels)"),
}


@pytest.mark.parametrize("text", sorted(ERRORS))
def test_errors_name_the_column(text: str) -> None:
    column, message = ERRORS[text]
    with pytest.raises(expr.ExpressionError) as caught:
        expr.parse(text)
    assert (caught.value.column, caught.value.message) == (column, message)


def test_parenthesized_comparisons_may_be_compared() -> None:
    assert ev("(1 < 2) == (3 < 4)") is True
    assert ev("(1 < 2) == true") is True


def test_the_depth_limit_leaves_room_for_real_expressions() -> None:
    assert ev("(" * 30 + "1" + ")" * 30) == 1
    assert ev(" + ".join(["1"] * 40)) == 40
    assert ev("[" + ", ".join(str(n) for n in range(500)) + "]")[-1] == 499


# -- the reference evaluation -------------------------------------------------------------------
# Trees: ("lit", v) ("var", name) ("list", [items]) ("not", x) ("neg", x) ("bin", op, left, right),
# built here by Hypothesis; evaluated with Python's operators under the rules of the module docstring.

REF_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def ref_number(value: Any) -> int | float | None:
    if type(value) in (int, float):
        return value  # type: ignore[no-any-return]
    if type(value) is str and REF_NUMBER.fullmatch(value.strip()):
        try:
            return float(Decimal(value.strip())) if "." in value else int(value.strip())
        except (ValueError, InvalidOperation):
            return None
    return None


def ref_equal(a: Any, b: Any) -> bool:
    if type(a) is str and type(b) is str:
        return a == b
    na, nb = ref_number(a), ref_number(b)
    if na is not None and nb is not None:
        return na == nb
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(ref_equal(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is not type(b) and not (type(a) in (int, float) and type(b) in (int, float)):
        return False
    return bool(a == b)


def ref_in(item: Any, container: Any) -> bool:
    if type(container) is list:
        return any(ref_equal(item, x) for x in container)
    if type(container) is dict:
        return any(ref_equal(item, key) for key in container)
    if type(container) is str and type(item) in (str, int, float):
        return str(item) in container
    return False


def reference(tree: Any, variables: dict[str, Any]) -> Any:
    kind = tree[0]
    if kind == "lit":
        return tree[1]
    if kind == "var":
        value: Any = variables
        for part in tree[1].split("."):
            value = value.get(part) if type(value) is dict else None
        return value
    if kind == "list":
        return [reference(item, variables) for item in tree[1]]
    if kind == "not":
        return not reference(tree[1], variables)
    if kind == "neg":
        number = ref_number(reference(tree[1], variables))
        return None if number is None else -number
    op, a, b = tree[1], reference(tree[2], variables), None
    if op == "and":
        return reference(tree[3], variables) if a else a
    if op == "or":
        return a if a else reference(tree[3], variables)
    b = reference(tree[3], variables)
    if op in ("in", "not in"):
        return ref_in(a, b) == (op == "in")
    if op in ("==", "!="):
        return ref_equal(a, b) == (op == "==")
    if op == "+" and type(a) is str and type(b) is str:
        return a + b
    x, y = ref_number(a), ref_number(b)
    if op in ("<", "<=", ">", ">="):
        if x is None or y is None:
            return False
        return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]
    if x is None or y is None or (op == "/" and y == 0):
        return None
    return {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x / y}[op]()


# -- rendering a tree to text -------------------------------------------------------------------

LEVEL = {"or": 1, "and": 2, "not": 3, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4, "not in": 4,
         "+": 5, "-": 5, "*": 6, "/": 6, "neg": 7}
ATOM = 8


def level(tree: Any) -> int:
    return LEVEL[tree[1]] if tree[0] == "bin" else LEVEL.get(tree[0], ATOM)


def render_literal(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        quote = "'" if len(value) % 2 else '"'
        return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n") + quote
    return f"{value}"


def render(tree: Any, draw_parens: Any) -> str:
    kind = tree[0]
    if kind == "lit":
        return render_literal(tree[1])
    if kind == "var":
        return str(tree[1])
    if kind == "list":
        return "[" + ", ".join(render(item, draw_parens) for item in tree[1]) + "]"

    def operand(child: Any, needs: bool) -> str:
        text = render(child, draw_parens)
        return f"({text})" if needs or draw_parens() else text

    if kind == "not":  # `not` takes a comparison or tighter; an and/or below it needs parentheses
        return "not " + operand(tree[1], level(tree[1]) < LEVEL["not"])
    if kind == "neg":  # unary minus takes an atom or another minus
        return "-" + operand(tree[1], level(tree[1]) < LEVEL["neg"])
    op, left, right = tree[1], tree[2], tree[3]
    mine = LEVEL[op]
    # Left-associative: the left operand may be at my level (but comparisons do not chain), the
    # right one must bind tighter; a `not` inside a comparison or arithmetic needs parentheses.
    left_needs = level(left) < mine or (mine == 4 and level(left) == 4)
    right_needs = level(right) <= mine or (right[0] == "not" and mine > LEVEL["not"])
    return f"{operand(left, left_needs)} {op} {operand(right, right_needs)}"


NAMES = ["a", "b", "tier", "n", "region.province", "region.city", "unset", "caller"]
TEXT = st.text(alphabet=st.sampled_from([*"ab1 .-", "广", "'", '"', "\\", "\n"]), max_size=5)
NUMBER_TEXT = st.one_of(st.integers(-999, 999).map(str), st.decimals(-99, 99, places=2).map(str),
                        st.sampled_from(["007", " 12 ", "1.", ".5", "1e3", "-0", "0.0"]))
LITERAL_FLOAT = st.integers(0, 9999).map(lambda n: float(f"{n / 100:.2f}"))
PLAIN = st.one_of(st.none(), st.booleans(), st.integers(-50, 50), LITERAL_FLOAT, TEXT, NUMBER_TEXT)
VARIABLE_VALUES = st.recursive(PLAIN, lambda inner: st.lists(inner, max_size=3), max_leaves=5)

LITERALS = st.one_of(st.none(), st.booleans(), st.integers(0, 99), LITERAL_FLOAT, TEXT, NUMBER_TEXT)
BINARY_OPS = sorted(op for op in LEVEL if op not in ("not", "neg"))


def trees(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    leaves = st.one_of(LITERALS.map(lambda v: ("lit", v)), st.sampled_from(NAMES).map(lambda n: ("var", n)))
    return st.recursive(leaves, lambda inner: st.one_of(
        st.tuples(st.just("bin"), st.sampled_from(BINARY_OPS), inner, inner),
        st.tuples(st.just("not"), inner),
        st.tuples(st.just("neg"), inner),
        st.lists(inner, max_size=3).map(lambda items: ("list", items)),
    ), max_leaves=max_leaves)


VARIABLES = st.fixed_dictionaries({
    "a": VARIABLE_VALUES, "b": VARIABLE_VALUES, "tier": st.sampled_from(["vip", "regular", ""]),
    "n": st.integers(-5, 5), "caller": st.sampled_from(["13800138000", "", "0"]),
    "region": st.fixed_dictionaries({"province": st.sampled_from(["广东省", "浙江省"]),
                                     "city": st.one_of(st.none(), st.just("深圳市"))})})
EXAMPLES = int(os.environ.get("CCC_FUZZ_EXAMPLES", "400"))


def same(ours: Any, theirs: Any) -> bool:
    if isinstance(ours, float) and isinstance(theirs, float) and math.isnan(ours) and math.isnan(theirs):
        return True
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(same(x, y) for x, y in zip(ours, theirs, strict=True))
    return type(ours) is type(theirs) and ours == theirs


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), VARIABLES, st.randoms(use_true_random=False))
def test_the_evaluator_agrees_with_the_reference(tree: Any, variables: dict[str, Any], rnd: Any) -> None:
    text = render(tree, lambda: rnd.random() < 0.15)
    try:
        parsed = expr.parse(text)
    except expr.ExpressionError as exc:
        assert "nests too deeply" in exc.message, (text, exc.message)
        return
    ours, theirs = expr.evaluate(parsed, variables), reference(tree, variables)
    assert same(ours, theirs), f"{text!r} with {variables}: evaluator {ours!r}, reference {theirs!r}"


@settings(max_examples=EXAMPLES, deadline=None)
@given(trees(), VARIABLES, st.randoms(use_true_random=False))
def test_rendering_with_fewer_or_more_parentheses_means_the_same(tree: Any, variables: dict[str, Any],
                                                                  rnd: Any) -> None:
    minimal, full = render(tree, lambda: False), render(tree, lambda: True)
    try:
        a, b = expr.parse(minimal), expr.parse(full)
    except expr.ExpressionError:
        return
    assert same(expr.evaluate(a, variables), expr.evaluate(b, variables)), (minimal, full)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.sampled_from([*"ab1 ()[]'\",.-+*/<>=!", "and ", "or ", "not ", "in ", "null", "x.y"]),
                max_size=30).map("".join), VARIABLES)
def test_any_text_parses_or_gives_an_expression_error_and_evaluation_never_raises(
        text: str, variables: dict[str, Any]) -> None:
    try:
        tree = expr.parse(text)
    except expr.ExpressionError as exc:
        assert 0 <= exc.column <= len(text)
        return
    expr.evaluate(tree, variables)


def test_an_expression_error_reads_as_its_message() -> None:
    with pytest.raises(expr.ExpressionError) as caught:
        expr.parse("1 +")
    assert str(caught.value) == caught.value.message == "unexpected 'end of expression'"
    assert [(t.kind, t.text, t.column) for t in expr.tokenize("a.b >= 'x' and not 2.5")] == [
        ("name", "a.b", 0), ("op", ">=", 4), ("string", "'x'", 7), ("keyword", "and", 11), ("keyword", "not", 15),
        ("number", "2.5", 19), ("end", "", 22)]
