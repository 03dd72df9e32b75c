"""Who is calling: the caller number's home region (按归属地) and carrier, offline.

phonenumbers carries Google's maintained numbering metadata, so this needs no network and no
hand-kept prefix table: 13912345678 -> 江苏省常州市 / 中国移动; 02088881234 -> 广东省广州市.

Its geocoding data (287,000 prefixes, as Python dicts) costs ~100 MB in every process that imports
`phonenumbers.geocoder`: the controller's largest allocation (README "Benchmarks"). It is read here from a
compact copy instead (`PrefixTable`: two arrays and the 40,000 distinct place names, ~15 MB), built from
phonenumbers' own data by a child process once per phonenumbers version and kept in the user's cache
directory; phonenumbers' geocoder then looks prefixes up in it as it would in its own dict.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import types
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import phonenumbers

log = logging.getLogger("controller.lookup")

#: Where the compact geocoding table is kept (one file per phonenumbers version).
GEODATA_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ccc"


class PrefixTable(Mapping[str, dict[str, str]]):
    """phonenumbers' geocoding data (a number prefix such as "8613912" -> {language: place}) in sorted arrays:
    what its geocoder reads (`prefix in data`, `data[prefix]`), at a sixth of the memory. Prefixes are digit
    strings that never start with 0 (they follow the "+" of an E.164 number), so each is one integer."""

    def __init__(self, prefixes: list[int], places: list[int], names: list[dict[str, str]]) -> None:
        order = sorted(range(len(prefixes)), key=prefixes.__getitem__)
        self._prefixes = array("q", (prefixes[i] for i in order))
        self._places = array("l", (places[i] for i in order))
        self._names = names

    @classmethod
    def of(cls, data: Mapping[str, Mapping[str, str]]) -> PrefixTable:
        names: dict[tuple[tuple[str, str], ...], int] = {}
        prefixes, places = [], []
        for prefix, place in data.items():
            prefixes.append(int(prefix))
            places.append(names.setdefault(tuple(sorted(place.items())), len(names)))
        return cls(prefixes, places, [dict(name) for name in names])

    def __getitem__(self, prefix: str) -> dict[str, str]:
        if not prefix.isdigit() or prefix.startswith("0"):
            raise KeyError(prefix)
        number = int(prefix)
        index = bisect_left(self._prefixes, number)
        if index < len(self._prefixes) and self._prefixes[index] == number:
            return self._names[self._places[index]]
        raise KeyError(prefix)

    def __iter__(self) -> Iterator[str]:
        return (str(prefix) for prefix in self._prefixes)

    def __len__(self) -> int:
        return len(self._prefixes)


def _table_path() -> Path:
    return GEODATA_CACHE / f"geodata-{phonenumbers.__version__}.json"


def _write_table(path: Path) -> None:
    """(In a child process.) phonenumbers' geocoding data, compacted, into `path` (atomically)."""
    from phonenumbers import geodata

    table = PrefixTable.of(geodata.GEOCODE_DATA)
    text = json.dumps({"longest": geodata.GEOCODE_LONGEST_PREFIX, "prefixes": list(table._prefixes),
                       "places": list(table._places), "names": table._names}, ensure_ascii=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False) as file:
        file.write(text)
    os.replace(file.name, path)


def _use_compact_geodata() -> None:
    """Make `phonenumbers.geodata` the compact table (its submodules, e.g. the locale names, still load from
    the package). Any failure leaves phonenumbers as it is (whole data, more memory), said in the log."""
    if "phonenumbers.geodata" in sys.modules:
        return  # loaded whole already
    path = _table_path()
    try:
        if not path.exists():
            subprocess.run([sys.executable, "-m", "controller.lookup", str(path)], check=True, timeout=120,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        saved = json.loads(path.read_text(encoding="utf-8"))
        spec = importlib.util.find_spec("phonenumbers.geodata")
        if spec is None or spec.submodule_search_locations is None:
            raise ImportError("phonenumbers.geodata is not a package")
        module = types.ModuleType("phonenumbers.geodata")
        module.__path__ = list(spec.submodule_search_locations)
        module.__spec__ = spec
        module.GEOCODE_DATA = PrefixTable(saved["prefixes"], saved["places"], saved["names"])  # type: ignore[attr-defined]
        module.GEOCODE_LONGEST_PREFIX = int(saved["longest"])  # type: ignore[attr-defined]
    except (OSError, ValueError, KeyError, TypeError, ImportError, subprocess.SubprocessError) as exc:
        log.warning("caller regions: phonenumbers' whole geocoding data is used (~100 MB more): %s", exc)
        return
    sys.modules["phonenumbers.geodata"] = module


if __name__ != "__main__":  # (run as a module: the child that builds the table)
    _use_compact_geodata()

from phonenumbers import carrier, geocoder  # noqa: E402  (after the compact table is in place)

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
        # Spelled out: dataclasses.asdict deep-copies each field (45 us a call; twice per call: IVR, screen pop).
        return {"description": self.description, "province": self.province, "city": self.city,
                "carrier": self.carrier}


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


if __name__ == "__main__":
    _write_table(Path(sys.argv[1]))
