"""Every input pattern is a whole-value match: `$` alone also accepts a trailing newline.

jsonschema applies `pattern` with re.search, where `^8001$` matches "8001\\n" (a phone that never
rings would take an agent's login). Each pattern in the API's description must refuse that.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.app import Controller
from controller.config import load_config
from controller.http.openapi import openapi_document
from controller.ivr.nodes.schedule import RANGE

REPO = Path(__file__).resolve().parents[2]


def patterns(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        if isinstance(schema.get("pattern"), str):
            yield schema["pattern"]
        for value in schema.values():
            yield from patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from patterns(item)


API_PATTERNS = sorted(set(patterns(openapi_document(Controller(load_config(REPO / "demo/controller.yaml")).routes()))))


def test_the_api_has_patterns_to_check() -> None:
    assert len(API_PATTERNS) >= 4, API_PATTERNS


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.data())
def test_no_api_pattern_accepts_a_trailing_newline(data: st.DataObject) -> None:
    pattern = data.draw(st.sampled_from(API_PATTERNS))
    value = data.draw(st.from_regex(pattern, fullmatch=True).filter(lambda text: not text.endswith("\n")))
    validator = jsonschema.Draft202012Validator({"type": "string", "pattern": pattern})
    assert validator.is_valid(value), (pattern, value)
    assert not validator.is_valid(value + "\n"), (pattern, value)


def test_schedule_ranges_are_whole_values() -> None:
    assert RANGE.fullmatch("09:00-18:00") and not RANGE.fullmatch("09:00-18:00\n")
