"""controller.jsontext: the call path's JSON text (orjson) reads as the standard library's did, for every value
the standard library encoded with `ensure_ascii=False, default=str`."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller import jsontext

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


def test_chinese_and_other_non_ascii_text_is_kept_as_it_is() -> None:
    text = jsontext.dumps({"region": "江苏省常州市", "note": "客户 \"VIP\"\n", "emoji": "☎️", "city": "Zürich"})
    assert "江苏省常州市" in text and "☎️" in text and "Zürich" in text and "\\u" not in text
    assert '客户 \\"VIP\\"\\n' in text  # quotes and control characters escaped, as JSON wants
    assert jsontext.loads(text) == json.loads(text) == {"region": "江苏省常州市", "note": "客户 \"VIP\"\n",
                                                         "emoji": "☎️", "city": "Zürich"}
    assert jsontext.loads(text.encode()) == jsontext.loads(text)  # UTF-8 bytes (a WebSocket's, an HTTP body's)


def test_what_json_cannot_hold_is_written_as_its_str() -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque 值"

    value = {"object": Opaque(), "set": {1}, "bytes": b"\x01", "nested": [Opaque()]}
    assert jsontext.loads(jsontext.dumps(value)) == json.loads(json.dumps(value, ensure_ascii=False, default=str)) \
        == {"object": "opaque 值", "set": "{1}", "bytes": "b'\\x01'", "nested": ["opaque 值"]}


def test_what_orjson_refuses_is_encoded_by_the_standard_library() -> None:
    big = {"big": 2**70, "negative": -(2**64)}  # beyond 64 bits
    assert jsontext.loads(jsontext.dumps(big)) == big
    for keys in ({1: "int", 2.5: "float", None: "none"}, {True: "bool"}):  # not str: as json.dumps writes them
        assert jsontext.loads(jsontext.dumps(keys)) == json.loads(json.dumps(keys))
    assert jsontext.loads(jsontext.dumps({1: "int", None: "none", False: "bool"})) \
        == {"1": "int", "null": "none", "false": "bool"}
    lone_surrogate = "\udc80"  # (what surrogateescape leaves from bytes that are not UTF-8)
    assert jsontext.dumps([lone_surrogate]) == json.dumps([lone_surrogate], ensure_ascii=False)


def test_the_text_is_compact_and_nan_becomes_null() -> None:
    assert jsontext.dumps({"a": [1, 2.5, None, True], "b": "x"}) == '{"a":[1,2.5,null,true],"b":"x"}'
    assert jsontext.dumps([math.nan, math.inf]) == "[null,null]"  # (the standard library wrote NaN: not JSON)


def test_text_written_before_reads_the_same_nan_included() -> None:
    old = json.dumps({"wait": 1.5, "region": "广东省广州市", "x": math.nan}, ensure_ascii=False, default=str)
    read = jsontext.loads(old)
    assert read["wait"] == 1.5 and read["region"] == "广东省广州市" and math.isnan(read["x"])
    try:
        jsontext.loads("{not json")
    except ValueError:
        pass
    else:
        raise AssertionError("bad text must raise ValueError (json.JSONDecodeError)")


@given(JSON_VALUES)
def test_every_json_value_reads_back_as_the_standard_library_reads_its_own_text(value: Any) -> None:
    assert jsontext.loads(jsontext.dumps(value)) == json.loads(json.dumps(value, ensure_ascii=False, default=str))
