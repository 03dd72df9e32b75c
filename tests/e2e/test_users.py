"""People and integrations on the real controller: logins with session cookies and CSRF, lockout, password
changes, API tokens (hashed, shown once, expiring, revoked with their /ws closed), the audit log, HTTPS."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, ControllerProcess, demo_config
from tests.e2e.test_cli import ccctl

pytestmark = pytest.mark.e2e
AGENT_PASSWORD = "demo-1001-pass"


class Browserish:
    """An HTTP client with a cookie jar, as a page would be: the session cookie goes with each request."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.url = url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                          connector=aiohttp.TCPConnector(ssl=ssl_context or False))
        self.csrf = ""
        self.set_cookie = ""

    async def request(self, method: str, path: str, *, csrf: bool = True, **kwargs: Any) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}
        async with self.http.request(method, self.url + path, headers=headers, **kwargs) as response:
            if "Set-Cookie" in response.headers:
                self.set_cookie = response.headers["Set-Cookie"]
            return response.status, await response.json(content_type=None)

    async def login(self, name: str, password: str) -> tuple[int, Any]:
        status, body = await self.request("POST", "/api/auth/login", json={"name": name, "password": password})
        if status == 200:
            self.csrf = body["csrf_token"]
        return status, body

    async def close(self) -> None:
        await self.http.close()


