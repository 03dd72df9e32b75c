"""The two database engines behind the store: SQLite (embedded, the default) and PostgreSQL (production).

The store (`controller.store.db`) drives either one the same way, from its single worker thread:
BEGIN, the batch's statements, COMMIT; reads in between. The SQL is written once, with `?`
placeholders, in the subset both engines share (`INSERT ... ON CONFLICT`, `string_agg`, `COALESCE`,
`CASE`, ...); what differs is here:
- the connection, its settings and timeouts, and how migrations are counted (SQLite's `PRAGMA
  user_version`, PostgreSQL's `schema_version` table under an advisory lock, so two controllers
  sharing the database never migrate it at the same time);
- `?` becomes `$1, $2, ...` and the migrations' type names become PostgreSQL's (`INTEGER PRIMARY
  KEY` an identity column, `INTEGER` BIGINT, `REAL` DOUBLE PRECISION, `BLOB` BYTEA), so one schema
  serves both;
- the few expressions with no common spelling (reading a JSON text column): `Dialect`;
- which errors say "the database cannot be used now, retry" rather than "this statement is wrong".

psycopg 3 is used synchronously in the store's thread (like sqlite3), so both engines share the
store's batching, retry and spill code; libpq's timeouts bound every network call.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("controller.store")

Params = Sequence[Any] | dict[str, Any]

#: SQLite result codes (primary, `errorcode & 0xff`) that say the database cannot be used now,
#: not that the statement is wrong: BUSY, LOCKED, NOMEM, READONLY, INTERRUPT, IOERR, CORRUPT,
#: FULL, CANTOPEN, PROTOCOL. A batch failing with one of these is kept and retried.
SQLITE_ENVIRONMENT_ERRORS = frozenset({5, 6, 7, 8, 9, 10, 11, 13, 14, 15})
#: PostgreSQL SQLSTATE classes that say the same: connection (08), transaction rollback (40: serialization,
#: deadlock), insufficient resources (53: disk full, out of memory), object not in prerequisite state
#: (55: lock not available), operator intervention (57: shutdown, statement timeout), system error (58:
#: I/O), internal error (XX), invalid transaction state (25: e.g. a read-only standby).
PG_ENVIRONMENT_CLASSES = frozenset({"08", "25", "40", "53", "55", "57", "58", "XX"})
#: ... and single SQLSTATEs outside those classes: no privilege on a table (an operator fixes it, like
#: SQLite's read-only file). A statement cancelled by `statement_timeout` (57014) is retried too: on a
#: busy server the next try succeeds.
PG_ENVIRONMENT_STATES = frozenset({"42501"})
#: Serialises schema migrations between controllers sharing one PostgreSQL database ("ccc-schema").
PG_MIGRATION_LOCK = 0x6363632D736368


class OpenFailed(OSError):
    """At open: the database cannot be opened or migrated (the store says so as StoreNotWritable)."""


class Row(Protocol):
    """A result row: by position (`row[0]`), by column name (`row["seq"]`), `dict(row)`."""

    def __getitem__(self, key: Any, /) -> Any: ...

    def keys(self) -> list[str]: ...


class Dialect:
    """SQL fragments with no spelling common to both engines (SQLite's is the default)."""

    name = "sqlite"
    #: `string_agg(value, separator)`: SQLite's built-in before 3.44 is group_concat (the same, in C; a Python
    #: aggregate is registered under the standard name for older SQLite, but runs Python for each row).
    string_agg = "group_concat"

    def json_text(self, column: str, key: str) -> str:
        """The text of a top-level key of a JSON object stored in a TEXT column."""
        return f"json_extract({column}, '$.{_plain_key(key)}')"

    def json_array_has(self, column: str) -> str:
        """A condition: the JSON array stored in a TEXT column holds the string given as the next `?`."""
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = ?)"


