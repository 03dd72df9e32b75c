"""Decisions of the IVR nodes at their edges: a schedule's opening and closing minute and its time zone
(independent of the host's zone: `test_schedule_under_other_host_time_zones` re-runs these tests with
TZ=Asia/Shanghai and TZ=America/Los_Angeles), collect patterns as full matches, and validation errors
placed at the key or value that is wrong, not at its node."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from controller.ivr.flow import flow_set, load_flows, parse_flow
from controller.ivr.simulator import SimulatedPort, simulate

REPO = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")


async def route(tmp_path: Path, node: str, at: datetime, dtmf: str = "") -> tuple[list[str], dict[str, Any]]:
    body = "\n".join("  " + line for line in node.strip().splitlines())
    targets = "".join(f"  {name}: {{type: hangup}}\n" for name in ("yes_", "no_", "other") if name in node)
    (tmp_path / "t.yaml").write_text(f"flow: t\nnodes:\n{body}\n{targets}")
    flows, errors = load_flows([tmp_path])
    assert errors == [], errors
    result = await simulate(flow_set(flows), "t", SimulatedPort(dtmf=dtmf), at)
    assert result.error is None, result.error
    return result.visited, dict(result.variables)


SCHEDULE = """s: {type: schedule, timezone: TZ, hours: {mon-fri: ["09:00-18:00"], sat: ["10:00-12:00", "20:00-24:00"]},
    holidays: ["2026-10-01"], open: yes_, closed: no_, holiday: other}"""


@pytest.mark.parametrize(("local", "expected"), [
    ("2026-11-23T08:59:59", "no_"),    # Monday, a second before opening
    ("2026-11-23T09:00:00", "yes_"),   # the opening minute is open
    ("2026-11-23T17:59:59", "yes_"),   # the last open second
    ("2026-11-23T18:00:00", "no_"),    # the closing minute is closed
    ("2026-11-27T12:00:00", "yes_"),   # Friday
    ("2026-11-28T09:30:00", "no_"),    # Saturday before its first range
    ("2026-11-28T11:59:00", "yes_"),
    ("2026-11-28T12:00:00", "no_"),    # between Saturday's two ranges
    ("2026-11-28T19:59:00", "no_"),
    ("2026-11-28T20:00:00", "yes_"),
    ("2026-11-28T23:59:59", "yes_"),   # a range up to 24:00 covers the day's last minute
    ("2026-11-29T00:00:00", "no_"),    # Sunday
    ("2026-10-01T10:00:00", "other"),  # a holiday, on a Thursday within hours
    ("2026-10-02T10:00:00", "yes_"),
])
@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/Los_Angeles", "UTC"])
async def test_schedule_opens_at_its_first_minute_and_closes_at_its_last(tmp_path: Path, zone: str, local: str,
                                                                         expected: str) -> None:
    """The same local times in three node time zones: the node reads the instant in its own zone."""
    at = datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone))
    visited, _ = await route(tmp_path, SCHEDULE.replace("TZ", zone), at)
    assert visited == ["s", expected], (zone, local)


@pytest.mark.parametrize(("instant", "shanghai", "los_angeles"), [
    ("2026-11-23T01:30:00+00:00", "yes_", "no_"),   # Mon 09:30 in Shanghai, Sun 17:30 in Los Angeles
    ("2026-11-23T17:30:00+00:00", "no_", "yes_"),   # Tue 01:30 in Shanghai, Mon 09:30 in Los Angeles
    ("2026-11-23T09:59:00+00:00", "yes_", "no_"),   # Mon 17:59 in Shanghai, Mon 01:59 in Los Angeles
    ("2026-11-23T10:00:00+00:00", "no_", "no_"),    # Mon 18:00 in Shanghai
    ("2026-09-30T16:30:00+00:00", "other", "yes_"),  # 10-01 00:30 in Shanghai (a holiday), 09-30 09:30 in LA
])
async def test_one_instant_in_two_time_zones(tmp_path: Path, instant: str, shanghai: str, los_angeles: str) -> None:
    at = datetime.fromisoformat(instant)
    assert (await route(tmp_path, SCHEDULE.replace("TZ", "Asia/Shanghai"), at))[0][-1] == shanghai
    assert (await route(tmp_path, SCHEDULE.replace("TZ", "America/Los_Angeles"), at))[0][-1] == los_angeles


async def test_the_default_time_zone_is_shanghai_and_builtin_time_variables_use_it(tmp_path: Path) -> None:
    node = SCHEDULE.replace("timezone: TZ, ", "")
    at = datetime.fromisoformat("2026-11-23T01:00:00+00:00")  # 09:00 in Shanghai, 01:00 in UTC
    visited, variables = await route(tmp_path, node, at)
    assert visited == ["s", "yes_"]
    assert (variables["today"], variables["time"], variables["weekday"]) == ("2026-11-23", "09:00", "mon")


@pytest.mark.skipif(os.environ.get("CCC_TZ_RERUN") == "1", reason="already the re-run")
@pytest.mark.parametrize("host_zone", ["Asia/Shanghai", "America/Los_Angeles"])
def test_schedule_under_other_host_time_zones(host_zone: str) -> None:
    """The product's target hosts run in Asia/Shanghai: the schedule tests must not lean on a UTC host."""
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "schedule_opens or one_instant or default_time_zone or re_run_set"],
        env={**os.environ, "TZ": host_zone, "CCC_TZ_RERUN": "1"}, cwd=REPO, capture_output=True, text=True,
        timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and " failed" not in run.stdout