def db_rows(process: ControllerProcess, sql: str, *params: Any) -> list[dict[str, Any]]:
    with sqlite3.connect(process.db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


async def audit(process: ControllerProcess, **query: str) -> list[dict[str, Any]]:
    status, body = await process.api("GET", "/api/audit", params=query)
    assert status == 200, body
    return list(body["entries"])


async def test_an_agent_logs_in_with_a_password_and_a_cookie_session_needs_its_csrf_header(
        controller: ControllerProcess) -> None:
    page = Browserish(controller.url)
    try:
        assert (await page.login("1001", "not-the-password"))[0] == 401
        assert (await page.request("GET", "/api/agents/1001"))[0] == 401  # no session from a failed login
        status, body = await page.login("1001", AGENT_PASSWORD)
        assert status == 200 and body["user"]["agent_id"] == "1001" and body["user"]["role"] == "agent"
        cookie = page.set_cookie.lower()
        assert "ccc_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
        assert "secure" not in cookie  # plain HTTP here (HTTPS: see the last test)
        assert "password_hash" not in str(body)

        status, agent = await page.request("GET", "/api/agents/1001")
        assert status == 200 and agent["state"] == "logged_out"
        assert (await page.request("GET", "/api/agents/1002"))[0] == 403  # an agent user acts only on itself
        # A state-changing request with the cookie but without the CSRF header (a forged one) changes nothing.
        status, body = await page.request("POST", "/api/agents/1001/login", csrf=False, json={"ready": True})
        assert status == 403 and "X-CSRF-Token" in body["error"]
        assert (await page.request("GET", "/api/agents/1001"))[1]["state"] == "logged_out"
        page.csrf, real = "forged", page.csrf
        assert (await page.request("POST", "/api/agents/1001/login", json={"ready": True}))[0] == 403
        page.csrf = real
        status, agent = await page.request("POST", "/api/agents/1001/login", json={"ready": True})
        assert status == 200 and agent["state"] == "ready"
        status, me = await page.request("GET", "/api/auth/me")
        assert me == {"name": "1001", "role": "agent", "agent_id": "1001", "kind": "session", "csrf_token": real}

        # Their own password: the current one is needed; then the old one fails and the new one works.
        new = {"password": "a-new-password-1001", "current_password": "wrong-one"}
        assert (await page.request("POST", "/api/users/1001/password", json=new))[0] == 403
        assert (await page.request("POST", "/api/users/1002/password", json={"password": "x" * 12}))[0] == 403
        new["current_password"] = AGENT_PASSWORD
        assert (await controller.api("POST", "/api/users/1001/password", token="demo-agent-1001-token",
                                     json=new))[0] == 403  # an agent's API token is no user: no password of its own
        assert (await page.request("POST", "/api/users/1001/password", json=new))[0] == 200
        assert (await page.request("GET", "/api/agents/1001"))[0] == 200  # this session stays
        other = Browserish(controller.url)
        assert (await other.login("1001", AGENT_PASSWORD))[0] == 401
        assert (await other.login("1001", "a-new-password-1001"))[0] == 200
        await other.close()

        ws_url = controller.url.replace("http", "ws") + "/ws"
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:  # a page of another site, with the cookie
            await page.http.ws_connect(ws_url, headers={"Origin": "http://evil.example"})
        assert foreign.value.status == 403
        async with page.http.ws_connect(ws_url, headers={"Origin": controller.url}) as ws:  # by the cookie
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            assert (await page.request("POST", "/api/auth/logout"))[0] == 200
            message = await ws.receive(timeout=5)
            assert (message.type, message.data, message.extra) == (aiohttp.WSMsgType.CLOSE, 4001, "logged out")
        assert (await page.request("GET", "/api/agents/1001"))[0] == 401  # the session ended
    finally:
        await page.close()

    entries = await audit(controller, actor="user:1001")
    actions = [e["action"] for e in reversed(entries)]
    password_route = "POST /api/users/{name}/password"
    assert actions == ["login.failed", "login", "POST /api/agents/{agent_id}/login", password_route, password_route,
                       "user.password", "login.failed", "login", "logout"], actions
    refused = [e for e in entries if e["action"] == password_route]
    assert [(e["target"], e["status"]) for e in reversed(refused)] == [
        ("/api/users/1001/password", 403), ("/api/users/1002/password", 403)]
    assert all(e["after"]["password"] == "***" for e in refused)  # who tried, never the password
    changed = next(e for e in entries if e["action"] == "user.password")
    assert changed["before"]["password_changed_at"] < changed["after"]["password_changed_at"]
    acd_login = next(e for e in entries if e["action"] == "POST /api/agents/{agent_id}/login")
    assert acd_login["target"] == "/api/agents/1001/login" and acd_login["after"]["request"] == {"ready": True}
    assert acd_login["before"]["state"] == "logged_out" and acd_login["after"]["result"]["state"] == "ready"
    assert acd_login["status"] == 200 and acd_login["role"] == "agent"
    failed = await audit(controller, action="login.failed")
    assert [e["target"] for e in failed] == ["user:1001", "user:1001"]
    # The forged requests were refused before any handler: not an entry of the agent's (403 by the middleware).
    stored = b"".join(path.read_bytes() for path in controller.data_dir.glob("controller.sqlite3*"))
    assert b"a-new-password" not in stored and b"demo-1001-pass" not in stored  # hashed, never kept as is


async def test_five_wrong_passwords_lock_the_account_for_the_configured_time(
        fresh_asterisk: Path, tmp_path: Path) -> None:
    process = ControllerProcess(tmp_path / "data", config=demo_config(tmp_path, auth={"lockout_seconds": 3}))
    await process.start()
    page = Browserish(process.url)
    try:
        for attempt in range(1, 5):
            status, body = await page.login("1002", f"wrong-{attempt}")
            assert (status, body["error"]) == (401, "wrong name or password"), attempt
        status, body = await page.login("1002", "wrong-5")
        assert status == 423 and "locked" in body["error"], body
        status, body = await page.login("1002", "demo-1002-pass")  # the right password, while locked
        assert status == 423 and "locked" in body["error"]
        assert (await page.request("GET", "/api/agents/1002"))[0] == 401
        _, users = await process.api("GET", "/api/users")
        assert next(u for u in users["users"] if u["name"] == "1002")["locked"] is True
        colleague = Browserish(process.url)
        assert (await colleague.login("1001", AGENT_PASSWORD))[0] == 200  # others are not locked
        await colleague.close()
        await asyncio.sleep(3.2)
        assert (await page.login("1002", "demo-1002-pass"))[0] == 200  # the lock has run out
    finally:
        await page.close()
        process.terminate()
    (locked,) = [e for e in await_audit_rows(process) if e["action"] == "user.locked"]
    assert locked["target"] == "user:1002" and locked["after"]["failures"] == 5
    assert locked["before"] == {"failures": 4}


async def test_a_page_session_unused_for_idle_minutes_ends_and_its_websocket_closes(
        fresh_asterisk: Path, tmp_path: Path) -> None:
    process = ControllerProcess(tmp_path / "data", config=demo_config(tmp_path, auth={"idle_minutes": 0.05}))  # 3 s
    await process.start()
    idle, busy = Browserish(process.url), Browserish(process.url)
    try:
        assert (await idle.login("1001", AGENT_PASSWORD))[0] == 200
        assert (await busy.login("1002", "demo-1002-pass"))[0] == 200
        async with idle.http.ws_connect(process.url.replace("http", "ws") + "/ws",
                                        headers={"Origin": process.url}) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
            for _ in range(6):  # 6 s in all: the busy page is used every second, so it lasts
                await asyncio.sleep(1)
                assert (await busy.request("GET", "/api/agents/1002"))[0] == 200
            message = await ws.receive(timeout=1)  # the idle session's socket was closed meanwhile
            assert (message.type, message.data, message.extra) == (aiohttp.WSMsgType.CLOSE, 4001, "session idle")
        assert (await idle.request("GET", "/api/agents/1001"))[0] == 401
        assert (await busy.request("GET", "/api/agents/1002"))[0] == 200
        assert (await idle.login("1001", AGENT_PASSWORD))[0] == 200  # logging in again works
        assert (await idle.request("GET", "/api/agents/1001"))[0] == 200
    finally:
        await idle.close()
        await busy.close()
        process.terminate()
    ended = [e for e in await_audit_rows(process) if e["action"] == "session.idle"]
    assert [e["actor"] for e in ended] == ["user:1001"]


def await_audit_rows(process: ControllerProcess) -> list[dict[str, Any]]:
    """The audit log read from the database file (after the controller stopped)."""
    return [{**row, "before": json.loads(row["before"] or "null"), "after": json.loads(row["after"] or "null")}
            for row in db_rows(process, "SELECT * FROM audit_log ORDER BY id")]


async def test_an_admin_resets_a_locked_password_and_supervisors_cannot(controller: ControllerProcess) -> None:
    page = Browserish(controller.url)
    try:
        for attempt in range(5):
            await page.login("1003", f"wrong-{attempt}")
        assert (await page.login("1003", "demo-1003-pass"))[0] == 423
        reset = {"password": "reset-by-admin-1003"}
        supervisor = Browserish(controller.url)
        assert (await supervisor.login("supervisor", "demo-supervisor-pass"))[0] == 200
        assert (await supervisor.request("POST", "/api/users/1003/password", json=reset))[0] == 403
        await supervisor.close()
        status, user = await controller.api("POST", "/api/users/1003/password", json=reset)
        assert status == 200 and user["locked"] is False
        assert (await page.login("1003", "reset-by-admin-1003"))[0] == 200
    finally:
        await page.close()
    (entry,) = await audit(controller, action="user.password.reset")
    assert entry["actor"] == "token:ops" and entry["target"] == "user:1003" and entry["before"]["locked_until"]
    assert "reset-by-admin" not in str(entry)


async def test_a_token_is_shown_once_stored_hashed_and_revoking_it_closes_its_websocket(
        controller: ControllerProcess) -> None:
    status, created = await controller.api("POST", "/api/tokens", json={"name": "crm-2", "role": "integration"})
    assert status == 201 and created["token"].startswith("ccc_") and created["expires_at"] is None
    token = created["token"]
    assert (await controller.api("GET", "/api/status", token=token))[0] == 200
    _, listed = await controller.api("GET", "/api/tokens")
    assert token not in str(listed) and any(t["name"] == "crm-2" for t in listed["tokens"])
    (row,) = db_rows(controller, "SELECT token_hash FROM api_tokens WHERE id = ?", created["id"])
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token.encode() not in controller.db.read_bytes()
    # The demo tokens are in the store too (seeded from the configuration), hashed.
    assert not db_rows(controller, "SELECT 1 FROM api_tokens WHERE token_hash = 'demo-admin-token'")

    ws_url = controller.url.replace("http", "ws") + "/ws"
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ws_url}?token={token}") as revoked_ws, \
            http.ws_connect(f"{ws_url}?token={ADMIN_TOKEN}") as kept_ws:
        assert (await revoked_ws.receive_json(timeout=5))["type"] == "hello"
        assert (await kept_ws.receive_json(timeout=5))["type"] == "hello"
        status, body = await controller.api("DELETE", f"/api/tokens/{created['id']}")
        assert status == 200 and body["revoked_at"] and body["websockets_closed"] == 1
        message = await revoked_ws.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 4001, message
        assert message.extra == "token revoked"
        assert revoked_ws.closed
        # The admin's socket is still open and served: a new event reaches it.
        await controller.api("POST", "/api/agents/1004/login", json={"ready": True})
        event = await kept_ws.receive_json(timeout=5)
        while event.get("agent_id") != "1004":
            event = await kept_ws.receive_json(timeout=5)
        assert event["type"].startswith("agent.") and not kept_ws.closed
    status, body = await controller.api("GET", "/api/status", token=token)
    assert status == 401 and "revoked" in body["error"]
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{ws_url}?token={token}")
        assert refused.value.status == 401
    assert (await controller.api("DELETE", f"/api/tokens/{created['id']}"))[0] == 409  # revoked already
    assert (await controller.api("DELETE", "/api/tokens/1"))[0] == 409  # the admin's own token (id 1: ops)
    assert (await controller.api("POST", "/api/tokens", token="demo-supervisor-token",
                                 json={"name": "x", "role": "admin"}))[0] == 403

    entries = await audit(controller, action="token.")
    assert [(e["action"], e["actor"], e["target"]) for e in reversed(entries)] == [
        ("token.create", "token:ops", f"token:{created['id']}"),
        ("token.revoke", "token:ops", f"token:{created['id']}")]
    assert entries[0]["before"]["revoked_at"] is None and entries[0]["after"]["websockets_closed"] == 1
    assert token not in str(await audit(controller))


