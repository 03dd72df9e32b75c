"""What the access service keeps in the store: users, API tokens (hashed), sessions (hashed), the audit log."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.store.db import Store
from controller.store.engines import upsert

#: Body fields never written to the audit log (their value is replaced).
SECRET_FIELDS = frozenset({"password", "current_password", "token", "secret"})


@dataclass
class UserRecord:
    name: str
    role: str
    agent_id: str | None
    password_hash: str
    failures: int
    locked_until: float | None
    created_at: float
    password_changed_at: float

    def public(self, now: float) -> dict[str, Any]:
        """As the API shows it (never the hash)."""
        locked = self.locked_until is not None and self.locked_until > now
        return {"name": self.name, "role": self.role, "agent_id": self.agent_id, "created_at": self.created_at,
                "password_changed_at": self.password_changed_at, "locked": locked,
                "locked_until": self.locked_until if locked else None}


@dataclass
class TokenRecord:
    id: int
    name: str
    role: str
    agent_id: str | None
    token_hash: str
    created_at: float
    created_by: str
    expires_at: float | None
    revoked_at: float | None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "role": self.role, "agent_id": self.agent_id,
                "created_at": self.created_at, "created_by": self.created_by, "expires_at": self.expires_at,
                "revoked_at": self.revoked_at}


@dataclass
class SessionRecord:
    id_hash: str
    user_name: str
    csrf: str
    created_at: float
    expires_at: float


def redacted(value: Any) -> Any:
    """A request body for the audit log: secrets replaced by "***"."""
    if isinstance(value, dict):
        return {key: "***" if key in SECRET_FIELDS else redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


_SAVE_USER = upsert("users", ("name", "role", "agent_id", "password_hash", "failures", "locked_until", "created_at",
                              "password_changed_at"), ("name",))

class AuditLog:
    """Who changed what, when, before and after. `record()` queues the row (the store batches it)."""

    def __init__(self, store: Store, now: Callable[[], float]) -> None:
        self._store = store
        self._now = now

    def record(self, actor: str, role: str | None, action: str, *, target: str | None = None,
               before: Any = None, after: Any = None, status: int | None = None) -> None:
        self._store.write(*self.statement(actor, role, action, target=target, before=before, after=after,
                                          status=status))

    def statement(self, actor: str, role: str | None, action: str, *, target: str | None = None,
                  before: Any = None, after: Any = None, status: int | None = None) -> tuple[str, tuple[Any, ...]]:
        """The row `record()` writes, as a statement to commit together with the change it describes
        (`Store.execute_atomic`)."""
        return ("INSERT INTO audit_log (at, actor, role, action, target, before, after, status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self._now(), actor, role, action, target,
                 None if before is None else json.dumps(redacted(before), ensure_ascii=False),
                 None if after is None else json.dumps(redacted(after), ensure_ascii=False), status))

    async def query(self, *, actor: str | None = None, action: str | None = None, target: str | None = None,
                    since: float | None = None, until: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first. `action` matches a prefix (`token.` gives token.create and token.revoke)."""
        await self._store.flush()
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("actor", actor), ("target", target)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if action is not None:
            clauses.append("substr(action, 1, ?) = ?")
            params += [len(action), action]
        if since is not None:
            clauses.append("at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("at < ?")
            params.append(until)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._store.fetchall(
            f"SELECT * FROM audit_log {where} ORDER BY id DESC LIMIT ?", (*params, limit))
        return [{"id": row["id"], "at": row["at"], "actor": row["actor"], "role": row["role"],
                 "action": row["action"], "target": row["target"],
                 "before": None if row["before"] is None else json.loads(row["before"]),
                 "after": None if row["after"] is None else json.loads(row["after"]), "status": row["status"]}
                for row in rows]


class AccessRecords:
    """Rows of users, api_tokens and sessions. Every write waits for its commit: an answer the API gives
    (a token created, a password changed) is never lost to a crash."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def users(self) -> list[UserRecord]:
        return [UserRecord(**dict(row)) for row in await self._store.fetchall("SELECT * FROM users")]

    async def tokens(self) -> list[TokenRecord]:
        return [TokenRecord(**dict(row)) for row in await self._store.fetchall("SELECT * FROM api_tokens ORDER BY id")]

    async def sessions(self) -> list[SessionRecord]:
        return [SessionRecord(**dict(row)) for row in await self._store.fetchall("SELECT * FROM sessions")]

    async def is_empty(self) -> bool:
        row = await self._store.fetchone(
            "SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM api_tokens) AS n")
        return row is None or int(row["n"]) == 0

    async def save_user(self, user: UserRecord) -> None:
        await self._store.execute(
            _SAVE_USER,
            (user.name, user.role, user.agent_id, user.password_hash, user.failures, user.locked_until,
             user.created_at, user.password_changed_at))

    async def delete_user(self, name: str) -> None:
        await self._store.execute("DELETE FROM sessions WHERE user_name = ?", (name,))
        await self._store.execute("DELETE FROM users WHERE name = ?", (name,))

    async def add_token(self, name: str, role: str, agent_id: str | None, token_hash: str, created_at: float,
                        created_by: str, expires_at: float | None) -> int:
        await self._store.execute(
            "INSERT INTO api_tokens (name, role, agent_id, token_hash, created_at, created_by, expires_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", (name, role, agent_id, token_hash, created_at, created_by, expires_at))
        row = await self._store.fetchone("SELECT id FROM api_tokens WHERE token_hash = ?", (token_hash,))
        assert row is not None
        return int(row["id"])

    async def revoke_token(self, token_id: int, at: float) -> None:
        await self._store.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ?", (at, token_id))

    async def add_session(self, session: SessionRecord) -> None:
        await self._store.execute(
            "INSERT INTO sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            (session.id_hash, session.user_name, session.csrf, session.created_at, session.expires_at))

    async def delete_sessions(self, id_hashes: list[str]) -> None:
        if id_hashes:
            marks = ",".join("?" * len(id_hashes))
            await self._store.execute(f"DELETE FROM sessions WHERE id_hash IN ({marks})", id_hashes)
