"""The access service with a real store and a clock the test moves: seeding, expiry, lockout, sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from controller.config import AuthSettings, TokenSettings, UserSettings
from controller.http.server import Identity, SocketRegistry
from controller.plugins.access.services import (
    DEMO_PASSWORDS,
    DEMO_TOKEN_HASHES,
    LOGOUT_PATH,
    AccessRefused,
    AccessService,
    digest,
)
from controller.plugins.access.state_persistor import AccessRecords, AuditLog, redacted
from controller.store.db import Store

SEED_TOKENS = [TokenSettings("ops", "admin-token-0123456789abcdef", "admin")]
SEED_USERS = [UserSettings("1001", "agent-password-1001", "agent", "1001")]
NO_IDLE_TIMEOUT = AuthSettings(lockout_seconds=60, idle_minutes=0)
ADMIN = Identity("ops", "admin", credential="token:1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def service(store: Store, clock: Clock, *, tokens: list[TokenSettings] = SEED_TOKENS,
                  users: list[UserSettings] = SEED_USERS, demo: bool = False,
                  settings: AuthSettings = NO_IDLE_TIMEOUT) -> AccessService:
    access = AccessService(AccessRecords(store), AuditLog(store, clock), settings,
                           now=clock, sockets=SocketRegistry(), agent_exists=lambda agent_id: agent_id == "1001",
                           demo=demo)
    await access.open(tokens, users)
    return access


async def test_the_configuration_seeds_only_an_empty_database(store: Store) -> None:
    clock = Clock()
    access = await service(store, clock)
    assert access.identify_token("admin-token-0123456789abcdef") is not None
    again = await service(store, clock, tokens=[TokenSettings("other", "other-token-0123456789abcdef", "admin")],
                          users=[])
    assert again.identify_token("other-token-0123456789abcdef") is None  # the database wins now
    assert again.identify_token("admin-token-0123456789abcdef") is not None and "1001" in again.users


async def test_a_token_expires_and_a_revoked_one_fails(store: Store) -> None:
    clock = Clock()
    access = await service(store, clock)
    value, record = await access.create_token(ADMIN, "shift", "agent", "1001", 60)
    assert record.expires_at == clock.now + 60 and record.token_hash == digest(value)
    identity = access.identify_token(value)
    assert identity is not None and identity.agent_id == "1001" and identity.credential == f"token:{record.id}"
    clock.now += 61
    assert access.identify_token(value) is None
    kept, _ = await access.create_token(ADMIN, "crm", "integration", None, None)
    await access.revoke_token(ADMIN, (await service(store, clock)).tokens[digest(kept)].id)
    assert access.identify_token(kept) is None
    assert (await service(store, clock)).identify_token(kept) is None  # revoked for good, after a restart too
    with pytest.raises(AccessRefused) as unknown:
        await access.create_token(ADMIN, "x", "agent", "9999", None)
    assert unknown.value.status == 404


async def test_lockout_counts_failures_in_a_row_and_ends_after_its_time(store: Store) -> None:
    clock = Clock()
    access = await service(store, clock)
    for _ in range(4):
        with pytest.raises(AccessRefused):
            await access.login("1001", "wrong")
    await access.login("1001", "agent-password-1001")  # a success resets the count
    for _ in range(4):
        with pytest.raises(AccessRefused) as wrong:
            await access.login("1001", "wrong")
        assert wrong.value.status == 401
    with pytest.raises(AccessRefused) as locked:
        await access.login("1001", "wrong")
    assert locked.value.status == 423 and locked.value.retry_after == 60
    with pytest.raises(AccessRefused):
        await access.login("1001", "agent-password-1001")
    assert (await service(store, clock)).users["1001"].locked_until == clock.now + 60  # the lock is stored
    clock.now += 61
    cookie, session, _ = await access.login("1001", "agent-password-1001")
    assert access.identify_session(cookie) is not None and session.expires_at == clock.now + 12 * 3600
    clock.now += 12 * 3600
    assert access.identify_session(cookie) is None  # the session ran out


async def test_sessions_survive_a_restart_and_end_with_a_password_reset(store: Store) -> None:
    clock = Clock()
    access = await service(store, clock)
    cookie, _, _ = await access.login("1001", "agent-password-1001")
    restarted = await service(store, clock)
    identity = restarted.identify_session(cookie)
    assert identity is not None and identity.role == "agent" and identity.csrf
    await restarted.change_password(ADMIN, "1001", "a-brand-new-password", None)
    assert restarted.identify_session(cookie) is None
    with pytest.raises(AccessRefused) as short:
        await restarted.change_password(ADMIN, "1001", "short", None)
    assert short.value.status == 400


async def test_a_session_unused_for_idle_minutes_ends_and_each_use_extends_it(store: Store) -> None:
    clock = Clock()
    access = await service(store, clock, settings=AuthSettings(idle_minutes=30))
    cookie, session, _ = await access.login("1001", "agent-password-1001")
    kept_cookie, kept, _ = await access.login("1001", "agent-password-1001")  # a second page, used all along
    for _ in range(3):  # 87 minutes in all, never 30 without a use
        clock.now += 29 * 60
        assert access.identify_session(cookie) is not None and access.identify_session(kept_cookie) is not None
    assert await access.expire_idle_sessions() == []
    clock.now += 29 * 60
    assert access.identify_session(kept_cookie) is not None
    clock.now += 60
    assert access.identify_session(cookie) is None  # 30 minutes unused: refused at once
    assert await access.expire_idle_sessions() == ["1001"]  # and ended (its WebSockets closed)
    assert session.id_hash not in access.sessions and kept.id_hash in access.sessions
    restarted = await service(store, clock, settings=AuthSettings(idle_minutes=30))
    assert restarted.identify_session(cookie) is None and restarted.identify_session(kept_cookie) is not None
    entries = await access.audit.query(action="session.idle")
    assert [(e["actor"], e["after"]) for e in entries] == [("user:1001", {"idle_minutes": 30})]


async def test_idle_minutes_0_means_no_idle_timeout(store: Store) -> None:
    clock = Clock()
    access = await service(store, clock, settings=AuthSettings(idle_minutes=0))
    cookie, _, _ = await access.login("1001", "agent-password-1001")
    clock.now += 11 * 3600
    assert await access.expire_idle_sessions() == [] and access.identify_session(cookie) is not None
    with pytest.raises(ValueError, match="idle_minutes"):
        AuthSettings(idle_minutes=-1)


def test_secrets_never_reach_the_audit_log() -> None:
    assert redacted({"password": "x", "nested": [{"token": "y", "name": "n"}]}) == {
        "password": "***", "nested": [{"token": "***", "name": "n"}]}


def test_demo_passwords_refuse_to_start_outside_the_demo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from controller.main import main

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.delenv("CCC_DEMO", raising=False)
    assert main(["--config", str(repo / "demo/controller.yaml")]) == 2
    err = capsys.readouterr().err
    assert "users: 'admin' uses a demo password" in err and "users: '1001' uses a demo password" in err
    short = tmp_path / "short.yaml"
    short.write_text("users:\n  - {name: boss, role: admin, password: 'abc'}\n")
    assert main(["--config", str(short)]) == 2
    assert "users: 'boss' has a password shorter than 10 characters" in capsys.readouterr().err
    agent = tmp_path / "agent.yaml"
    agent.write_text("users:\n  - {name: a, role: agent, password: 'long-enough-password'}\n")
    assert main(["--config", str(agent)]) == 2
    assert "an agent user needs agent_id" in capsys.readouterr().err


def test_certificate_paths_are_relative_to_the_configuration_file(tmp_path: Path) -> None:
    from controller.config import load_config
    from controller.settings import SettingsError

    path = tmp_path / "controller.yaml"
    path.write_text("http: {tls_cert: tls/cert.pem, tls_key: /etc/ccc/key.pem}\n")
    http = load_config(path).http
    assert (http.tls_cert, http.tls_key, http.tls) == (str(tmp_path / "tls/cert.pem"), "/etc/ccc/key.pem", True)
    assert load_config(tmp_path / "controller.yaml").data_dir == str(tmp_path / "var")
    path.write_text("http: {tls_cert: cert.pem}\n")
    with pytest.raises(SettingsError, match="give both"):
        load_config(path)


async def test_the_demo_credentials_work_only_in_demo_mode_even_once_stored(store: Store) -> None:
    from controller.config import load_config

    demo = load_config(Path(__file__).resolve().parents[2] / "demo/controller.yaml")  # its defaults
    assert {digest(t.token) for t in demo.tokens} == DEMO_TOKEN_HASHES
    assert {u.name: u.password for u in demo.users} == DEMO_PASSWORDS
    clock = Clock()
    seeded = await service(store, clock, tokens=demo.tokens, users=demo.users, demo=True)
    assert seeded.identify_token("demo-admin-token") is not None
    await seeded.login("admin", "demo-admin-pass")
    production = await service(store, clock, demo=False)  # the same database, outside demo mode
    assert production.identify_token("demo-admin-token") is None
    with pytest.raises(AccessRefused) as refused:
        await production.login("admin", "demo-admin-pass")
    assert refused.value.status == 403 and "demo" in refused.value.message
    await production.change_password(ADMIN, "admin", "a-real-admin-password", None)
    await production.login("admin", "a-real-admin-password")


async def test_an_agent_removed_or_disabled_live_cannot_log_in_nor_act_and_may_still_log_out(store: Store) -> None:
    clock = Clock()
    refusals: dict[str, str] = {}
    access = await service(store, clock)
    access.agent_refusal = refusals.get
    token, _ = await access.create_token(ADMIN, "desk", "agent", "1001", None)

    def request(path: str) -> web.Request:
        return make_mocked_request("GET", path, headers={"Authorization": f"Bearer {token}"})

    assert access.authenticate(request("/api/agents/1001")) is not None  # positive: still configured
    await access.login("1001", "agent-password-1001")
    refusals["1001"] = "agent 1001 was removed from the configuration: ask a supervisor"
    with pytest.raises(web.HTTPForbidden) as forbidden:
        access.authenticate(request("/api/agents/1001"))
    assert forbidden.value.reason == refusals["1001"]
    assert access.authenticate(request(LOGOUT_PATH)) is not None
    with pytest.raises(AccessRefused) as refused:
        await access.login("1001", "agent-password-1001")
    assert (refused.value.status, refused.value.message) == (403, refusals["1001"])
    entries = await AuditLog(store, clock).query(action="login.refused")
    assert [entry["after"] for entry in entries] == [{"reason": refusals["1001"]}]
