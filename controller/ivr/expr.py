"""A small, safe expression language for `switch` and `set` (never Python `eval`).

    tier == "vip" and balance < 0
    region.province in ["广东省", "广西壮族自治区"]
    not (attempts >= 3) or caller == ""
    count + 1

Literals (numbers, 'strings' or "strings" with \\ \\' \\" \\n \\t escapes, true, false, null, [lists]),
variables (dotted names reach into mappings: region.city), comparison (== != < <= > >=, in, not in),
and/or/not, + - * / and parentheses. Nothing else: no calls, no attribute access on objects, no
indexing. Precedence, loosest first: or, and, not, comparisons, + -, * /, unary -; `a < b < c` is an
error (write `a < b and b < c`).

Values: a variable that is not set is null. Text that is a decimal number ("-3.5", "0012") counts as
that number wherever a number is compared or computed ("-3.5" < 0), except that two texts compare
as texts ("1.0" == "1" is false) and `+` joins two texts. `< <= > >=` compare numbers only (anything
else is false); `==` between different kinds of value is false (true == 1 is false); `in` looks in a
list (with ==), for a key of a mapping, or for a text inside a text. Arithmetic on a non-number,
division by zero or an overflow gives null; `and`/`or` give the deciding operand, as in Python
("tier == 'vip' and 10 or 0" gives 10 or 0). Evaluation never raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
  | (?P<name>[^\W\d][\w]*(?:\.[^\W\d][\w]*)*)
""", re.VERBOSE)

KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
#: How deeply an expression may nest (parentheses, operators, `not`, `-`): a bound on the parser's and
#: the evaluator's recursion, so a malformed flow gets an error instead of crashing the loader.
MAX_DEPTH = 64


class ExpressionError(ValueError):
    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column  # 0-based offset in the expression text


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # number string op name keyword end
    text: str
    column: int