def test_the_host_time_zone_is_what_the_re_run_set() -> None:
    """Proves the re-run really runs in another zone (otherwise it would prove nothing)."""
    if os.environ.get("CCC_TZ_RERUN") == "1":
        offset = datetime(2026, 11, 23, 12, 0).astimezone().utcoffset()
        assert offset is not None and offset.total_seconds() != 0, os.environ.get("TZ")


SCHEDULE_ERRORS = [
    ('"18:00-09:00"', "'18:00-09:00' is not a time range like 08:00-18:00 (within one day, 00:00 to 24:00)"),
    ('"09:00-24:30"', "'09:00-24:30' is not a time range"),
    ('"09:00-09:00"', "'09:00-09:00' is not a time range"),
    ('"9:00-18:00"', "'9:00-18:00' is not a time range"),
    ('"09:00-18:00x"', "'09:00-18:00x' is not a time range"),
]


@pytest.mark.parametrize(("value", "message"), SCHEDULE_ERRORS)
def test_schedule_ranges_must_be_within_a_day_and_end_after_they_start(value: str, message: str) -> None:
    text = ("flow: t\nnodes:\n  s:\n    type: schedule\n    hours:\n      mon-fri:\n        - \"08:00-09:00\"\n"
            f"        - {value}\n    open: h\n    closed: h\n  h: {{type: hangup}}\n")
    _, errors = parse_flow(text, "t.yaml")
    assert [(e.line, e.column) for e in errors] == [(8, 11)], errors
    assert errors[0].message.startswith(f"schedule 's': {message}"), errors[0].message


COLLECT = """c: {type: collect, prompt: hi, variable: account, min_digits: 4, max_digits: 8, pattern: 'PATTERN',
    retries: 1, next: yes_, failure: no_}"""


@pytest.mark.parametrize(("pattern", "keys", "expected"), [
    (r"[1-9]\d{3}", "1234#", "yes_"),
    (r"[1-9]\d{3}", "12345#", "no_"),   # more digits than the pattern allows: a full match is needed
    (r"[1-9]\d{3}", "01234#", "no_"),   # extra digits in front
    (r"1\d*", "21#", "no_"),
    (r"\d{4}|\d{6}", "12345#", "no_"),  # every alternative must match the whole input
    (r"\d{4}|\d{6}", "123456#", "yes_"),
])
async def test_collect_pattern_must_match_all_the_digits(tmp_path: Path, pattern: str, keys: str,
                                                         expected: str) -> None:
    visited, variables = await route(tmp_path, COLLECT.replace("PATTERN", pattern), datetime.now(SHANGHAI), keys)
    assert visited == ["c", expected]
    assert variables.get("account") == (keys.rstrip("#") if expected == "yes_" else None)


# -- validation errors at the key or value that is wrong -------------------------------------------
# Block style, one key a line: an error placed at its node instead (line of `name:`) fails here.

