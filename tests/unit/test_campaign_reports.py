"""Campaigns' figures and report (controller/reports/campaigns.py, controller/plugins/reports/campaigns.py),
the restart's closing of attempts in flight (controller/plugins/campaigns/restart.py) and the dialing
policy on campaign numbers (controller/outbound/dialing.py)."""

from __future__ import annotations

import json

import pytest

from controller.config import DialingSettings
from controller.outbound.campaign import parse_settings
from controller.outbound.dialing import campaign_number_refusal, dialled_form
from controller.plugins.campaigns.restart import INTERRUPTED, RING_END_MARGIN, close_in_flight
from controller.plugins.campaigns.services import ContactState
from controller.plugins.reports.campaigns import campaign_reports
from controller.reports.campaigns import AttemptFact, ContactFact, Tally, campaign_report, live_figures
from controller.store.db import Store

# A known mix: contact 1 answered at once (talk 40 s); 2 busy then answered (talk 20 s) then "callback";
# 3 no answer twice (failed); 4 abandoned (predictive) then answered (talk 30 s), "do_not_call";
# 5 never dialled (dnc); 6 rejected once, still to retry.
ATTEMPTS = [AttemptFact(1, "answered", True, 40.0), AttemptFact(2, "busy", False),
            AttemptFact(2, "answered", True, 20.0), AttemptFact(3, "no_answer", False),
            AttemptFact(3, "no_answer", False), AttemptFact(4, "abandoned", True),
            AttemptFact(4, "answered", True, 30.0), AttemptFact(6, "rejected", False)]
CONTACTS = [ContactFact(1, "done"), ContactFact(2, "retry", "answered", "callback"),
            ContactFact(3, "failed", "no_answer"), ContactFact(4, "dnc", "answered", "do_not_call"),
            ContactFact(5, "dnc", "do_not_call"), ContactFact(6, "retry", "rejected")]


def test_the_report_counts_each_attempt_and_contact_once() -> None:
    report = campaign_report("spring", CONTACTS, ATTEMPTS)
    assert (report.contacts, report.contacts_dialled, report.contacts_reached, report.contacts_left) == (6, 5, 3, 2)
    assert (report.dialed, report.answered, report.connected, report.abandoned) == (8, 4, 3, 1)
    assert report.contact_rate == 0.6  # 3 of the 5 contacts dialled reached an agent
    assert report.abandon_rate == 0.25  # 1 of the 4 answered customers
    assert report.attempts_per_contact == 1.6  # 8 attempts over 5 contacts dialled (not the undialled one)
    assert (report.talk_seconds, report.avg_talk_seconds) == (90.0, 30.0)
    assert report.by_outcome == {"abandoned": 1, "answered": 3, "busy": 1, "no_answer": 2, "rejected": 1}
    assert report.results == {"callback": 1, "do_not_call": 1, "done": 1, "dnc": 1, "failed:no_answer": 1,
                              "retry": 1}
    assert sum(report.results.values()) == report.contacts and sum(report.by_outcome.values()) == report.dialed


def test_a_campaign_without_calls_has_no_rates() -> None:
    report = campaign_report("empty", [ContactFact(1, "pending")], [])
    assert (report.contact_rate, report.abandon_rate, report.attempts_per_contact, report.avg_talk_seconds) == (
        None, None, None, None)
    assert (report.dialed, report.contacts_left, report.talk_seconds) == (0, 1, 0.0)


def test_the_live_tally_follows_attempts_and_rebuilds_the_same_from_the_store() -> None:
    live = Tally()
    for attempt in ATTEMPTS:
        live.started()
        live.ended(str(attempt.outcome), attempt.answered)
    live.started()  # one in flight
    rebuilt = Tally.from_attempts([*ATTEMPTS, AttemptFact(7, None, False)])
    assert live == rebuilt
    assert live_figures(live) == {"dialed": 9, "answered": 4, "connected": 3, "abandoned": 1, "abandon_rate": 0.25,
                                  "in_flight": 1}


