"""People and integrations: users with passwords and sessions, API tokens, lockout, and the audit of it all.

Everything a request is checked against (tokens, sessions, users) is kept in memory and written through
to the store, so authenticating a request never waits for the database. Passwords are hashed with
argon2id (argon2-cffi) in a worker thread: hashing takes tens of milliseconds by design, the event loop
must not. Tokens and session cookies are long random values, stored only as their SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace

import argon2
from aiohttp import web

from controller.config import AuthSettings, Role, TokenSettings, UserSettings
from controller.http.server import SESSION_COOKIE, Identity, SocketRegistry, token_from
from controller.plugins.access.state_persistor import (
    AccessRecords,
    AuditLog,
    SessionRecord,
    TokenRecord,
    UserRecord,
)

log = logging.getLogger("controller.access")

USER_ROLES: tuple[Role, ...] = ("agent", "supervisor", "admin")
TOKEN_PREFIX = "ccc_"
#: The longest pause between two looks for idle sessions (shorter when `auth.idle_minutes` is short).
IDLE_SWEEP_SECONDS = 30.0


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


#: demo/controller.yaml's default credentials (a unit test keeps them in step with the file). Outside demo
#: mode they are refused even when a database seeded by the demo still holds them.
DEMO_TOKEN_HASHES = frozenset(digest(f"demo-{name}-token") for name in (
    "admin", "supervisor", "integration", "agent-1001", "agent-1002"))
DEMO_PASSWORDS = {"admin": "demo-admin-pass", "supervisor": "demo-supervisor-pass",
                  **{str(agent): f"demo-{agent}-pass" for agent in range(1001, 1006)}}


class AccessRefused(Exception):
    """A login, password change or token request that is refused: HTTP status and a clear message."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


#: The one request an agent user whose agent was removed may still make (see `AccessService.authenticate`).
LOGOUT_PATH = "/api/auth/logout"


