"""Integers that reach SQL must fit SQLite's 64-bit INTEGER.

Python integers have no limit, SQLite's do: binding 2**63 raises `OverflowError` inside the store.
API handlers and flows check a value here first so the user gets a clear error naming the field;
the store checks every statement's parameters too, so a value that slipped through fails only its
own statement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: SQLite's INTEGER range (a signed 64-bit integer).
SQL_INT_MIN = -(2**63)
SQL_INT_MAX = 2**63 - 1


class OutOfRange(ValueError):
    """An integer outside what the store (or the field's own range) accepts."""


def sql_int(value: int, name: str, *, minimum: int = SQL_INT_MIN, maximum: int = SQL_INT_MAX) -> int:
    """`value` if it is an integer within [minimum, maximum] (by default SQLite's range), else OutOfRange
    with a message naming `name`: `since: expected an integer from 0 to 9223372036854775807, got 2**63`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise OutOfRange(f"{name}: expected an integer, got {type(value).__name__}")
    low, high = max(minimum, SQL_INT_MIN), min(maximum, SQL_INT_MAX)
    if not low <= value <= high:
        shown = str(value) if len(str(value)) <= 25 else f"{str(value)[:20]}… ({len(str(value))} digits)"
        raise OutOfRange(f"{name}: expected an integer from {low} to {high}, got {shown}")
    return value


def check_params(params: Sequence[Any] | Mapping[str, Any]) -> None:
    """Raise OutOfRange when a statement's parameter is an integer SQLite cannot store."""
    # Fast: runs for every statement (a tuple's type is looked at first: an ABC's isinstance is a Python call).
    for value in params if type(params) is tuple else params.values() if isinstance(params, Mapping) else params:
        if type(value) is int and not SQL_INT_MIN <= value <= SQL_INT_MAX:
            break
    else:
        return
    items = params.items() if isinstance(params, Mapping) else enumerate(params, start=1)
    for key, value in items:
        if isinstance(value, int) and not isinstance(value, bool) and not SQL_INT_MIN <= value <= SQL_INT_MAX:
            # The value is not shown: it may be a caller's number or collected digits.
            raise OutOfRange(f"a number is out of range (parameter {key}: integers are stored in 64 bits,"
                             f" {SQL_INT_MIN} to {SQL_INT_MAX})")
