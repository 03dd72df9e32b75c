"""Campaigns in the store (migration 13): settings and status, contacts, attempts, do-not-call lists."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from controller.outbound.contacts import Contact
from controller.store.db import Store
from controller.store.engines import upsert

CONTACT_COLUMNS = ("campaign", "contact_no", "number", "name", "region", "zones", "fields", "status", "attempts",
                   "next_at", "last_outcome", "disposition", "updated_at")


class CampaignRecords:
    def __init__(self, store: Store) -> None:
        self._store = store

    # -- campaigns ------------------------------------------------------------------------------------

    async def save_campaign(self, name: str, settings: dict[str, Any], status: str, at: float) -> None:
        await self._store.execute(
            upsert("campaigns", ("name", "settings", "status", "created_at", "updated_at"), ("name",))
            .replace("created_at = excluded.created_at, ", ""),
            (name, json.dumps(settings, ensure_ascii=False), status, at, at))

    async def campaigns(self) -> list[dict[str, Any]]:
        await self._store.flush()
        rows = await self._store.fetchall("SELECT name, settings, status FROM campaigns ORDER BY name")
        return [{"name": r["name"], "settings": json.loads(r["settings"]), "status": r["status"]} for r in rows]

    # -- contacts -------------------------------------------------------------------------------------

    async def add_contacts(self, campaign: str, first_no: int, contacts: Sequence[Contact], at: float) -> None:
        await self._store.executemany(
            f"INSERT INTO campaign_contacts ({', '.join(CONTACT_COLUMNS)}) VALUES ({', '.join('?' * 13)})",
            [(campaign, first_no + index, c.number, c.name, c.region, json.dumps(list(c.zones)),
              json.dumps(c.fields, ensure_ascii=False), "pending", 0, None, None, None, at)
             for index, c in enumerate(contacts)])

    def save_contact(self, campaign: str, contact_no: int, *, status: str, attempts: int, next_at: float | None,
                     last_outcome: str | None, disposition: str | None, at: float) -> None:
        """A contact's progress (queued on the store's writer: the runner does not wait)."""
        self._store.write(
            "UPDATE campaign_contacts SET status = ?, attempts = ?, next_at = ?, last_outcome = ?, disposition = ?,"
            " updated_at = ? WHERE campaign = ? AND contact_no = ?",
            (status, attempts, next_at, last_outcome, disposition, at, campaign, contact_no))

    async def contacts(self, campaign: str) -> list[dict[str, Any]]:
        await self._store.flush()
        rows = await self._store.fetchall(
            f"SELECT {', '.join(CONTACT_COLUMNS)} FROM campaign_contacts WHERE campaign = ? ORDER BY contact_no",
            (campaign,))
        return [{**row, "zones": json.loads(row["zones"]), "fields": json.loads(row["fields"])} for row in rows]

    async def flush(self) -> None:
        """Wait until what was written so far is committed (StoreUnavailable when it cannot be now)."""
        await self._store.flush()

    # -- attempts -------------------------------------------------------------------------------------

    def attempt_started(self, campaign: str, contact_no: int, call_id: str, agent_id: str | None, at: float) -> None:
        self._store.write("INSERT INTO campaign_attempts (campaign, contact_no, call_id, agent_id, started_at)"
                          " VALUES (?, ?, ?, ?, ?)", (campaign, contact_no, call_id, agent_id, at))

    def attempt_answered(self, call_id: str, agent_id: str | None, at: float) -> None:
        self._store.write("UPDATE campaign_attempts SET answered_at = ?, agent_id = ? WHERE call_id = ?",
                          (at, agent_id, call_id))

    def attempt_ended(self, call_id: str, outcome: str, at: float) -> None:
        self._store.write("UPDATE campaign_attempts SET ended_at = ?, outcome = ? WHERE call_id = ?",
                          (at, outcome, call_id))

    async def attempts(self, campaign: str) -> list[dict[str, Any]]:
        await self._store.flush()
        return [dict(row) for row in await self._store.fetchall(
            "SELECT contact_no, call_id, agent_id, started_at, answered_at, ended_at, outcome FROM campaign_attempts"
            " WHERE campaign = ? ORDER BY started_at, id", (campaign,))]

    # -- do not call ----------------------------------------------------------------------------------

    async def add_dnc(self, numbers: Sequence[str], campaign: str, reason: str, at: float) -> None:
        await self._store.executemany(upsert("do_not_call", ("number", "campaign", "added_at", "reason"),
                                             ("number", "campaign")),
                                      [(number, campaign, at, reason) for number in numbers])

    async def dnc(self) -> list[dict[str, Any]]:
        await self._store.flush()
        rows = await self._store.fetchall("SELECT number, campaign, added_at, reason FROM do_not_call"
                                          " ORDER BY campaign, number")
        return [dict(row) for row in rows]
