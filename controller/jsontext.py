"""JSON text on the call path (call events, the live-call picture, CTI events, the ACD's saved state), with orjson.

What a full-path call encodes (~65 pieces: every call event, CTI event, live-call part, changed agent) and the ARI
events and answers it decodes cost 3-6 times less CPU than with the standard library (README "Benchmarks", third
round, third session). The text is what `json.dumps(obj, ensure_ascii=False, default=str)` gives, except:
- compact: no space after `,` and `:` (every reader parses JSON; SQL's json_extract / ->> too);
- datetimes, dates, UUIDs, dataclasses and enums are encoded by orjson itself (ISO 8601 with a "T", the dataclass
  as an object, the enum's value) where the standard library's `default=str` gave their `str()`;
- what orjson refuses (an integer beyond 64 bits, a dict key that is not a str/int/float/bool/None) falls back to
  the standard library (compact too), so nothing that encoded before fails now. NaN and infinities become null (the
  standard library wrote NaN/Infinity, which is not JSON and which no other reader accepts).
`loads` reads both, and text written before (NaN included) through the standard library when orjson refuses it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(obj: Any) -> str:
    """`obj` as JSON text, non-ASCII characters as they are (中文 stays 中文); what JSON cannot hold as its `str()`."""
    try:
        return orjson.dumps(obj, default=str, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))


def dumps_with_last(obj: dict[str, Any]) -> tuple[str, str]:
    """`dumps(obj)` and, from the same encoding, the text of its last member's value (a CTI event as it goes out,
    and its `data` as it is stored). The members before the last must be scalars (numbers, strings, booleans,
    null) with keys other than the last one's: the last key then shows in the text only where it is that key
    (a string's text holds no `"` unescaped, and a string value is never followed by `:`)."""
    key = next(reversed(obj))
    text = dumps(obj)
    return text, text[text.index(f'"{key}":') + len(key) + 3:-1]


def loads(text: str | bytes) -> Any:
    """The value of JSON text (a str, or UTF-8 bytes as a WebSocket or HTTP body holds them)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # NaN / Infinity of older text; else raises json's own ValueError
