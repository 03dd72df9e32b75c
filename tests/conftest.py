"""Which store engines the tests run on, and the PostgreSQL server they use.

`--store-engines sqlite,postgresql` (or CCC_TEST_ENGINES) chooses; both by default. A test that takes
the `engine` fixture runs once per chosen engine; `store_target(engine)` gives it what `Store()` takes.
An end-to-end test marked `both_engines` runs its controller once per chosen engine (`store_env`, in
tests/e2e/conftest.py); the other end-to-end tests use SQLite, to keep the suite's time.
PostgreSQL is started once per session (tests/pg_server.py) when a chosen test needs it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.store.db import Store
from tests.pg_server import PostgresServer

ENGINES = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--store-engines", default=os.environ.get("CCC_TEST_ENGINES", ",".join(ENGINES)),
                     help="store engines the store's tests run on: sqlite, postgresql or both (default: both)")


def chosen_engines(config: pytest.Config) -> list[str]:
    chosen = [name.strip() for name in str(config.getoption("--store-engines")).split(",") if name.strip()]
    unknown = set(chosen) - set(ENGINES)
    if unknown or not chosen:
        raise pytest.UsageError(f"--store-engines: expected sqlite and/or postgresql, got {sorted(unknown)}")
    return chosen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", chosen_engines(metafunc.config))
    if "store_env" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_engines"):
        metafunc.parametrize("store_env", chosen_engines(metafunc.config), indirect=True)


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use, stopped and removed at the end); the tests
    that need it are skipped when `--store-engines` leaves PostgreSQL out."""
    if "postgresql" not in chosen_engines(request.config):
        pytest.skip("PostgreSQL is not among --store-engines")
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()


@dataclass(frozen=True)
class StoreTarget:
    """What `Store()` takes for one test: a SQLite file or a fresh PostgreSQL database."""

    engine: str
    target: Path | str
    password: str
    spill_dir: Path

    def kwargs(self) -> dict[str, object]:
        return {"password": self.password, "spill_dir": self.spill_dir}

    @classmethod
    def sqlite(cls, folder: Path) -> StoreTarget:
        """SQLite only (a test about something else than the store)."""
        return cls("sqlite", folder / "s.sqlite3", "", folder)


@pytest.fixture
def store_target(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> StoreTarget:
    if engine == "sqlite":
        return StoreTarget.sqlite(tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres")
    return StoreTarget(engine, server.new_database(), server.password, tmp_path)


@pytest.fixture
async def engine_store(store_target: StoreTarget) -> AsyncIterator[Store]:
    """An open store on each chosen engine (no writer task: writes are committed when awaited)."""
    store = Store(store_target.target, password=store_target.password, spill_dir=store_target.spill_dir)
    await store.open()
    yield store
    await store.close(retry_seconds=0)


class SqliteSteps:
    """Counts the SQLite virtual-machine instructions the store's reads and writes take (in hundreds), e.g. to
    tell a lookup by an index from a scan of a table: `with SqliteSteps(store) as steps: ...; steps.count`."""

    EVERY = 100

    def __init__(self, store: Store) -> None:
        self._conn = store._require()
        self.count = 0

    def _step(self) -> int:
        self.count += self.EVERY
        return 0  # (not 0 would interrupt the statement)

    def __enter__(self) -> SqliteSteps:
        self._conn.set_progress_handler(self._step, self.EVERY)
        return self

    def __exit__(self, *exc: object) -> None:
        self._conn.set_progress_handler(None, 0)
