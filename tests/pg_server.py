"""A real PostgreSQL server for the tests and the bench, from Debian's `postgresql` package.

Started once per test session with its own data directory (a temporary folder) and its own port on
127.0.0.1, as the unprivileged `postgres` user when the tests run as root (the server refuses to run
as root), with password authentication (scram-sha-256) so the store's password setting is what lets
it in. Each test gets a database of its own (`new_database()`). Stopped and removed after the session.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_ROOT = Path("/usr/lib/postgresql")
USER = "ccc"


def pg_bin() -> Path | None:
    """The newest installed server's bin directory, if any."""
    versions = sorted((p for p in PG_ROOT.glob("*/bin/initdb")), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self, *, durable: bool = False) -> None:
        """`durable`: fsync every commit as a production server does (the bench); the tests skip it."""
        bin_dir = pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (make installs Debian's postgresql package)")
        self.bin = bin_dir
        self.durable = durable
        self.port = _free_port()
        self.password = secrets.token_urlsafe(16)
        self.dir = Path(tempfile.mkdtemp(prefix="ccc-pg-"))
        self.data = self.dir / "data"
        self._databases = 0

    def _as_server_user(self, *command: str) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return list(command)

    def _run(self, *command: str) -> None:
        result = subprocess.run(self._as_server_user(*command), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {result.stdout[-2000:]} {result.stderr[-2000:]}")

    def start(self) -> None:
        password_file = self.dir / "password"
        password_file.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(password_file, "postgres", "postgres")
        password_file.chmod(0o600)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", USER, "--auth=scram-sha-256",
                  f"--pwfile={password_file}", "-E", "UTF8", "--no-locale", "--no-sync")
        password_file.unlink()
        self.resume()

    def resume(self) -> None:
        """Start the server (again, after `halt()`: same data, same port)."""
        options = [f"-p {self.port}", "-h 127.0.0.1", f"-k {self.dir}", "-c max_connections=200"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
                  "-o", " ".join(options), "-w", "-t", "60", "start")

    def halt(self) -> None:
        """Stop the server, its clients' connections cut (a database server going down)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """Without the password: it goes to the store on its own (`password`), as in production."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def admin(self, database: str = "postgres") -> object:
        import psycopg

        return psycopg.connect(self.url(database), password=self.password, autocommit=True, connect_timeout=5)

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its URL."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        with self.admin() as conn:  # type: ignore[attr-defined]
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_tail(self) -> str:
        try:
            return (self.dir / "server.log").read_text()[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and remove its data."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.halt()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
