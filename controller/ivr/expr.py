"""A small, safe expression language for `switch` and `set` (never Python `eval`).

    tier == "vip" and balance < 0
    region.province in ["广东省", "广西壮族自治区"]
    not (attempts >= 3) or caller == ""
    count + 1

Literals (numbers, 'strings' or "strings", true, false, null, [lists]), variables (dotted names
reach into mappings: region.city), comparison (== != < <= > >=, in, not in), and/or/not,
+ - * / and parentheses. Nothing else: no calls, no attribute access on objects, no indexing.
A variable that is not set is null. Comparing values of different types is false, not an error.
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
        kind = match.lastgroup or ""
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
        left = self.unary()
        while True:
            op = self.binary_op()
            if op is None or _BINARY[op] < min_precedence:
                self.depth = depth
                return left
            self.nest(self.take().column)  # a chain (1 + 2 + 3) nests to the left: each link is a level
            if op == "not in":
                self.take()
            right = self.expression(_BINARY[op] + 1)
            left = ("bin", op, left, right)

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
        if token.kind == "string":
            return ("lit", bytes(token.text[1:-1], "utf-8").decode("unicode_escape")
                    if "\\" in token.text else token.text[1:-1])
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


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return None
    return None


def evaluate(tree: Ast, variables: Mapping[str, Any]) -> Any:
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
    if op == "and":  # like Python: the deciding operand ("tier == 'vip' and 10 or 0" gives 10 or 0)
        first = evaluate(left_tree, variables)
        return evaluate(right_tree, variables) if first else first
    if op == "or":
        first = evaluate(left_tree, variables)
        return first if first else evaluate(right_tree, variables)
    left, right = evaluate(left_tree, variables), evaluate(right_tree, variables)
    if op in ("in", "not in"):
        found = isinstance(right, list | str | Mapping) and (str(left) in right if isinstance(right, str)
                                                             else left in right)
        return found if op == "in" else not found
    if op in ("==", "!="):
        ln, rn = _number(left), _number(right)
        same = ln == rn if ln is not None and rn is not None and not (
            isinstance(left, str) and isinstance(right, str)) else left == right
        return same if op == "==" else not same
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    ln, rn = _number(left), _number(right)
    if ln is None or rn is None:
        return False if op in ("<", "<=", ">", ">=") else None
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
