"""Campaigns' model and compliance (controller/outbound/campaign.py, contacts.py) on a fake clock, and
their store (controller/plugins/campaigns/state_persistor.py)."""

from __future__ import annotations

import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from controller.clock import FakeClock
from controller.outbound.campaign import (
    CampaignSettings,
    calling_refusal,
    next_calling_time,
    parse_settings,
    retry_due,
)
from controller.outbound.contacts import parse_csv
from controller.plugins.campaigns.services import CampaignService
from controller.plugins.campaigns.state_persistor import CampaignRecords
from controller.store.db import Store

SHANGHAI, NEW_YORK = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")
CSV = """number,name,plan,timezone
13800138000,张伟,gold,
+86 138-0013-8001,李娜,silver,
13800138000,again,gold,
12345,bad,,
+12125551234,Bob,gold,
13800138002,王芳,bronze,Europe/London
13800138003,x,,Mars/Base
"""


def at(zone: ZoneInfo, *args: int) -> float:
    return datetime.datetime(*args, tzinfo=zone).timestamp()  # type: ignore[misc]


def settings(**values: object) -> CampaignSettings:
    return parse_settings({"name": "spring", "agents": ["1001"], **values})


def test_csv_numbers_are_normalised_invalid_and_duplicates_reported() -> None:
    result = parse_csv(CSV, "CN", known=["+8613800138002"])
    assert [(c.number, c.name, c.region, c.zones, c.fields, c.line) for c in result.contacts] == [
        ("+8613800138000", "张伟", "CN", ("Asia/Shanghai",), {"plan": "gold"}, 2),
        ("+8613800138001", "李娜", "CN", ("Asia/Shanghai",), {"plan": "silver"}, 3),
        ("+12125551234", "Bob", "US", ("America/New_York",), {"plan": "gold"}, 6),
    ]
    assert result.duplicates == [{"line": 4, "number": "+8613800138000", "first_line": 2},
                                 {"line": 7, "number": "+8613800138002", "first_line": 0}]
    assert [(i["line"], i["number"]) for i in result.invalid] == [(5, "12345"), (8, "13800138003")]
    assert "time zone" in result.invalid[1]["reason"]


def test_csv_without_a_number_column_is_refused() -> None:
    with pytest.raises(ValueError, match="number"):
        parse_csv("phone,name\n13800138000,x\n", "CN")


def test_calling_hours_are_the_callees_local_time() -> None:
    rules = settings(hours="09:00-21:00")
    # 08:30 in New York is 21:30 in Shanghai: neither may be called; 10:00 in New York may.
    assert calling_refusal(rules, at(NEW_YORK, 2026, 12, 2, 8, 30), ["America/New_York"], "US") == "outside_hours"
    assert calling_refusal(rules, at(NEW_YORK, 2026, 12, 2, 8, 30), [], "CN") == "outside_hours"
    assert calling_refusal(rules, at(NEW_YORK, 2026, 12, 2, 10, 0), ["America/New_York"], "US") is None
    assert calling_refusal(rules, at(SHANGHAI, 2026, 12, 2, 10, 0), [], "CN") is None  # the campaign's zone
    # A number spanning zones: the hours must hold in every one.
    both = ["America/New_York", "America/Los_Angeles"]
    assert calling_refusal(rules, at(NEW_YORK, 2026, 12, 2, 10, 0), both, "US") == "outside_hours"
    assert calling_refusal(rules, at(NEW_YORK, 2026, 12, 2, 13, 0), both, "US") is None


def test_holidays_of_the_callees_region_are_skipped_unless_allowed() -> None:
    national_day = at(SHANGHAI, 2026, 10, 1, 10, 0)  # 国庆节
    assert calling_refusal(settings(), national_day, [], "CN") == "holiday"
    assert calling_refusal(settings(allow_holidays=True), national_day, [], "CN") is None
    assert calling_refusal(settings(), at(NEW_YORK, 2026, 10, 1, 10, 0), ["America/New_York"], "US") is None
    # The next calling time: the calendar lists Oct 1-3 and 5-7 (days off in exchange), not Sunday Oct 4.
    due = next_calling_time(settings(), national_day, [], "CN")
    assert due == at(SHANGHAI, 2026, 10, 4, 9, 0)
    assert next_calling_time(settings(), at(SHANGHAI, 2026, 10, 4, 22, 0), [], "CN") == at(SHANGHAI, 2026, 10, 8, 9, 0)


def test_dates_bound_the_campaign() -> None:
    rules = settings(start_date="2026-12-01", end_date="2026-12-02")
    assert calling_refusal(rules, at(SHANGHAI, 2026, 11, 30, 10, 0), [], "CN") == "outside_dates"
    due = next_calling_time(rules, at(SHANGHAI, 2026, 11, 30, 10, 0), [], "CN")
    assert due == at(SHANGHAI, 2026, 12, 1, 9, 0)
    assert next_calling_time(rules, at(SHANGHAI, 2026, 12, 2, 22, 0), [], "CN") is None  # over