async def test_an_expired_token_answers_401(controller: ControllerProcess) -> None:
    status, created = await controller.api("POST", "/api/tokens", json={
        "name": "agent-1005-shift", "role": "agent", "agent_id": "1005", "expires_in_seconds": 2})
    assert status == 201 and created["expires_at"] == pytest.approx(time.time() + 2, abs=1)
    assert (await controller.api("GET", "/api/agents/1005", token=created["token"]))[0] == 200
    await asyncio.sleep(2.5)
    status, body = await controller.api("GET", "/api/agents/1005", token=created["token"])
    assert status == 401 and "expired" in body["error"]
    # Bad requests change nothing: an agent token for an unknown agent, an agent token without its agent.
    assert (await controller.api("POST", "/api/tokens", json={"name": "a", "role": "agent", "agent_id": "9"}))[0] == 404
    assert (await controller.api("POST", "/api/tokens", json={"name": "a", "role": "agent"}))[0] == 400
    _, listed = await controller.api("GET", "/api/tokens")
    assert [t["name"] for t in listed["tokens"]][-1] == "agent-1005-shift"


async def test_the_audit_log_records_supervisor_and_admin_changes_with_who(controller: ControllerProcess) -> None:
    assert (await controller.api("POST", "/api/agents/1002/login", token="demo-supervisor-token",
                                 json={"ready": True}))[0] == 200
    assert (await controller.api("POST", "/api/flows/reload"))[0] == 200
    assert (await controller.api("POST", "/api/users", json={"name": "1004", "role": "agent", "agent_id": "1004",
                                                              "password": "short"}))[0] == 400
    status, _ = await controller.api("POST", "/api/users", json={"name": "lead", "role": "supervisor",
                                                                   "password": "team-lead-password"})
    assert status == 201
    entries = await audit(controller)
    found = {(e["actor"], e["action"], e["target"], e["status"]) for e in entries}
    assert ("token:wallboard", "POST /api/agents/{agent_id}/login", "/api/agents/1002/login", 200) in found
    by_supervisor = next(e for e in entries if e["actor"] == "token:wallboard")
    assert (by_supervisor["before"]["state"], by_supervisor["after"]["result"]["state"]) == ("logged_out", "ready")
    assert ("token:ops", "POST /api/flows/reload", "/api/flows/reload", 200) in found
    assert ("token:ops", "user.create", "user:lead", 201) in found
    created = next(e for e in entries if e["action"] == "user.create")
    assert created["after"]["role"] == "supervisor" and "password" not in created["after"]
    refused = next(e for e in entries if e["action"] == "POST /api/users")  # the refused one: who tried what
    assert refused["status"] == 400 and refused["after"] is None
    # Reading changes nothing, so it is not audited; filters narrow the log.
    assert not [e for e in entries if e["action"].startswith("GET")]
    assert {e["actor"] for e in await audit(controller, actor="token:wallboard")} == {"token:wallboard"}
    assert (await controller.api("GET", "/api/audit", token="demo-agent-1001-token"))[0] == 403

    # ccctl audit: the same log, filtered, as a table and as JSON.
    table = await asyncio.to_thread(ccctl, "audit", "--actor", "token:ops", url=controller.url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert any("user.create" in line and "user:lead" in line and "201" in line for line in lines), table.stdout
    assert any("POST /api/flows/reload" in line for line in lines) and "token:wallboard" not in table.stdout
    listed = json.loads((await asyncio.to_thread(ccctl, "audit", "--action", "user.", "--json",
                                                 url=controller.url)).stdout)
    assert [e["action"] for e in listed["entries"]] == ["user.create"]


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key),
                    "-out", str(cert), "-subj", f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


