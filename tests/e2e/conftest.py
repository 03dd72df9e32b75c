"""Fixtures for end-to-end tests: the real Asterisk sandbox and the controller as a process.

The sandbox is started once per test session (tools/sandbox.py builds it on first use) and held
under a lock file, so two test runs on one machine never share it by accident. The controller
runs as a real process with the demo configuration and a fresh data directory per test.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import sandbox  # noqa: E402

from tests import sipp  # noqa: E402
from tests.e2e import strays  # noqa: E402

# Every process this pytest starts inherits the mark: a stray one is then known for the harness's own (strays.py).
os.environ[strays.HARNESS_MARK] = strays.run_mark()

ADMIN_TOKEN = "demo-admin-token"
ARI = "http://127.0.0.1:8088/ari"
ARI_HEADERS = {"Authorization": "Basic " + base64.b64encode(b"ccc:ccc-demo-ari").decode()}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an e2e test, marked or not: `make test` runs the unit tests with
    `-m "not e2e"` and these in parallel groups (tools/e2e.py) with `-m e2e`, so none falls between."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.e2e)


_file_started_with: dict[Path, set[tuple[int, int]]] = {}  # per test file: the harness programs running before it


def _kill_left_behind(before: set[tuple[int, int]], by: str) -> None:
    """Kill the harness programs (controllers, guards, `make run`, node b's Asterisk) started since `before` and
    still running, with a warning naming them. SIPp phones are tests/sipp.py's kill_leftovers' business."""
    left = [p for p in strays.harness_processes([B_ROOT]) if p.key not in before and not p.is_sipp]
    if left:
        still = strays.kill([p.pid for p in left])
        warnings.warn(f"{by} left {'; '.join(f'pid {p.pid} ({p.command})' for p in left)} running: killed"
                      + (f", but {still} still run" if still else ""), stacklevel=1)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before a test file's first test: no stray from an earlier file or run in this namespace (strays.py). One is
    killed, and fails this one test with its pid and command line, rather than the file's tests one by one."""
    if item.path in _file_started_with:
        return
    problem = strays.check_namespace(item.path.name, [B_ROOT])
    _file_started_with[item.path] = {p.key for p in strays.harness_processes([B_ROOT])}
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After a test file's last test (its module fixtures are torn down by then): what they left is killed."""
    try:
        return (yield)
    finally:
        if item.path in _file_started_with and (nextitem is None or nextitem.path != item.path):
            _kill_left_behind(_file_started_with.pop(item.path), f"{item.path.name} (its module fixtures)")


@pytest.fixture(autouse=True)
def no_controller_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test (and its fixtures' teardown: autouse fixtures are set up first, so torn down last): the
    controllers and other harness programs it started are gone, whatever happened to its own clean-up."""
    before = {p.key for p in strays.harness_processes([B_ROOT])}
    yield
    _kill_left_behind(before, request.node.nodeid)


def demo_config(tmp_path: Path, **sections: Any) -> Path:
    """The demo configuration with some top-level sections replaced, written to tmp_path."""
    config = yaml.safe_load((REPO / "demo" / "controller.yaml").read_text())
    config["ivr"]["flows_dir"] = str(REPO / "ivr_flows")
    if "ivr" in sections and "dids" not in sections:
        # The demo maps its hotline DID to the shipped `hotline` flow; a test's own flows folder may have no
        # such flow (a DID mapped to a missing flow refuses the load), and its flows list their own DIDs.
        config["dids"] = {}
    config.update(sections)
    path = tmp_path / "controller.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def demo_backend() -> Iterator[str]:
    """The demo billing/CRM back-end on 127.0.0.1:8090 (what `make run` starts), for the module that asks for it:
    a module after it (`test_call_events`' failing back-end) finds the port free again."""
    process = subprocess.Popen([sys.executable, "-m", "controller.demo.backend"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", 8090)) == 0:
                break
        time.sleep(0.1)
    yield "http://127.0.0.1:8090"
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def forget_registrations() -> None:
    """Back to the demo's static phone contacts. Asterisk keeps a softphone's registration across
    restarts (astdb) until it expires; one left by `make run` or a killed test would be rung
    before the static contact, taking the calls meant for the SIPp phones."""
    sandbox.cli("database deltree registrar")


@pytest.fixture(scope="session")
def asterisk() -> Iterator[Path]:
    sandbox.SANDBOX_DIR.mkdir(parents=True, exist_ok=True)
    lock = open(sandbox.SANDBOX_DIR / "e2e.lock", "w")  # noqa: SIM115 - held for the whole session
    fcntl.flock(lock, fcntl.LOCK_EX)
    sandbox.start()
    forget_registrations()
    yield sandbox.ROOT
    if not os.environ.get("CCC_KEEP_ASTERISK"):
        sandbox.stop()
    lock.close()


async def ari_get(path: str) -> Any:
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, http.get(ARI + path) as response:
        return await response.json()


@contextlib.asynccontextmanager
async def channel_events(app: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """The event stream of a second ARI application that hears every channel (a test's own observer).

    Subscribed to `channel:` (all channels), not with `subscribeAll=true`: that also subscribes the application
    to every device's state, and an application with device-state subscriptions that disconnects while a state
    change is on its way can deadlock Asterisk's ARI (asterisk/asterisk#2170, open): every WebSocket after it,
    the controller's too, then hangs in its handshake. CI hit it once, after test_ari_event_filter's probe."""
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http, http.ws_connect(
            f"{ARI.replace('http', 'ws')}/events?app={app}&subscribeAll=false") as ws:
        async with http.post(f"{ARI}/applications/{app}/subscription",
                             params={"eventSource": "channel:"}) as response:
            assert response.status == 200, await response.text()
        yield ws


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 15, interval: float = 0.1) -> Any:
    """`check()`'s first truthy value, polled every `interval`; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := await check():
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met in {timeout:g} s")


async def hang_up_everything() -> None:
    """Leave no channel behind from a previous test."""
    async with aiohttp.ClientSession(headers=ARI_HEADERS) as http:
        async with http.get(f"{ARI}/channels") as response:
            channels = await response.json()
        for channel in channels:
            async with http.delete(f"{ARI}/channels/{channel['id']}"):
                pass
        async with http.get(f"{ARI}/bridges") as response:
            bridges = await response.json()
        for bridge in bridges:
            async with http.delete(f"{ARI}/bridges/{bridge['id']}"):
                pass


async def hang_up_then_kill(processes: list[sipp._Sipp], within: float = 2.0) -> None:
    """End the calls left in Asterisk while a test's SIPp processes still run (they answer the BYEs), give
    them `within` seconds to finish, then kill the ones left.

    Killed first, a phone leaves Asterisk's BYE unanswered, and Asterisk sends it again to that port for 32 s
    (SIP timer F). The next test's phone on the same port takes the stray BYE for a call of its own, which
    uses up one call of its `-m` budget: it then stops after its first call, and that test's last caller
    waits for an agent who never answers (one failed test failing the next)."""
    await hang_up_everything()
    running = [process.process.wait() for process in processes
               if process.process is not None and process.process.returncode is None]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*running), within)
    for process in processes:
        process.kill()


class ControllerProcess:
    """The controller as a subprocess, with its own data directory and HTTP port."""

    def __init__(self, data_dir: Path, config: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.config = config or REPO / "demo" / "controller.yaml"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / "controller.log"
        self.env = {**os.environ, "CCC_DATA_DIR": str(data_dir), "CCC_HTTP_PORT": str(self.port),
                    "CCC_SANDBOX_ROOT": str(sandbox.ROOT), "CCC_LOG_LEVEL": "debug", "CCC_DEMO": "true",
                    **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        """The SQLite store (when the controller runs on PostgreSQL, `rows()` reads its database)."""
        return self.data_dir / "controller.sqlite3"

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """What a query (`?` placeholders) returns from the controller's store, whichever engine it runs on."""
        url = self.env.get("CCC_STORE_URL")
        if not url:
            with contextlib.closing(sqlite3.connect(self.db)) as db:
                db.row_factory = sqlite3.Row
                return [dict(row) for row in db.execute(sql, params)]
        import psycopg
        from psycopg.rows import dict_row

        from controller.store.engines import to_postgresql

        with psycopg.connect(url, password=self.env.get("CCC_STORE_PASSWORD", ""), connect_timeout=5,
                             cursor_factory=psycopg.RawCursor, row_factory=dict_row) as conn:
            return list(conn.execute(to_postgresql(sql), params).fetchall())

    async def start(self, wait: bool = True) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logfile = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controller", "--config", str(self.config)],
            env=self.env, stdout=logfile, stderr=subprocess.STDOUT, cwd=REPO)
        if wait:
            try:
                await self.wait_healthy()
            except BaseException:
                self.terminate()  # never leave a half-started controller holding the ports
                raise

    async def health(self) -> dict[str, Any] | None:
        try:
            async with aiohttp.ClientSession() as http, http.get(self.url + "/healthz",
                                                                  timeout=aiohttp.ClientTimeout(total=2)) as r:
                return dict(await r.json())
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def status(self) -> dict[str, Any] | None:
        """The controller's own details (calls, flows, ARI connections): /api/status, authenticated."""
        try:
            status, body = await self.api("GET", "/api/status", timeout=aiohttp.ClientTimeout(total=5))
        except (aiohttp.ClientError, TimeoutError):
            return None
        return dict(body["controller"]) if status == 200 else None

    async def wait_healthy(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"controller exited: {self.log.read_text()[-3000:]}")
            health = await self.health()
            # Ready once connected and the flows' prompts are rendered (slow on a fresh machine).
            if health and health.get("ari_connected") and health.get("prompts_ready", True):
                return health
            await asyncio.sleep(0.1)
        raise AssertionError(f"controller not healthy after {timeout} s: {self.log.read_text()[-3000:]}")

    async def api(self, method: str, path: str, token: str = ADMIN_TOKEN, **kwargs: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http, http.request(
                method, self.url + path, headers={"Authorization": f"Bearer {token}"}, **kwargs) as r:
            try:
                body = await r.json(content_type=None)
            except ValueError:
                body = await r.text()
            return r.status, body

    async def call_records(self) -> list[dict[str, Any]]:
        status, body = await self.api("GET", "/api/calls")
        assert status == 200, body
        return list(body["recent"])

    async def call_record(self, call_id: str) -> dict[str, Any]:
        status, body = await self.api("GET", f"/api/calls/{call_id}")
        assert status == 200, body
        return dict(body)

    async def wait_for_records(self, count: int, *, ended: bool = True, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        records: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            records = await self.call_records()
            done = [r for r in records if r["ended_at"] is not None] if ended else records
            if len(done) >= count:
                return done
            await asyncio.sleep(0.2)
        raise AssertionError(f"expected {count} call records, have {records}")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def terminate(self, timeout: float = 15) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode if self.process else None


@pytest.fixture(autouse=True)
def no_sipp_left_behind() -> Iterator[None]:
    yield
    sipp.kill_leftovers()


@pytest.fixture
async def fresh_asterisk(asterisk: Path) -> AsyncIterator[Path]:
    if not (sandbox.running() and sandbox._ari_ready()):
        sandbox.start()  # a test that stopped it (restart tests) failed before starting it again
    forget_registrations()
    await hang_up_everything()
    yield asterisk
    await hang_up_everything()


@pytest.fixture
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The controller's store: SQLite in its data directory, or, for a test marked `both_engines` (run once
    per engine, tests/conftest.py), a fresh database on the session's PostgreSQL server."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return {}
    server = request.getfixturevalue("postgres")
    return {"CCC_STORE_URL": server.new_database("e2e"), "CCC_STORE_PASSWORD": server.password}


@pytest.fixture
async def controller(fresh_asterisk: Path, tmp_path: Path,
                     store_env: dict[str, str]) -> AsyncIterator[ControllerProcess]:
    process = ControllerProcess(tmp_path / "data", env=store_env)
    await process.start()
    try:
        yield process
    finally:
        process.terminate()
        with contextlib.suppress(OSError):
            print(process.log.read_text(errors="replace")[-4000:])


@contextlib.contextmanager
def running_controller(folder: Path, config: Path) -> Iterator[ControllerProcess]:
    """A controller shared by a module's tests (a module-scoped fixture is synchronous): started, then
    stopped with the tail of its log printed."""
    process = ControllerProcess(folder / "data", config=config)
    asyncio.run(process.start())
    try:
        yield process
    finally:
        process.terminate()
        print(process.log.read_text(errors="replace")[-4000:])


# Two Asterisk nodes (a on 127.0.0.1, b on 127.0.0.2) for tests of several Asterisk servers.
from tests.e2e.nodes import B_ROOT, two_nodes  # noqa: E402,F401


async def pool_state(controller: ControllerProcess) -> dict[str, int]:
    """The pool's figures from /metrics: idle, draining, taken_created, taken_reused."""
    status, text = await controller.api("GET", "/metrics")
    assert status == 200, text
    found = {f"taken_{source}": int(float(n)) for source, n in
             re.findall(r'ccc_talk_bridges_taken_total\{source="([a-z]+)"\} ([0-9.e+]+)', str(text))}
    found |= {state: int(float(n)) for state, n in
              re.findall(r'ccc_talk_bridges\{state="([a-z]+)"\} ([0-9.e+]+)', str(text))}
    return found


async def talk_bridges() -> dict[str, set[str]]:
    return {b["id"]: set(b["channels"]) for b in await ari_get("/bridges") if b["id"].startswith("br-talk-")}


async def pool_settled(controller: ControllerProcess) -> dict[str, Any] | None:
    """Once nothing drains: the pool's figures and the talk bridges, each empty and idle (none leaked)."""
    state = await pool_state(controller)
    bridges = await talk_bridges()
    if state["draining"] or any(bridges.values()) or len(bridges) != state["idle"]:
        return None
    return {"state": state, "idle": set(bridges)}