async def test_the_report_from_the_store_takes_talk_time_from_the_call_records(store: Store) -> None:
    await store.execute("INSERT INTO campaigns (name, settings, status, created_at, updated_at)"
                        " VALUES ('spring', '{}', 'running', 0, 0)")
    for no, status, disposition in ((1, "done", None), (2, "failed", None), (3, "pending", None)):
        await store.execute("INSERT INTO campaign_contacts (campaign, contact_no, number, status, last_outcome,"
                            " disposition, updated_at) VALUES ('spring', ?, ?, ?, ?, ?, 0)",
                            (no, f"+861380013800{no}", status, "busy" if status == "failed" else None, disposition))
    attempts = [(1, "c1", 100.0, 105.0, 160.0, "answered"), (2, "c2", 110.0, None, 116.0, "busy"),
                (2, "c3", 200.0, None, 206.0, "busy"), (1, "old", 10.0, 12.0, 20.0, "answered")]
    for no, call_id, started, answered, ended, outcome in attempts:
        await store.execute("INSERT INTO campaign_attempts (campaign, contact_no, call_id, started_at, answered_at,"
                            " ended_at, outcome) VALUES ('spring', ?, ?, ?, ?, ?, ?)",
                            (no, call_id, started, answered, ended, outcome))
    await store.execute("INSERT INTO calls (call_id, channel_id, direction, started_at, ended_at) VALUES"
                        " ('c1', 'ch', 'outbound', 100, 170)")
    for at, detail in ((108.0, {"leg": "agent"}), (150.0, {"leg": "agent"})):  # bridged again after a hold
        await store.execute("INSERT INTO call_events (call_id, at, kind, detail) VALUES ('c1', ?, 'bridged', ?)",
                            (at, json.dumps(detail)))
    [report] = await campaign_reports(store, start=50.0, end=300.0)
    assert (report.dialed, report.connected, report.contacts_dialled, report.contacts_left) == (3, 1, 2, 1)
    assert report.talk_seconds == 62.0  # 108 (first bridged) -> 170 (the call's end); the 10 s one is before
    assert report.results == {"done": 1, "failed:busy": 1, "pending": 1}
    assert await campaign_reports(store, start=300.0, end=400.0) == []
    [named] = await campaign_reports(store, start=300.0, end=400.0, campaign="spring")
    assert (named.dialed, named.contacts) == (0, 3)


def contact(no: int, status: str, attempts: int) -> ContactState:
    return ContactState(no, f"+861380013800{no}", "", "CN", [], {}, status, attempts)


def test_attempts_in_flight_at_a_restart_are_closed_once_and_never_redialled_while_they_may_ring() -> None:
    rules = parse_settings({"name": "spring", "agents": ["1001"], "ring_seconds": 20, "max_attempts": 2})
    contacts = {1: contact(1, "dialing", 1), 2: contact(2, "dialing", 1), 3: contact(3, "dialing", 2),
                4: contact(4, "dialing", 1), 5: contact(5, "retry", 1), 6: contact(6, "done", 1)}
    rows = [{"contact_no": 1, "call_id": "ringing", "started_at": 990.0, "answered_at": None, "ended_at": None},
            {"contact_no": 2, "call_id": "talking", "started_at": 900.0, "answered_at": 905.0, "ended_at": None},
            {"contact_no": 3, "call_id": "first", "started_at": 100.0, "answered_at": None, "ended_at": 106.0},
            {"contact_no": 3, "call_id": "last", "started_at": 980.0, "answered_at": None, "ended_at": None},
            # 5: its contact was written after the attempt's start, its end was not: the contact's record stands
            {"contact_no": 5, "call_id": "unwritten-end", "started_at": 950.0, "answered_at": None, "ended_at": None},
            {"contact_no": 6, "call_id": "done", "started_at": 800.0, "answered_at": 801.0, "ended_at": 850.0}]
    closed, changed = close_in_flight(rules, contacts, rows, now=1000.0)
    assert sorted(closed) == ["last", "ringing", "talking", "unwritten-end"]
    ringing, talking, last, unplaced, kept, done = (contacts[n] for n in (1, 2, 3, 4, 5, 6))
    assert (ringing.status, ringing.last_outcome, ringing.attempts) == ("retry", INTERRUPTED, 1)
    assert ringing.next_at == 990.0 + 20 + RING_END_MARGIN  # not before the old dial's ring limit has passed
    assert (talking.status, talking.next_at, talking.last_outcome) == ("done", None, INTERRUPTED)
    assert (last.status, last.attempts, last.last_outcome) == ("failed", 2, INTERRUPTED)  # no attempt left
    # "dialing" with no attempt row: its dial was never placed; the count is the rows' (0), due now.
    assert (unplaced.status, unplaced.attempts, unplaced.next_at) == ("retry", 0, 1000.0)
    assert (kept.status, kept.last_outcome) == ("retry", None) and (done.status, done.attempts) == ("done", 1)
    assert changed == {1, 2, 3, 4}


@pytest.mark.parametrize(("e164", "region", "dialled"), [
    ("+8613800138000", "CN", "13800138000"), ("+861012345678", "CN", "01012345678"),
    ("+12125551234", "CN", "0012125551234"), ("+12125551234", "US", "12125551234"),
    ("+8613800138000", "US", "0118613800138000")])
def test_campaign_numbers_are_dialled_as_from_the_campaigns_region(e164: str, region: str, dialled: str) -> None:
    assert dialled_form(e164, region) == dialled


def test_campaign_numbers_go_through_the_click_to_dial_policy() -> None:
    default = DialingSettings()  # mainland numbers allowed, international (00, +) denied
    assert campaign_number_refusal(default, "+8613800138000", "CN") == ("13800138000", None)
    assert campaign_number_refusal(default, "+8640080012345", "CN")[1] is None  # 400 service number
    dialled, refusal = campaign_number_refusal(default, "+12125551234", "CN")
    assert dialled == "0012125551234" and refusal is not None and "denied" in refusal
    no_mobiles = DialingSettings(allowed_prefixes=["0", "400"])
    assert "allowed_prefixes" in str(campaign_number_refusal(no_mobiles, "+8613800138000", "CN")[1])
    assert campaign_number_refusal(default, "not a number", "CN")[1] is not None