class PostgresDialect(Dialect):
    name = "postgresql"
    string_agg = "string_agg"

    def json_text(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{_plain_key(key)}')"

    def json_array_has(self, column: str) -> str:
        return f"EXISTS (SELECT 1 FROM jsonb_array_elements_text({column}::jsonb) AS item(value) WHERE value = ?)"


def _plain_key(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ValueError(f"not a plain JSON key: {key!r}")
    return key


class Engine(Protocol):
    """What the store needs of a database; every method runs in the store's worker thread."""

    dialect: Dialect

    def open(self, migrations: Sequence[str]) -> None: ...
    #: `execute_all` sends the batch in one go (a network round trip saved per statement).
    pipelines: bool

    def begin(self) -> None: ...
    def execute_all(self, statements: Sequence[tuple[str, Params]]) -> None: ...
    def commit(self) -> None: ...
    def commit_uncertain(self) -> bool: ...
    def commit_landed(self) -> bool: ...
    def rollback(self) -> None: ...
    def execute(self, sql: str, params: Params) -> None: ...
    def executor(self) -> Callable[[str, Params], object]: ...
    def query(self, sql: str, params: Params) -> list[Row]: ...
    def in_transaction(self) -> bool: ...
    def transaction_failed(self) -> bool: ...
    def is_environment_error(self, exc: BaseException, /) -> bool: ...
    def close(self) -> None: ...


# -- SQLite -----------------------------------------------------------------------------------------


class SqliteEngine:
    dialect: Dialect = Dialect()
    pipelines = False  # statements run in-process: nothing to save

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def open(self, migrations: Sequence[str]) -> None:
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            if sqlite3.sqlite_version_info < (3, 44):  # string_agg() came with 3.44; PostgreSQL has it
                conn.create_aggregate("string_agg", 2, _StringAgg)  # type: ignore[arg-type]
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=5000")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(migrations[version:], start=version + 1):
                conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
                log.info("store schema migrated to version %d", number)
        except sqlite3.Error as exc:
            raise OpenFailed(f"cannot open the store {self.path}: {exc}") from exc
        self.conn = conn

    def _require(self) -> sqlite3.Connection:
        if self.conn is None:
            raise RuntimeError("store is not open")
        return self.conn

    def begin(self) -> None:
        self._require().execute("BEGIN")

    def execute_all(self, statements: Sequence[tuple[str, Params]]) -> None:
        for sql, params in statements:
            self.execute(sql, params)

    def commit(self) -> None:
        self._require().execute("COMMIT")

    def commit_uncertain(self) -> bool:
        """A local file: a failed COMMIT did not happen."""
        return False

    def commit_landed(self) -> bool:
        return False

    def rollback(self) -> None:
        self._require().execute("ROLLBACK")

    def execute(self, sql: str, params: Params) -> None:
        self._require().execute(sql, params)

    def executor(self) -> Callable[[str, Params], object]:
        """Runs one statement of a batch: one cursor for all of them (`execute` makes one per statement)."""
        return self._require().cursor().execute

    def query(self, sql: str, params: Params) -> list[Row]:
        return list(self._require().execute(sql, params).fetchall())

    def in_transaction(self) -> bool:
        return self.conn is not None and self.conn.in_transaction

    def transaction_failed(self) -> bool:
        """SQLite ends the transaction itself on some errors (then the rest of the batch is done again)."""
        return not self._require().in_transaction

    @staticmethod
    def is_environment_error(exc: BaseException) -> bool:
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in SQLITE_ENVIRONMENT_ERRORS

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()


class _StringAgg:
    """`string_agg(value, separator)` for SQLite before 3.44."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.separator = ","

    def step(self, value: Any, separator: str) -> None:
        if value is not None:
            self.parts.append(str(value))
            self.separator = separator

    def finalize(self) -> str | None:
        return self.separator.join(self.parts) if self.parts else None


# -- PostgreSQL -------------------------------------------------------------------------------------


class PgRow:
    """A PostgreSQL result row that reads like `sqlite3.Row`."""

    __slots__ = ("_index", "_names", "_values")

    def __init__(self, values: tuple[Any, ...], names: list[str], index: dict[str, int]) -> None:
        self._values = values
        self._names = names
        self._index = index

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                raise IndexError(f"no column named {key!r}") from None
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._names)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PgRow) and self._values == other._values and self._names == other._names

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._names, self._values, strict=True))!r})"


def _pg_row_factory(cursor: Any) -> Any:
    names = [column.name for column in cursor.description or ()]
    index: dict[str, int] = {}
    for position, name in enumerate(names):
        index.setdefault(name, position)  # the first of two same-named columns, as sqlite3.Row

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(tuple(values), names, index)

    return make


#: What the placeholder and type rewriting must leave alone: string literals, quoted names, comments.
_LITERALS = r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/"
_PLACEHOLDERS = re.compile(rf"{_LITERALS}|\?", re.S)
_TYPES = re.compile(rf"{_LITERALS}|\bINTEGER\s+PRIMARY\s+KEY(?:\s+AUTOINCREMENT)?\b|\bINTEGER\b|\bREAL\b|\bBLOB\b",
                    re.S | re.I)
_DDL = re.compile(r"\s*(CREATE|ALTER)\b", re.I)


@functools.lru_cache(maxsize=2048)
def to_postgresql(sql: str) -> str:
    """`sql` as PostgreSQL takes it: `?` numbered `$1, $2, ...`; in CREATE and ALTER statements (the
    migrations, the compat tables) SQLite's type names become PostgreSQL's and comments are dropped."""
    if _DDL.match(sql):
        sql = _TYPES.sub(_pg_type, sql)
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() != "?":
            return match.group()
        count += 1
        return f"${count}"

    return _PLACEHOLDERS.sub(number, sql)


def _pg_type(match: re.Match[str]) -> str:
    word = match.group()
    upper = " ".join(word.upper().split())
    if upper.startswith("--") or upper.startswith("/*"):
        return ""
    if word[0] in "'\"":
        return word
    if upper.startswith("INTEGER PRIMARY KEY"):
        return "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
    return {"INTEGER": "BIGINT", "REAL": "DOUBLE PRECISION", "BLOB": "BYTEA"}[upper]


class PostgresEngine:
    """One connection (autocommit; the store sends BEGIN/COMMIT itself), opened again after it broke."""

    dialect: Dialect = PostgresDialect()
    pipelines = True

    def __init__(self, url: str, *, password: str = "", connect_timeout: float = 5.0,
                 statement_timeout: float = 30.0, application_name: str = "ccc-controller") -> None:
        self.url = url
        self.application_name = application_name  # a new leader ends a deposed one's sessions by it
        self.password = password
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.conn: psycopg.Connection[Any] | None = None
        self._committing_xid: str | None = None  # the transaction a broken COMMIT was for

    @property
    def where(self) -> str:
        """The server and database, for messages (never the password)."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            info = conninfo_to_dict(self.url)
        except Exception:
            return "the configured PostgreSQL server"
        return f"postgresql {info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        # libpq's timeouts bound every network call: connecting, each statement on the server, and a
        # peer that stops answering (TCP keepalives and the user timeout notice a cut-off host). The
        # URL's own `options` (e.g. a search_path) are kept, ours added after them.
        timeout_ms = int(self.statement_timeout * 1000)
        own_options = str(conninfo_to_dict(self.url).get("options", ""))
        settings: dict[str, Any] = {
            "connect_timeout": max(1, math.ceil(self.connect_timeout)),
            "options": f"{own_options} -c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}"
                       f" -c idle_in_transaction_session_timeout={timeout_ms * 2}".strip(),
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
            "tcp_user_timeout": timeout_ms,
            "application_name": self.application_name,
        }
        if self.password:
            settings["password"] = self.password
        conn = psycopg.connect(self.url, autocommit=True, cursor_factory=psycopg.RawCursor,
                               row_factory=_pg_row_factory, **settings)
        conn.adapters.register_dumper(bool, _bool_as_integer())  # True is 1, as SQLite stores it
        return conn

    def open(self, migrations: Sequence[str]) -> None:
        import psycopg

        try:
            conn = self._connect()
            with conn.transaction():
                # A migration on a big table, or waiting for another controller's, takes what it takes.
                conn.execute("SET LOCAL statement_timeout = 0")
                conn.execute("SET LOCAL lock_timeout = 0")
                free = conn.execute("SELECT pg_try_advisory_xact_lock($1)", (PG_MIGRATION_LOCK,)).fetchone()
                if not (free and free[0]):
                    log.warning("store: waiting for another controller to finish migrating the schema of %s "
                                "(it holds PostgreSQL's advisory lock %d)", self.where, PG_MIGRATION_LOCK)
                    conn.execute("SELECT pg_advisory_xact_lock($1)", (PG_MIGRATION_LOCK,))
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
                row = conn.execute("SELECT version FROM schema_version").fetchone()
                version = int(row[0]) if row else 0
                if row is None:
                    conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                if version < len(migrations):
                    log.info("store: migrating the schema from version %d to %d", version, len(migrations))
                for number, script in enumerate(migrations[version:], start=version + 1):
                    for statement in split_statements(script):
                        conn.execute(to_postgresql(statement))
                    conn.execute("UPDATE schema_version SET version = $1", (number,))
                    log.info("store schema migrated to version %d", number)
        except psycopg.Error as exc:
            raise OpenFailed(f"cannot open the store ({self.where}): {exc}") from exc
        self.conn = conn

    def _require(self) -> psycopg.Connection[Any]:
        """The connection, opened again when it broke (a failure here is retried like a failed commit)."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            if self.conn is not None:
                with contextlib.suppress(Exception):
                    self.conn.close()
                self.conn = None
                log.warning("store: reconnecting to %s", self.where)
            self.conn = self._connect()
        return self.conn

    def begin(self) -> None:
        self._require().execute("BEGIN")

    def execute_all(self, statements: Sequence[tuple[str, Params]]) -> None:
        """The statements in one pipeline (libpq's pipeline mode): sent together, answered together. The
        first error is raised (the ones after it did not run)."""
        conn = self._require()
        with conn.pipeline():
            for sql, params in statements:
                conn.execute(to_postgresql(sql), _sequence(params))

    def commit(self) -> None:
        """COMMIT, noting the transaction's id first: when the connection breaks during COMMIT, whether it
        happened is asked of the server afterwards (`commit_landed`), so the batch is neither lost nor
        written twice."""
        conn = self._require()
        row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        self._committing_xid = str(row[0]) if row else None
        conn.execute("COMMIT")
        self._committing_xid = None

    def commit_uncertain(self) -> bool:
        """The last COMMIT failed with the connection: the server may have committed it."""
        return self._committing_xid is not None and (self.conn is None or self.conn.closed or self.conn.broken)

    def commit_landed(self) -> bool:
        """Whether the uncertain COMMIT happened (asked on a new connection); raises a retryable error while
        the server cannot answer or the transaction is still being committed."""
        import psycopg

        xid = self._committing_xid
        if xid is None:
            return False
        row = self._require().execute("SELECT pg_xact_status($1::xid8)", (xid,)).fetchone()
        status = row[0] if row else None
        if status == "in progress":
            raise psycopg.OperationalError("the server is still committing the last batch")
        self._committing_xid = None
        log.warning("store: the connection broke during a commit; the server says it %s",
                    "happened" if status == "committed" else "did not happen")
        return status == "committed"

    def rollback(self) -> None:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            self.conn.execute("ROLLBACK")

    def execute(self, sql: str, params: Params) -> None:
        self._require().execute(to_postgresql(sql), _sequence(params))

    def executor(self) -> Callable[[str, Params], object]:
        return self.execute

    def query(self, sql: str, params: Params) -> list[Row]:
        return list(self._require().execute(to_postgresql(sql), _sequence(params)).fetchall())

    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return (self.conn is not None and not self.conn.closed
                and self.conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR))

    def transaction_failed(self) -> bool:
        """A failed statement aborts PostgreSQL's transaction: the rest of the batch is done again."""
        from psycopg.pq import TransactionStatus

        return self.conn is None or self.conn.info.transaction_status != TransactionStatus.INTRANS

    def is_environment_error(self, exc: BaseException) -> bool:
        import psycopg

        if not isinstance(exc, psycopg.Error):
            return isinstance(exc, OSError)
        state = exc.sqlstate
        if state is None:  # no answer from the server: the connection failed or was closed
            return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return state[:2] in PG_ENVIRONMENT_CLASSES or state in PG_ENVIRONMENT_STATES

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            conn.close()


def _sequence(params: Any) -> Sequence[Any]:
    if isinstance(params, dict):
        raise TypeError("named parameters are not supported: use ? placeholders")
    return params  # type: ignore[no-any-return]


def split_statements(script: str) -> list[str]:
    """A migration script's statements (split on `;` outside literals and comments)."""
    statements: list[str] = []
    current: list[str] = []
    for match in re.finditer(rf"{_LITERALS}|;|[^'\";-]+|.", script, re.S):
        if match.group() == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(match.group())
    statements.append("".join(current))
    return [s for s in statements if re.sub(r"--[^\n]*", "", s).strip()]


@functools.cache
def _bool_as_integer() -> Any:
    """A psycopg dumper writing True as 1 (imported on first use: SQLite sites need not have psycopg)."""
    from psycopg.types.numeric import IntDumper

    class BoolAsInteger(IntDumper):
        def dump(self, obj: Any) -> bytes:
            return b"1" if obj else b"0"

    return BoolAsInteger


def upsert(table: str, columns: Sequence[str], key: Sequence[str], *, clear: Sequence[str] = ()) -> str:
    """`INSERT ... ON CONFLICT (key) DO UPDATE` (both engines' spelling of SQLite's INSERT OR REPLACE): the
    row's `columns` from `?` placeholders; on a conflict the other columns keep their values except those
    in `clear`, set to NULL (what REPLACE's delete-and-insert would have done to them)."""
    quoted = [f'"{c}"' if c in _RESERVED else c for c in columns]
    updates = [f"{q} = excluded.{q}" for c, q in zip(columns, quoted, strict=True) if c not in key]
    updates += [f"{c} = NULL" for c in clear]
    action = f"DO UPDATE SET {', '.join(updates)}" if updates else "DO NOTHING"
    return (f"INSERT INTO {table} ({', '.join(quoted)}) VALUES ({', '.join('?' * len(columns))})"
            f" ON CONFLICT ({', '.join(key)}) {action}")


_RESERVED = frozenset({"end", "user", "order", "group", "time"})


def engine_for(target: Path | str, *, password: str = "", connect_timeout: float = 5.0,
               statement_timeout: float = 30.0,
               application_name: str = "ccc-controller") -> SqliteEngine | PostgresEngine:
    """The engine for a SQLite path or a `postgresql://` URL."""
    text = os.fspath(target)
    if text.startswith(("postgresql://", "postgres://")):
        return PostgresEngine(text, password=password, connect_timeout=connect_timeout,
                              statement_timeout=statement_timeout, application_name=application_name)
    return SqliteEngine(Path(text))


def is_url(target: Path | str) -> bool:
    return os.fspath(target).startswith(("postgresql://", "postgres://"))
