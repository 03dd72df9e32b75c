"""What QA keeps in the store: forms (every version) and scores. Writes are statements handed back to the
service, which commits each with its audit row (`Store.execute_atomic`)."""

from __future__ import annotations

import json
from typing import Any

from controller.store.db import Params, Store
from controller.store.engines import Row

Statement = tuple[str, Params]
SCORE_COLUMNS = ("id, recording_id, call_id, agent_id, form, form_version, scorer, scored_at, score, critical_failed,"
                 " points, comments, summary")


def form_of(row: Row) -> dict[str, Any]:
    definition = json.loads(row["definition"])
    return {"name": row["name"], "version": int(row["version"]), "title": definition.get("title", ""),
            "criteria": definition["criteria"], "created_at": row["created_at"], "created_by": row["created_by"],
            "retired": row["retired_at"] is not None}


def score_of(row: Row) -> dict[str, Any]:
    record = dict(row)
    record["points"] = json.loads(record["points"])
    record["comments"] = json.loads(record["comments"])
    record["critical_failed"] = bool(record["critical_failed"])
    return record


class QaRecords:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def commit(self, statements: list[Statement]) -> None:
        """A change and its audit row, in one transaction."""
        await self._store.execute_atomic(statements)

    async def latest_forms(self) -> list[dict[str, Any]]:
        """Each form's latest version (retired ones too: marked), by name."""
        rows = await self._store.fetchall(
            "SELECT f.* FROM qa_forms f WHERE f.version = (SELECT MAX(version) FROM qa_forms g WHERE g.name = f.name)"
            " ORDER BY f.name")
        return [form_of(row) for row in rows]

    async def form(self, name: str, version: int | None = None) -> dict[str, Any] | None:
        """A form's given version, or its latest."""
        if version is None:
            row = await self._store.fetchone(
                "SELECT * FROM qa_forms WHERE name = ? ORDER BY version DESC LIMIT 1", (name,))
        else:
            row = await self._store.fetchone("SELECT * FROM qa_forms WHERE name = ? AND version = ?", (name, version))
        return form_of(row) if row else None

    async def forms_of(self, versions: set[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
        """The versions the scores were given with."""
        found: dict[tuple[str, int], dict[str, Any]] = {}
        for name in {name for name, _ in versions}:
            for row in await self._store.fetchall("SELECT * FROM qa_forms WHERE name = ?", (name,)):
                form = form_of(row)
                if (name, form["version"]) in versions:
                    found[name, form["version"]] = form
        return found

    @staticmethod
    def put_form(name: str, version: int, definition: dict[str, Any], at: float, by: str) -> Statement:
        return ("INSERT INTO qa_forms (name, version, definition, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
                (name, version, json.dumps(definition, ensure_ascii=False), at, by))

    @staticmethod
    def retire_form(name: str, version: int, at: float) -> Statement:
        return "UPDATE qa_forms SET retired_at = ? WHERE name = ? AND version = ?", (at, name, version)

    @staticmethod
    def put_score(score: dict[str, Any]) -> Statement:
        return (f"INSERT INTO qa_scores ({SCORE_COLUMNS}) VALUES ({', '.join('?' * 13)})",
                (score["id"], score["recording_id"], score["call_id"], score["agent_id"], score["form"],
                 score["form_version"], score["scorer"], score["scored_at"], score["score"],
                 int(score["critical_failed"]), json.dumps(score["points"]),
                 json.dumps(score["comments"], ensure_ascii=False), score["summary"]))

    async def score(self, score_id: str) -> dict[str, Any] | None:
        row = await self._store.fetchone(f"SELECT {SCORE_COLUMNS} FROM qa_scores WHERE id = ?", (score_id,))
        return score_of(row) if row else None

    async def scores(self, *, agent_id: str | None = None, recording_id: int | None = None,
                     start: float | None = None, end: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        where: list[str] = []
        params: list[object] = []
        for clause, value in (("agent_id = ?", agent_id), ("recording_id = ?", recording_id),
                              ("scored_at >= ?", start), ("scored_at < ?", end)):
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = await self._store.fetchall(
            f"SELECT {SCORE_COLUMNS} FROM qa_scores {'WHERE ' + ' AND '.join(where) if where else ''}"
            " ORDER BY scored_at DESC, id LIMIT ?", (*params, limit))
        return [score_of(row) for row in rows]
