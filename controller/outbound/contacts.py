"""A campaign's contact list from CSV (pure): numbers checked and normalised with phonenumbers.

The first row names the columns: `number` (required), `name`, `timezone` (an IANA name such as
Asia/Shanghai; otherwise derived from the number) and any others, kept as the contact's custom fields
(shown in the agent's screen pop). A number without a leading + is read in the campaign's default
region. Rows whose number is not a valid phone number are reported with their line and not imported;
so are duplicates (the same normalised number as an earlier row, or as a contact already in the
campaign), with the line of the first.
"""

from __future__ import annotations

import csv
import io
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from phonenumbers import timezone as number_timezones

__all__ = ["Contact", "ImportResult", "normalise", "parse_csv"]

#: Most rows one import takes.
MAX_ROWS = 100_000
#: Custom fields' limits: how many per contact and how long a value.
MAX_FIELDS, MAX_VALUE = 30, 500
RESERVED_COLUMNS = ("number", "name", "timezone")


@dataclass(frozen=True)
class Contact:
    number: str  # E.164
    name: str = ""
    region: str = ""  # ISO 3166 alpha-2 of the number
    zones: tuple[str, ...] = ()  # the callee's possible time zones (given, or from the number)
    fields: dict[str, str] = field(default_factory=dict)
    line: int = 0  # in the imported file

    def as_dict(self) -> dict[str, Any]:
        return {"number": self.number, "name": self.name, "region": self.region, "zones": list(self.zones),
                "fields": dict(self.fields)}


@dataclass
class ImportResult:
    contacts: list[Contact] = field(default_factory=list)
    invalid: list[dict[str, Any]] = field(default_factory=list)  # {line, number, reason}
    duplicates: list[dict[str, Any]] = field(default_factory=list)  # {line, number, first_line}

    def summary(self) -> dict[str, Any]:
        return {"imported": len(self.contacts), "invalid": self.invalid, "duplicates": self.duplicates}


def normalise(number: str, region: str) -> tuple[str, str, tuple[str, ...]]:
    """(E.164 number, its region, its time zones); ValueError saying why it is not a valid number."""
    try:
        parsed = phonenumbers.parse(number, region.upper())
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number ({exc.args[0] if exc.args else 'unreadable'})") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number")
    zones = tuple(z for z in number_timezones.time_zones_for_number(parsed) if z != "Etc/Unknown")
    return (phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164),
            phonenumbers.region_code_for_number(parsed) or "", zones)


def parse_csv(text: str, region: str, *, known: Iterable[str] = ()) -> ImportResult:
    """The contacts of a CSV text; `known`: normalised numbers already in the campaign (duplicates).
    ValueError for a file that cannot be imported at all (no `number` column, too many rows)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    if "number" not in columns:
        raise ValueError("the CSV's first row must name the columns, one of them `number`")
    if len(columns) - len(RESERVED_COLUMNS) > MAX_FIELDS:
        raise ValueError(f"at most {MAX_FIELDS} custom fields")
    reader.fieldnames = columns
    result = ImportResult()
    first_line = {number: 0 for number in known}  # 0: already in the campaign
    for index, row in enumerate(reader):
        line = index + 2  # the header is line 1
        if index >= MAX_ROWS:
            raise ValueError(f"at most {MAX_ROWS} contacts per import")
        raw = (row.get("number") or "").strip()
        try:
            number, number_region, zones = normalise(raw, region)
            zones = _given_zone(row.get("timezone")) or zones
        except ValueError as exc:
            result.invalid.append({"line": line, "number": raw, "reason": str(exc)})
            continue
        if number in first_line:
            result.duplicates.append({"line": line, "number": number, "first_line": first_line[number]})
            continue
        first_line[number] = line
        fields = {k: (v or "").strip()[:MAX_VALUE] for k, v in row.items()
                  if k and k not in RESERVED_COLUMNS and isinstance(v, str)}
        result.contacts.append(Contact(number, (row.get("name") or "").strip()[:MAX_VALUE], number_region, zones,
                                       fields, line))
    return result


def _given_zone(text: str | None) -> tuple[str, ...]:
    if not text or not text.strip():
        return ()
    try:
        zoneinfo.ZoneInfo(text.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {text.strip()!r}") from exc
    return (text.strip(),)
