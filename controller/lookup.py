"""Who is calling: the caller number's home region (按归属地) and carrier, offline.

phonenumbers carries Google's maintained numbering metadata, so this needs no network and no
hand-kept prefix table: 13912345678 -> 江苏省常州市 / 中国移动; 02088881234 -> 广东省广州市.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import phonenumbers
from phonenumbers import carrier, geocoder

_PROVINCE = re.compile(r"^(.+?(?:省|自治区|特别行政区|市))(.*)$")
_PHONE_NUMBER = re.compile(r"\+?[0-9]{3,20}")


def is_phone_number(text: str) -> bool:
    """A caller number fit to be a key (a URL value, a callback): 3-20 digits, an optional '+'.

    The caller id comes from the far end's SIP From header and can hold anything ("x&admin=1").
    """
    return _PHONE_NUMBER.fullmatch(text) is not None


@dataclass(frozen=True)
class CallerRegion:
    description: str  # "江苏省常州市" ("" when unknown)
    province: str  # "江苏省"; municipalities: "北京市"
    city: str  # "常州市"; municipalities: the same as the province
    carrier: str  # "中国移动" for mobiles, "" otherwise

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


UNKNOWN = CallerRegion("", "", "", "")


@lru_cache(maxsize=4096)
def caller_region(number: str, default_region: str = "CN", language: str = "zh") -> CallerRegion:
    digits = number.strip()
    if not digits or not any(ch.isdigit() for ch in digits):
        return UNKNOWN
    try:
        parsed = phonenumbers.parse(digits, default_region)
    except phonenumbers.NumberParseException:
        return UNKNOWN
    description = geocoder.description_for_number(parsed, language) or ""
    match = _PROVINCE.match(description)
    if match:
        province, city = match.group(1), match.group(2) or match.group(1)
    else:
        province, city = description, ""
    return CallerRegion(description, province, city, carrier.name_for_number(parsed, language) or "")