async def test_https_serves_api_pages_and_websocket_with_secure_cookies_and_reloads_the_certificate(
        fresh_asterisk: Path, tmp_path: Path) -> None:
    first, renewed = self_signed(tmp_path, "first"), self_signed(tmp_path, "renewed")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    live_cert.write_bytes(first[0].read_bytes())
    live_key.write_bytes(first[1].read_bytes())
    config = demo_config(tmp_path, http={"listen": "127.0.0.1", "port": "${CCC_HTTP_PORT}",
                                         "tls_cert": str(live_cert), "tls_key": str(live_key)})
    process = ControllerProcess(tmp_path / "data", config=config)
    https = process.url.replace("http://", "https://")
    trust_first = ssl.create_default_context(cafile=first[0])
    trust_renewed = ssl.create_default_context(cafile=renewed[0])
    await process.start(wait=False)
    try:
        page = Browserish(https, trust_first)
        for _ in range(300):
            try:
                if (await page.request("GET", "/healthz"))[0] == 200:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        assert (await page.login("1001", AGENT_PASSWORD))[0] == 200
        assert "secure" in page.set_cookie.lower() and "httponly" in page.set_cookie.lower()
        assert (await page.request("GET", "/api/agents/1001"))[0] == 200  # the cookie goes back over HTTPS
        # ccctl over HTTPS: a private certificate is trusted through SSL_CERT_FILE.
        command = [sys.executable, "-m", "controller.cli.main", "--url", https, "--token", ADMIN_TOKEN, "audit",
                   "--action", "login", "--json"]
        trusted = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60,
                                          env={**os.environ, "SSL_CERT_FILE": str(first[0])})
        assert trusted.returncode == 0, trusted.stderr
        assert [e["actor"] for e in json.loads(trusted.stdout)["entries"]] == ["user:1001"]
        untrusted = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
        assert untrusted.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
        async with page.http.get(https + "/toolbar") as response:
            assert response.status == 200 and "<html" in await response.text()
        async with page.http.ws_connect(https.replace("https", "wss") + "/ws") as ws:  # the session's cookie
            assert (await ws.receive_json(timeout=5))["type"] == "hello"
        async with aiohttp.ClientSession() as plain:  # no plain HTTP on the port
            with pytest.raises(aiohttp.ClientError):
                await plain.get(process.url + "/healthz", timeout=aiohttp.ClientTimeout(total=5))
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # the renewed one is not served yet
                await plain.get(https + "/healthz", ssl=trust_renewed)

            live_cert.write_bytes(renewed[0].read_bytes())  # renewal: new files, then SIGHUP
            live_key.write_bytes(renewed[1].read_bytes())
            assert process.process is not None
            os.kill(process.process.pid, signal.SIGHUP)
            for _ in range(50):
                await asyncio.sleep(0.2)
                try:
                    async with plain.get(https + "/healthz", ssl=trust_renewed) as response:
                        assert response.status == 200
                        break
                except aiohttp.ClientConnectorCertificateError:
                    continue
            else:
                raise AssertionError("the renewed certificate was not served after SIGHUP")
        await page.close()
        assert "certificate reloaded" in process.log.read_text()
    finally:
        process.terminate()