class AccessService:
    def __init__(self, records: AccessRecords, audit: AuditLog, settings: AuthSettings, *,
                 now: Callable[[], float], sockets: SocketRegistry,
                 agent_exists: Callable[[str], bool] = lambda agent_id: True,
                 agent_refusal: Callable[[str], str | None] = lambda agent_id: None,
                 agent_request_refusal: Callable[[str], str | None] | None = None, demo: bool = False) -> None:
        self.records = records
        self.audit = audit
        self.settings = settings
        self.now = now
        self.sockets = sockets
        self.agent_exists = agent_exists
        # Why an agent user or token may not act now (its agent was removed or disabled live): None, it may.
        self.agent_refusal = agent_refusal  # at login
        self.agent_request_refusal = agent_request_refusal or agent_refusal  # on each request
        self.demo = demo  # demo mode: the demo's well-known tokens and passwords are accepted
        # OWASP's argon2id parameters (19 MiB, 2 passes): ~60 ms a hash here, so seeding and logins stay quick.
        self.hasher = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
        self.users: dict[str, UserRecord] = {}
        self.tokens: dict[str, TokenRecord] = {}  # by hash
        self.sessions: dict[str, SessionRecord] = {}  # by hash of the cookie
        # When each session was last used (memory only: a restart counts as a use, so a session may
        # outlive `idle_minutes` by the time the controller was down, never by more).
        self.last_used: dict[str, float] = {}
        self._dummy_hash = ""  # verified against for an unknown name, so it takes as long as a known one
        # Called after a user is created or deleted (supervisors' and admins' browser phones follow the users).
        self.on_users_changed: Callable[[], Awaitable[object]] | None = None

    async def open(self, seed_tokens: list[TokenSettings], seed_users: list[UserSettings]) -> None:
        """Load users, tokens and sessions; an empty database is seeded from the configuration first
        (the database wins afterwards: README "Users and roles")."""
        if await self.records.is_empty() and (seed_tokens or seed_users):
            await self._seed(seed_tokens, seed_users)
        elif seed_tokens or seed_users:
            log.info("users and tokens come from the database; the configuration's `tokens:`/`users:` only "
                     "seed an empty one")
        self.users = {user.name: user for user in await self.records.users()}
        self.tokens = {token.token_hash: token for token in await self.records.tokens()}
        now = self.now()
        live = await self.records.sessions()
        self.sessions = {s.id_hash: s for s in live if s.expires_at > now and s.user_name in self.users}
        self.last_used = dict.fromkeys(self.sessions, now)
        await self.records.delete_sessions([s.id_hash for s in live if s.id_hash not in self.sessions])
        self._dummy_hash = await asyncio.to_thread(self.hasher.hash, secrets.token_hex(16))

    async def _seed(self, seed_tokens: list[TokenSettings], seed_users: list[UserSettings]) -> None:
        now = self.now()
        for token in seed_tokens:
            await self.records.add_token(token.name, token.role, token.agent_id, digest(token.token), now,
                                         "configuration", None)
        hashes = await asyncio.gather(*(asyncio.to_thread(self.hasher.hash, user.password) for user in seed_users))
        for user, hashed in zip(seed_users, hashes, strict=True):
            await self.records.save_user(UserRecord(user.name, user.role, user.agent_id, hashed, 0, None, now, now))
        self.audit.record("configuration", None, "seed", after={"tokens": [t.name for t in seed_tokens],
                                                                "users": [u.name for u in seed_users]})
        log.info("seeded the database with %d tokens and %d users from the configuration",
                 len(seed_tokens), len(seed_users))

    # -- authenticating requests (sync: on every request) --

    def authenticate(self, request: web.Request) -> Identity | None:
        """Who the request comes from (None: nobody known). An agent user or token whose agent was removed
        or disabled is refused (403 with the reason) once it has finished its call; logging out is always allowed."""
        presented = token_from(request)
        cookie = request.cookies.get(SESSION_COOKIE)
        identity = self.identify_token(presented) if presented else self.identify_session(cookie) if cookie else None
        if identity is not None and identity.agent_id is not None and request.path != LOGOUT_PATH:
            refusal = self.agent_request_refusal(identity.agent_id)
            if refusal is not None:
                raise web.HTTPForbidden(reason=refusal)
        return identity

    def identify_token(self, presented: str) -> Identity | None:
        token = self.tokens.get(digest(presented))
        if token is None or token.revoked_at is not None:
            return None
        if not self.demo and token.token_hash in DEMO_TOKEN_HASHES:
            return None
        if token.expires_at is not None and token.expires_at <= self.now():
            return None
        return Identity(token.name, token.role, token.agent_id, credential=f"token:{token.id}")  # type: ignore[arg-type]

    def identify_session(self, cookie: str) -> Identity | None:
        """The session's user; using it extends its idle time. An idle one is refused here and ended (its
        WebSockets closed) by the next `expire_idle_sessions`."""
        session = self.sessions.get(digest(cookie))
        now = self.now()
        if session is None or session.expires_at <= now or self._is_idle(session.id_hash, now):
            return None
        user = self.users.get(session.user_name)
        if user is None:
            return None
        self.last_used[session.id_hash] = now
        return Identity(user.name, user.role, user.agent_id, credential=f"session:{session.id_hash}",  # type: ignore[arg-type]
                        csrf=session.csrf)

    def _idle_limit(self) -> float | None:
        """Seconds of no use that end a session (None: no idle timeout). Read at each use: a reload changes it."""
        return self.settings.idle_minutes * 60 if self.settings.idle_minutes > 0 else None

    def _is_idle(self, id_hash: str, now: float) -> bool:
        limit = self._idle_limit()
        return limit is not None and now - self.last_used.get(id_hash, now) >= limit

    async def expire_idle_sessions(self) -> list[str]:
        """End the sessions unused for `auth.idle_minutes` (their WebSockets are closed); their users' names."""
        now = self.now()
        idle = [session for id_hash, session in self.sessions.items() if self._is_idle(id_hash, now)]
        if idle:
            await self._end_sessions([session.id_hash for session in idle], "session idle")
            for session in idle:
                user = self.users.get(session.user_name)
                self.audit.record(f"user:{session.user_name}", user.role if user else None, "session.idle",
                                  target=f"user:{session.user_name}",
                                  after={"idle_minutes": self.settings.idle_minutes})
            log.info("ended %d session(s) idle for %g minutes", len(idle), self.settings.idle_minutes)
        return [session.user_name for session in idle]

    async def run(self) -> None:
        """End idle sessions as they become idle, so their open WebSockets close without waiting for a request."""
        while True:
            limit = self._idle_limit()
            await asyncio.sleep(min(IDLE_SWEEP_SECONDS, limit / 4) if limit else IDLE_SWEEP_SECONDS)
            await self.expire_idle_sessions()

    async def close_agent_sockets(self, agent_id: str, reason: str) -> int:
        """Close the open WebSockets of the tokens and sessions acting as the agent (removed or disabled live):
        their pages see why at once. How many were closed."""
        credentials = [f"token:{token.id}" for token in self.tokens.values() if token.agent_id == agent_id]
        credentials += [f"session:{session.id_hash}" for session in self.sessions.values()
                        if (user := self.users.get(session.user_name)) is not None and user.agent_id == agent_id]
        return sum([await self.sockets.close(credential, reason) for credential in credentials])

    # -- logins --

    async def login(self, name: str, password: str) -> tuple[str, SessionRecord, UserRecord]:
        """Check a name and password: the session's cookie value, the session and the user. Raises
        AccessRefused: 401 for a wrong name or password, 423 while the account is locked."""
        now = self.now()
        user = self.users.get(name)
        if user is None:
            await asyncio.to_thread(self._verify, self._dummy_hash, password)
            self.audit.record(name, None, "login.failed", target=f"user:{name}", after={"reason": "unknown user"},
                              status=401)
            raise AccessRefused(401, "wrong name or password")
        if user.locked_until is not None and user.locked_until > now:
            self.audit.record(f"user:{name}", user.role, "login.refused", target=f"user:{name}",
                              after={"reason": "locked", "locked_until": user.locked_until}, status=423)
            raise AccessRefused(423, self._locked_message(user.locked_until - now), user.locked_until - now)
        if not await asyncio.to_thread(self._verify, user.password_hash, password):
            before = {"failures": user.failures}
            user.failures += 1
            if user.failures >= self.settings.max_failures:
                user.failures, user.locked_until = 0, now + self.settings.lockout_seconds
                await self.records.save_user(user)
                self.audit.record(f"user:{name}", user.role, "user.locked", target=f"user:{name}", before=before,
                                  after={"locked_until": user.locked_until,
                                         "failures": self.settings.max_failures}, status=423)
                raise AccessRefused(423, "wrong name or password; " + self._locked_message(
                    self.settings.lockout_seconds), self.settings.lockout_seconds)
            await self.records.save_user(user)
            self.audit.record(f"user:{name}", user.role, "login.failed", target=f"user:{name}", before=before,
                              after={"failures": user.failures}, status=401)
            raise AccessRefused(401, "wrong name or password")
        if user.failures or user.locked_until is not None:
            user.failures, user.locked_until = 0, None
            await self.records.save_user(user)
        refusal = self.agent_refusal(user.agent_id) if user.agent_id is not None else None
        if refusal is not None:
            self.audit.record(f"user:{name}", user.role, "login.refused", target=f"user:{name}",
                              after={"reason": refusal}, status=403)
            raise AccessRefused(403, refusal)
        if not self.demo and DEMO_PASSWORDS.get(name) == password:
            self.audit.record(f"user:{name}", user.role, "login.refused", target=f"user:{name}",
                              after={"reason": "demo password"}, status=403)
            raise AccessRefused(403, "this is the demo's well-known password, refused outside demo mode: "
                                     "ask an admin to reset it")
        await self._end_sessions([s.id_hash for s in self.sessions.values() if s.expires_at <= now], "expired")
        cookie = secrets.token_urlsafe(32)
        session = SessionRecord(digest(cookie), name, secrets.token_urlsafe(24), now,
                                now + self.settings.session_hours * 3600)
        await self.records.add_session(session)
        self.sessions[session.id_hash] = session
        self.last_used[session.id_hash] = now
        self.audit.record(f"user:{name}", user.role, "login", target=f"user:{name}", status=200)
        return cookie, session, user

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(hashed, password))
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            log.error("a stored password hash is not an argon2 hash: that login is refused")
            return False

    @staticmethod
    def _locked_message(seconds: float) -> str:
        return f"the account is locked after too many wrong passwords; try again in {int(seconds) + 1} s " \
               "or ask an admin to reset the password"

    async def logout(self, identity: Identity) -> None:
        id_hash = identity.credential.removeprefix("session:")
        await self._end_sessions([id_hash], "logged out")
        self.audit.record(identity.actor, identity.role, "logout", target=f"user:{identity.name}", status=200)

    async def _end_sessions(self, id_hashes: list[str], reason: str) -> None:
        for id_hash in id_hashes:
            self.sessions.pop(id_hash, None)
            self.last_used.pop(id_hash, None)
            await self.sockets.close(f"session:{id_hash}", reason)
        await self.records.delete_sessions(id_hashes)

    # -- users --

    def _check_password(self, password: str) -> None:
        if len(password) < self.settings.min_password_length:
            raise AccessRefused(400, f"password: at least {self.settings.min_password_length} characters")

    def _check_agent(self, role: str, agent_id: str | None) -> None:
        if role == "agent" and not agent_id:
            raise AccessRefused(400, "agent_id: an agent user or token needs the agent it acts as")
        if agent_id is not None and role != "agent":
            raise AccessRefused(400, f"agent_id: only for role agent, not {role}")
        if agent_id is not None and not self.agent_exists(agent_id):
            raise AccessRefused(404, f"agent_id: no agent {agent_id!r} is configured")

    def user_list(self) -> list[dict[str, object]]:
        now = self.now()
        return [user.public(now) for user in sorted(self.users.values(), key=lambda u: u.name)]

    async def create_user(self, actor: Identity, name: str, role: str, password: str,
                          agent_id: str | None) -> UserRecord:
        if name in self.users:
            raise AccessRefused(409, f"a user named {name!r} exists")
        self._check_agent(role, agent_id)
        self._check_password(password)
        now = self.now()
        user = UserRecord(name, role, agent_id, await asyncio.to_thread(self.hasher.hash, password), 0, None, now, now)
        await self.records.save_user(user)
        self.users[name] = user
        self.audit.record(actor.actor, actor.role, "user.create", target=f"user:{name}",
                          after=user.public(now), status=201)
        if self.on_users_changed is not None:
            await self.on_users_changed()
        return user

    async def delete_user(self, actor: Identity, name: str) -> None:
        user = self._user(name)
        if actor.is_session and actor.name == name:
            raise AccessRefused(409, "you cannot delete your own user")
        await self._end_sessions([s.id_hash for s in self.sessions.values() if s.user_name == name], "user deleted")
        await self.records.delete_user(name)
        del self.users[name]
        self.audit.record(actor.actor, actor.role, "user.delete", target=f"user:{name}",
                          before=user.public(self.now()), status=200)
        if self.on_users_changed is not None:
            await self.on_users_changed()

    def _user(self, name: str) -> UserRecord:
        user = self.users.get(name)
        if user is None:
            raise AccessRefused(404, f"no user {name!r}")
        return user

    async def change_password(self, actor: Identity, name: str, password: str, current: str | None) -> UserRecord:
        """A user changes their own (with the current password); an admin resets anyone's (which also
        unlocks the account). Every other session of the user ends."""
        own = actor.is_session and actor.name == name
        if not own and actor.role != "admin":
            raise AccessRefused(403, "only an admin may change another user's password")
        user = self._user(name)
        if own and (current is None or not await asyncio.to_thread(self._verify, user.password_hash, current)):
            raise AccessRefused(403, "current_password: wrong (needed to change your own password)")
        self._check_password(password)
        now = self.now()
        before = {"password_changed_at": user.password_changed_at, "locked_until": user.locked_until}
        changed = replace(user, password_hash=await asyncio.to_thread(self.hasher.hash, password),
                          password_changed_at=now, failures=0, locked_until=None)
        await self.records.save_user(changed)
        self.users[name] = changed
        keep = actor.credential.removeprefix("session:") if own else None
        await self._end_sessions([s.id_hash for s in self.sessions.values()
                                  if s.user_name == name and s.id_hash != keep], "password changed")
        self.audit.record(actor.actor, actor.role, "user.password" if own else "user.password.reset",
                          target=f"user:{name}", before=before,
                          after={"password_changed_at": now, "locked_until": None}, status=200)
        return changed

    # -- API tokens --

    def token_list(self) -> list[dict[str, object]]:
        return [token.public() for token in sorted(self.tokens.values(), key=lambda t: t.id)]

    async def create_token(self, actor: Identity, name: str, role: str, agent_id: str | None,
                           expires_in_seconds: float | None) -> tuple[str, TokenRecord]:
        """A new token: the value (shown once, never stored) and its record."""
        self._check_agent(role, agent_id)
        now = self.now()
        expires_at = None if expires_in_seconds is None else now + expires_in_seconds
        value = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token_id = await self.records.add_token(name, role, agent_id, digest(value), now, actor.actor, expires_at)
        record = TokenRecord(token_id, name, role, agent_id, digest(value), now, actor.actor, expires_at, None)
        self.tokens[record.token_hash] = record
        self.audit.record(actor.actor, actor.role, "token.create", target=f"token:{token_id}",
                          after=record.public(), status=201)
        return value, record

    async def revoke_token(self, actor: Identity, token_id: int) -> tuple[TokenRecord, int]:
        """Revoke a token at once: its next request fails, its open WebSockets are closed (how many)."""
        record = next((t for t in self.tokens.values() if t.id == token_id), None)
        if record is None:
            raise AccessRefused(404, f"no token {token_id}")
        if record.revoked_at is not None:
            raise AccessRefused(409, f"token {token_id} was revoked already")
        if actor.credential == f"token:{token_id}":
            raise AccessRefused(409, "this request is made with that token: revoke it with another admin's")
        before = record.public()
        now = self.now()
        await self.records.revoke_token(token_id, now)
        record.revoked_at = now
        closed = await self.sockets.close(f"token:{token_id}", "token revoked")
        self.audit.record(actor.actor, actor.role, "token.revoke", target=f"token:{token_id}", before=before,
                          after={**record.public(), "websockets_closed": closed}, status=200)
        return record, closed

    def audit_request(self, request: web.Request, identity: Identity, status: int) -> None:
        """The HTTP layer's entry for a state-changing request no service audited itself: the route, the
        path (the ids acted on), the validated body (secrets masked) and, where the HTTP layer knows what
        the request acts on (an agent), that subject before and after."""
        resource = request.match_info.route.resource
        action = f"{request.method} {resource.canonical if resource is not None else request.path}"
        before, after = None, request.get("body")
        if "audit_subject" in request:
            before, subject_after = request["audit_subject"]
            after = {"request": after, "result": subject_after}
        self.audit.record(identity.actor, identity.role, action, target=request.path, before=before, after=after,
                          status=status)