def test_retries_per_outcome_and_the_attempt_limit() -> None:
    rules = settings(max_attempts=3, retry_seconds={"busy": 60, "no_answer": 300})
    assert retry_due(rules, 1000.0, "busy", 1) == 1060.0
    assert retry_due(rules, 1000.0, "no_answer", 2) == 1300.0
    assert retry_due(rules, 1000.0, "busy", 3) is None  # the last attempt
    assert retry_due(rules, 1000.0, "answered", 1) is None
    assert rules.retry_seconds["machine"] == 3600.0  # the defaults for the others


@pytest.mark.parametrize(("values", "message"), [
    ({"mode": "turbo"}, "mode"), ({"hours": "21:00-09:00"}, "end before"), ({"ring_seconds": 300}, "ring_seconds"),
    ({"agents": []}, "agents"), ({"retry_seconds": {"sale": 5}}, "retry_seconds"), ({"colour": 1}, "unknown"),
    ({"name": "a b"}, "name"), ({"timezone": "Mars/Base"}, "timezone"), ({"mode": "ivr"}, "flow"),
    ({"amd": "guess"}, "amd"), ({"amd": "message"}, "amd_message"), ({"ivr_lines": 0}, "ivr_lines"),
])
def test_bad_settings_are_refused_with_a_reason(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(**values)


def test_default_ring_limit_is_six_rings_and_cap_three_percent() -> None:
    rules = settings()
    assert (rules.ring_seconds, rules.abandon_cap, rules.mode) == (30.0, 0.03, "progressive")
    assert (rules.amd, rules.pacing().ivr_lines) == ("off", 10)  # no detection unless asked for


def test_amd_and_ivr_lines_settings() -> None:
    rules = settings(amd="message", amd_message="请回电。", ivr_lines=3, mode="ivr", flow="notice", agents=[])
    assert (rules.amd, rules.amd_message, rules.pacing().ivr_lines) == ("message", "请回电。", 3)


async def test_store_round_trip(store: Store) -> None:
    records = CampaignRecords(store)
    rules = settings()
    await records.save_campaign("spring", rules.as_dict(), "draft", 1.0)
    await records.save_campaign("spring", rules.as_dict(), "running", 2.0)
    assert [(c["name"], c["status"]) for c in await records.campaigns()] == [("spring", "running")]
    assert parse_settings((await records.campaigns())[0]["settings"]) == rules
    contacts = parse_csv(CSV, "CN").contacts
    await records.add_contacts("spring", 1, contacts, 3.0)
    records.save_contact("spring", 2, status="retry", attempts=1, next_at=60.0, last_outcome="busy",
                         disposition=None, at=4.0)
    rows = await records.contacts("spring")
    assert [(r["contact_no"], r["number"], r["status"], r["attempts"]) for r in rows] == [
        (1, "+8613800138000", "pending", 0), (2, "+8613800138001", "retry", 1), (3, "+12125551234", "pending", 0),
        (4, "+8613800138002", "pending", 0)]
    assert rows[0]["fields"] == {"plan": "gold"} and rows[2]["zones"] == ["America/New_York"]
    assert rows[3]["zones"] == ["Europe/London"]  # given in the file
    await records.add_dnc(["+8613800138000"], "", "global list", 5.0)
    await records.add_dnc(["+8613800138000"], "", "again", 6.0)  # an upsert: no duplicate
    assert [(r["number"], r["campaign"], r["reason"]) for r in await records.dnc()] == [
        ("+8613800138000", "", "again")]


async def test_a_restart_makes_previewed_and_dialling_contacts_due_again(store: Store) -> None:
    """A contact offered to an agent (preview) or being dialled when the controller stopped is due at once
    after the restart: the offer and the call are gone with the old process."""
    records = CampaignRecords(store)
    await records.save_campaign("look", settings(name="look", mode="preview").as_dict(), "running", 1.0)
    await records.add_contacts("look", 1, parse_csv(CSV, "CN").contacts[:3], 2.0)
    for contact_no, status in ((1, "previewing"), (2, "dialing")):
        records.save_contact("look", contact_no, status=status, attempts=contact_no - 1, next_at=None,
                             last_outcome=None, disposition=None, at=3.0)
    clock = FakeClock(1000.0)
    service = CampaignService(acd=SimpleNamespace(publish=lambda *args, **kwargs: None),  # type: ignore[arg-type]
                              records=records, clock=clock)
    await service.load()
    contacts = service.campaign("look").contacts
    assert [(c.no, c.status, c.next_at) for c in contacts.values()] == [
        (1, "retry", 1000.0), (2, "retry", 1000.0), (3, "pending", None)]