POSITIONS = {
    "unknown parameter": ("""
  ask:
    type: menu
    prompt: [choose]
    options: {"1": bye}
    colour: red
    default: bye
""", 8, 5, "menu node 'ask': unknown parameter 'colour'"),
    "option that is not one key": ("""
  ask:
    type: menu
    prompt: [choose]
    options:
      "1": bye
      "12": bye
    default: bye
""", 9, 7, "menu 'ask': option '12' is not one key (0-9, * or #)"),
    "retries": ("""
  ask:
    type: menu
    prompt: [choose]
    options: {"1": bye}
    retries: 0
    default: bye
""", 8, 14, "menu 'ask': retries must be at least 1"),
    "a wrong type": ("""
  ask:
    type: menu
    prompt: [choose]
    options: {"1": bye}
    timeout: -1
    default: bye
""", 8, 14, "menu node 'ask': timeout: expected a number of seconds (above 0), got -1"),
    "a route to no node": ("""
  ask:
    type: menu
    prompt: [choose]
    options:
      "1": nowhere
    default: bye
""", 8, 12, "node 'ask': no node 'nowhere' in flow 't'"),
    "a bad expression in a case": ("""
  ask:
    type: switch
    cases:
      - when: "tier == 'vip'"
        next: bye
      - when: "tier =="
        next: bye
    default: bye
""", 9, 15, "switch 'ask': unexpected 'end of expression' (at column 8 of the expression)"),
    "a case's route": ("""
  ask:
    type: switch
    cases:
      - when: "tier == 'vip'"
        next: bye
      - when: "true"
        next: nowhere
    default: bye
""", 10, 15, "node 'ask': no node 'nowhere' in flow 't'"),
    "a switch's default": ("""
  ask:
    type: switch
    cases:
      - when: "true"
        next: bye
    default: nowhere
""", 9, 14, "node 'ask': no node 'nowhere' in flow 't'"),
    "a variable in a set value": ("""
  ask:
    type: set
    values:
      a: "1"
      b: "c + 1"
    next: bye
""", 8, 10, "node 'ask': unknown variable 'c'"),
    "an unknown variable": ("""
  ask:
    type: play
    prompts:
      - hello
      - {money: "{balance}"}
    next: bye
""", 8, 17, "node 'ask': unknown variable 'balance'"),
    "a time zone": ("""
  ask:
    type: schedule
    timezone: Mars/Olympus
    hours: always
    open: bye
    closed: bye
""", 6, 15, "schedule 'ask': unknown time zone 'Mars/Olympus'"),
    "a day": ("""
  ask:
    type: schedule
    hours:
      mon-fri: ["08:00-18:00"]
      someday: ["08:00-18:00"]
    open: bye
    closed: bye
""", 8, 7, "schedule 'ask': 'someday' is not a day or day range (mon, mon-fri, daily)"),
    "a holiday": ("""
  ask:
    type: schedule
    hours: always
    holidays:
      - 2026-10-01
      - "10/01"
    open: bye
    closed: bye
""", 9, 9, "schedule 'ask': '10/01' is not a date YYYY-MM-DD"),
    "collect digits": ("""
  ask:
    type: collect
    prompt: x
    variable: v
    min_digits: 3
    max_digits: 2
    next: bye
""", 8, 17, "collect 'ask': need 1 <= min_digits <= max_digits"),
    "collect terminator": ("""
  ask:
    type: collect
    prompt: x
    variable: v
    terminator: "+"
    next: bye
""", 8, 17, 'collect \'ask\': terminator must be #, * or ""'),
    "an http map name": ("""
  ask:
    type: http
    url: http://crm/x
    map:
      ok: data.ok
      2bad: data.x
    next: bye
    failure: bye
""", 9, 7, "http 'ask': '2bad' is not a variable name"),
    "queue skills": ("""
  ask:
    type: queue
    queue: general
    skills:
      mandarin: 11
    otherwise: bye
""", 8, 7, "queue 'ask': skills: expected skill: level (1-10) pairs"),
}


@pytest.mark.parametrize("case", sorted(POSITIONS))
def test_validation_errors_point_at_the_key_or_value_not_the_node(case: str) -> None:
    nodes, line, column, message = POSITIONS[case]
    text = "flow: t\nvariables: {tier: regular}\nnodes:" + nodes + "  bye: {type: hangup}\n"
    _, errors = parse_flow(text, "t.yaml")
    assert [(e.line, e.column) for e in errors] == [(line, column)], [str(e) for e in errors]
    assert errors[0].message.startswith(message), errors[0].message


def test_a_range_that_is_not_valid_never_opens() -> None:
    """Validation refuses such a range; should a node be built without it, the range stays closed."""
    from controller.ivr.nodes.schedule import ScheduleNode

    node = ScheduleNode("s", {"hours": {"daily": ["18:00-09:00", "nonsense"]}, "open": "o", "closed": "c"})
    for hour, minute in ((0, 0), (0, 30), (9, 0), (20, 0)):
        assert not node.is_open(datetime(2026, 11, 23, hour, minute, tzinfo=SHANGHAI)), (hour, minute)
    assert ScheduleNode("s", {"hours": "always"}).is_open(datetime(2026, 11, 29, 3, 0, tzinfo=SHANGHAI))
