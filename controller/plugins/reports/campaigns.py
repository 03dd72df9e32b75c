"""Campaign reports from the store (`controller.reports.campaigns` has the arithmetic): the attempts
started in the period (`campaign_attempts`), each campaign's contacts as they are now
(`campaign_contacts`), and the talk time of each connected attempt from the call records (the agent
leg's `bridged` event to the call's end)."""

from __future__ import annotations

from controller.reports.campaigns import AttemptFact, CampaignReport, ContactFact, campaign_report
from controller.store.db import Store

#: Call ids per IN (...) query.
CHUNK = 500


async def campaign_attempt_facts(store: Store, campaign: str, *, start: float | None = None,
                                 end: float | None = None) -> list[AttemptFact]:
    """A campaign's attempts (started within [start, end) when given), with their talk time."""
    period = "".join(clause for clause, bound in ((" AND started_at >= ?", start), (" AND started_at < ?", end))
                     if bound is not None)
    rows = await store.fetchall(
        f"SELECT contact_no, call_id, answered_at, ended_at, outcome FROM campaign_attempts WHERE campaign = ?{period}"
        " ORDER BY id", (campaign, *(bound for bound in (start, end) if bound is not None)))
    talks = await _talk_seconds(store, [r["call_id"] for r in rows if r["outcome"] == "answered"])
    return [AttemptFact(r["contact_no"], r["outcome"], r["answered_at"] is not None or r["outcome"] == "abandoned",
                        talks.get(r["call_id"], 0.0)) for r in rows]


async def _talk_seconds(store: Store, call_ids: list[str]) -> dict[str, float]:
    """Per call: its call record's end less the first time an agent leg joined the customer."""
    talks: dict[str, float] = {}
    for chunk in (call_ids[i:i + CHUNK] for i in range(0, len(call_ids), CHUNK)):
        marks = ",".join("?" * len(chunk))
        bridged: dict[str, float] = {}
        for row in await store.fetchall(
                f"SELECT call_id, MIN(at) AS at FROM call_events WHERE call_id IN ({marks}) AND kind = 'bridged'"
                " GROUP BY call_id", chunk):
            bridged[row["call_id"]] = row["at"]
        for row in await store.fetchall(f"SELECT call_id, ended_at FROM calls WHERE call_id IN ({marks})", chunk):
            if row["call_id"] in bridged and row["ended_at"] is not None:
                talks[row["call_id"]] = max(0.0, row["ended_at"] - bridged[row["call_id"]])
    return talks


async def campaign_reports(store: Store, *, start: float, end: float,
                           campaign: str | None = None) -> list[CampaignReport]:
    """One report per campaign that placed a call in [start, end) (or `campaign`'s alone, even without)."""
    if campaign is not None:
        names = [row["name"] for row in await store.fetchall("SELECT name FROM campaigns WHERE name = ?",
                                                             (campaign,))]
    else:
        names = [row["campaign"] for row in await store.fetchall(
            "SELECT DISTINCT campaign FROM campaign_attempts WHERE started_at >= ? AND started_at < ?"
            " ORDER BY campaign", (start, end))]
    reports = []
    for name in names:
        contacts = [ContactFact(r["contact_no"], r["status"], r["last_outcome"], r["disposition"])
                    for r in await store.fetchall("SELECT contact_no, status, last_outcome, disposition"
                                                  " FROM campaign_contacts WHERE campaign = ?", (name,))]
        reports.append(campaign_report(name, contacts, await campaign_attempt_facts(store, name, start=start,
                                                                                    end=end)))
    return reports