def tokenize(text: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ExpressionError(f"unexpected character {text[position]!r}", position)
        kind = str(match.lastgroup)  # every alternative is a named group
        if kind != "space":
            value = match.group()
            if kind == "name" and value in KEYWORDS:
                kind = "keyword"
            tokens.append(Token(kind, value, position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# AST nodes are tuples: ("lit", value) ("var", name) ("not", x) ("neg", x) ("list", [items])
# ("bin", op, left, right)
Ast = tuple[Any, ...]

_BINARY = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4, "in": 4, "not in": 4,
           "+": 5, "-": 5, "*": 6, "/": 6}
_COMPARISON = 4
_ESCAPES = {"n": "\n", "t": "\t"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0
        self.depth = 0  # nesting of the subexpression being parsed

    def nest(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"the expression nests too deeply (more than {MAX_DEPTH} levels)", column)

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise ExpressionError(f"expected {text!r}, found {token.text or 'the end'!r}", token.column)

    def binary_op(self) -> str | None:
        token = self.peek()
        if token.text == "not" and self.tokens[self.index + 1].text == "in":
            return "not in"
        if token.kind in ("op", "keyword") and token.text in _BINARY:
            return token.text
        return None

    def expression(self, min_precedence: int = 1) -> Ast:
        depth = self.depth
        self.nest(self.peek().column)
        left_parenthesized = self.peek().text == "("
        left = self.unary()
        while True:
            op = self.binary_op()
            if op is None or _BINARY[op] < min_precedence:
                self.depth = depth
                return left
            token = self.take()
            self.depth += 1  # a chain (1 + 2 + 3) nests to the left: each link is a level (its operand checks)
            if _BINARY[op] == _COMPARISON and left[0] == "bin" and _BINARY[left[1]] == _COMPARISON \
                    and not left_parenthesized:
                raise ExpressionError(f"chained comparison: {op!r} after {left[1]!r}"
                                      " (write a < b and b < c, or use parentheses)", token.column)
            if op == "not in":
                self.take()
            right = self.expression(_BINARY[op] + 1)
            left = ("bin", op, left, right)
            left_parenthesized = False

    def unary(self) -> Ast:
        token = self.peek()
        if token.text in ("not", "-"):
            depth = self.depth
            self.nest(token.column)
            self.take()
            operand = ("not", self.expression(3)) if token.text == "not" else ("neg", self.unary())
            self.depth = depth
            return operand
        return self.primary()

    def primary(self) -> Ast:
        token = self.take()
        if token.kind == "number":
            return ("lit", float(token.text) if "." in token.text else int(token.text))
        if token.kind == "string":  # \n and \t, else a backslash keeps the next character as it is
            return ("lit", re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[1]), token.text[1:-1]))
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            return ("lit", {"true": True, "false": False, "null": None}[token.text])
        if token.kind == "name":
            following = self.peek()
            if following.text in ("(", "["):
                raise ExpressionError("calls and indexing are not allowed", following.column)
            return ("var", token.text)
        if token.text == "(":
            inner = self.expression()
            self.expect(")")
            return inner
        if token.text == "[":
            items: list[Ast] = []
            while self.peek().text != "]":
                items.append(self.expression())
                if self.peek().text != ",":
                    break
                self.take()
            self.expect("]")
            return ("list", items)
        raise ExpressionError(f"unexpected {token.text or 'end of expression'!r}", token.column)


def parse(text: str) -> Ast:
    parser = _Parser(text)
    tree = parser.expression()
    end = parser.peek()
    if end.kind != "end":
        raise ExpressionError(f"unexpected {end.text!r}", end.column)
    return tree


def variables_in(tree: Ast) -> set[str]:
    kind = tree[0]
    if kind == "var":
        return {tree[1]}
    if kind in ("not", "neg"):
        return variables_in(tree[1])
    if kind == "list":
        return set().union(*(variables_in(item) for item in tree[1]))
    if kind == "bin":
        return variables_in(tree[2]) | variables_in(tree[3])
    return set()


def lookup(variables: Mapping[str, Any], name: str) -> Any:
    """A variable's value; dotted names reach into mappings (region.city). Unset: None."""
    if name in variables:
        return variables[name]
    value: Any = variables
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


_NUMBER_TEXT = re.compile(r"\s*-?[0-9]+(\.[0-9]+)?\s*")


def _number(value: Any) -> float | int | None:
    """A number, or text that is a decimal number, as a number; anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:  # more digits than Python converts
            return None
    return None


def equal(left: Any, right: Any) -> bool:
    """`==`: numbers (or number texts, unless both are texts) by value, lists item by item, else the
    same kind of value with the same value."""
    ln, rn = _number(left), _number(right)
    if ln is not None and rn is not None and not (isinstance(left, str) and isinstance(right, str)):
        return ln == rn
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return bool(left == right)


def contains(container: Any, item: Any) -> bool:
    """`in`: an item of a list, a key of a mapping, a text or number inside a text."""
    if isinstance(container, list):
        return any(equal(item, element) for element in container)
    if isinstance(container, Mapping):
        return any(equal(item, key) for key in container)
    if isinstance(container, str) and isinstance(item, str | int | float) and not isinstance(item, bool):
        return str(item) in container
    return False


def evaluate(tree: Ast, variables: Mapping[str, Any]) -> Any:
    """The expression's value (see the module's docstring); never raises."""
    kind = tree[0]
    if kind == "lit":
        return tree[1]
    if kind == "var":
        return lookup(variables, tree[1])
    if kind == "list":
        return [evaluate(item, variables) for item in tree[1]]
    if kind == "not":
        return not evaluate(tree[1], variables)
    if kind == "neg":
        number = _number(evaluate(tree[1], variables))
        return -number if number is not None else None
    op, left_tree, right_tree = tree[1], tree[2], tree[3]
    if op == "and":
        first = evaluate(left_tree, variables)
        return evaluate(right_tree, variables) if first else first
    if op == "or":
        first = evaluate(left_tree, variables)
        return first if first else evaluate(right_tree, variables)
    left, right = evaluate(left_tree, variables), evaluate(right_tree, variables)
    if op == "in":
        return contains(right, left)
    if op == "not in":
        return not contains(right, left)
    if op == "==":
        return equal(left, right)
    if op == "!=":
        return not equal(left, right)
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    ln, rn = _number(left), _number(right)
    if ln is None or rn is None:
        return False if op in ("<", "<=", ">", ">=") else None
    try:
        return _arithmetic(op, ln, rn)
    except OverflowError:  # arithmetic only (Python compares int and float exactly): 10**400 / 1 raises
        return None


def _arithmetic(op: str, ln: float, rn: float) -> Any:
    if op == "<":
        return ln < rn
    if op == "<=":
        return ln <= rn
    if op == ">":
        return ln > rn
    if op == ">=":
        return ln >= rn
    if op == "+":
        return ln + rn
    if op == "-":
        return ln - rn
    if op == "*":
        return ln * rn
    return ln / rn if rn else None
