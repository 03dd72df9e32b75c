from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controller.ivr.flow import Report
from controller.ivr.nodes import Context, Next, Node, Param

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
RANGE = re.compile(r"([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")  # used with fullmatch


def weekdays(spec: str) -> list[int] | None:
    """"mon-fri" → [0..4], "sat" → [5], "daily" → all; None when not understood."""
    spec = spec.strip().lower()
    if spec in ("daily", "all", "mon-sun"):
        return list(range(7))
    if "-" in spec:
        first, _, last = spec.partition("-")
        if first in DAYS and last in DAYS and DAYS.index(first) <= DAYS.index(last):
            return list(range(DAYS.index(first), DAYS.index(last) + 1))
        return None
    return [DAYS.index(spec)] if spec in DAYS else None


class ScheduleNode(Node):
    """Business hours: open / closed / holiday routes. `hours: always` is 7×24."""

    type = "schedule"
    params = {
        "timezone": Param("str", default="Asia/Shanghai"),
        "hours": Param("any", required=True, doc="{mon-fri: [\"08:00-18:00\"], sat: [...]} or always"),
        "holidays": Param("list", default=[], doc="dates YYYY-MM-DD that are closed"),
        "open": Param("node", required=True),
        "closed": Param("node", required=True),
        "holiday": Param("node", doc="on a holiday (default: closed)"),
    }

    def check(self, report: Report) -> None:
        try:
            ZoneInfo(str(self["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            report.error(("timezone",), f"schedule {self.id!r}: unknown time zone {self['timezone']!r}")
        hours: Any = self["hours"]
        if hours != "always":
            if not isinstance(hours, dict):
                report.error(("hours",), f"schedule {self.id!r}: hours: expected always or day ranges with times")
            else:
                for spec, ranges in hours.items():
                    if weekdays(str(spec)) is None:
                        report.error(("hours", str(spec), "<key>"), f"schedule {self.id!r}: {spec!r} is not a day"
                                     " or day range (mon, mon-fri, daily)")
                    for index, value in enumerate(ranges if isinstance(ranges, list) else [ranges]):
                        if not RANGE.fullmatch(str(value)):
                            report.error(("hours", str(spec), str(index)), f"schedule {self.id!r}: {value!r} is not"
                                         " a time range like 08:00-18:00")
        for index, day in enumerate(self["holidays"]):
            try:
                date.fromisoformat(str(day))
            except ValueError:
                report.error(("holidays", str(index)), f"schedule {self.id!r}: {day!r} is not a date YYYY-MM-DD")

    def is_open(self, moment: datetime) -> bool:
        hours: Any = self["hours"]
        if hours == "always":
            return True
        minute = moment.hour * 60 + moment.minute
        for spec, ranges in hours.items():
            if moment.weekday() not in (weekdays(str(spec)) or []):
                continue
            for value in ranges if isinstance(ranges, list) else [ranges]:
                match = RANGE.fullmatch(str(value))
                assert match is not None
                start = int(match[1]) * 60 + int(match[2])
                end = int(match[3]) * 60 + int(match[4])
                if start <= minute < end:
                    return True
        return False

    async def run(self, ctx: Context) -> Next:
        moment = datetime.fromtimestamp(ctx.port.clock.now(), ZoneInfo(str(self["timezone"])))
        if moment.date().isoformat() in {str(day) for day in self["holidays"]}:
            return self["holiday"] or self["closed"]  # type: ignore[no-any-return]
        return self["open"] if self.is_open(moment) else self["closed"]  # type: ignore[no-any-return]