async def test_ccctl_manages_tokens_and_users(controller: ControllerProcess) -> None:
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "controller.cli.main", "--url", controller.url, "--token",
                               ADMIN_TOKEN, *args], input=stdin, capture_output=True, text=True, timeout=60)

    created = await asyncio.to_thread(run, "tokens", "create", "erp", "--role", "integration", "--expires-days", "1")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("ccc_") and (await controller.api("GET", "/api/status", token=token))[0] == 200
    listed = await asyncio.to_thread(run, "tokens", "list")
    assert "erp" in listed.stdout and token not in listed.stdout
    token_id = next(t["id"] for t in json.loads((await asyncio.to_thread(run, "tokens", "list", "--json")).stdout)
                    ["tokens"] if t["name"] == "erp")
    revoked = await asyncio.to_thread(run, "tokens", "revoke", str(token_id))
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    assert (await controller.api("GET", "/api/status", token=token))[0] == 401

    added = await asyncio.to_thread(run, "users", "add", "1004x", "--role", "agent", "--agent-id", "1004",
                                    stdin="password-of-1004x\n")
    assert added.returncode == 0, added.stderr
    page = Browserish(controller.url)
    try:
        assert (await page.login("1004x", "password-of-1004x"))[0] == 200
        short = await asyncio.to_thread(run, "users", "password", "1004x", stdin="short\n")
        assert short.returncode == 1 and "password" in short.stderr  # refused, nothing changed
        assert (await page.request("GET", "/api/agents/1004"))[0] == 200
        reset = await asyncio.to_thread(run, "users", "password", "1004x", stdin="another-password-1004\n")
        assert reset.returncode == 0, reset.stderr
        assert (await page.request("GET", "/api/agents/1004"))[0] == 401  # the reset ended the session
        assert (await page.login("1004x", "another-password-1004"))[0] == 200
        assert "1004x" in (await asyncio.to_thread(run, "users", "list")).stdout
        deleted = await asyncio.to_thread(run, "users", "delete", "1004x")
        assert deleted.returncode == 0 and (await page.request("GET", "/api/agents/1004"))[0] == 401
    finally:
        await page.close()
    assert "password-of-1004x" not in (await asyncio.to_thread(run, "audit", "--json")).stdout
