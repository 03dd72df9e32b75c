"""One controller per data directory and ARI application.

Two controllers on one data directory would write one SQLite store and fight over one ARI
application: Asterisk gives an application name to the last WebSocket that connects
(`ApplicationReplaced` to the one before), so the calls of the first would be orphaned.

- The data directory: an exclusive `flock` on `<data_dir>/controller.lock`, taken before
  anything else and held for the life of the process. The kernel releases it when the process
  dies, however it dies (SIGKILL included), so a restart never finds a stale lock.
- The ARI application: `GET /ari/applications` cannot tell (it lists an application whose
  WebSocket is gone as long as channels of it are left, in the same shape as a connected one), but
  the CLI's `ari show websocket sessions`, run over AMI, lists the live WebSocket sessions and
  their applications. A controller on another data directory (or host) holding the name is
  found there.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from controller.config import Config
from controller.plugins.ami.services import AmiService, AmiUnavailable, command_output

log = logging.getLogger("controller")

#: Exit status of a controller that refused to start, or stopped, because another one owns its
#: data directory or its ARI application. `make run` and the systemd unit do not restart it.
EXIT_ANOTHER_CONTROLLER = 3

#: How long a session of the ARI application may stay listed before we refuse to start: the
#: session of a process that just died can take a moment to go.
SESSION_GRACE_SECONDS = 3.0


class AnotherController(Exception):
    """Another controller owns this data directory or this ARI application."""


class InstanceLock:
    """The data directory's lock, held while this object lives (and the process runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> InstanceLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AnotherController(
                f"another controller (pid {holder}) is already running on the data directory "
                f"{self.path.parent}; stop it first (one controller per data directory and ARI application)"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the flock
            self._file = None


def sessions_of(app: str, cli_output: list[str]) -> list[str]:
    """The ids of the live WebSocket sessions serving `app`, from `ari show websocket sessions`.

    Rows look like `<id>  inbound  127.0.0.1:46082  Up  ccc[,other]`; the header and the rule
    are skipped because their state column is not `Up`.
    """
    found = []
    for line in cli_output:
        columns = line.split()
        if len(columns) >= 5 and columns[3] == "Up" and app in columns[4].split(","):
            found.append(columns[0])
    return found


async def ensure_application_free(config: Config, grace: float = SESSION_GRACE_SECONDS) -> None:
    """Raise AnotherController when a live WebSocket already serves our ARI application.

    Asks over AMI (the controller's own user, which may run CLI commands). When AMI cannot be
    reached or does not allow it, we cannot tell: log it and go on (the data directory's lock
    still holds, and `ApplicationReplaced` is handled if it comes).
    """
    ami = AmiService(config.ami)
    try:
        await ami.connect()
        deadline = asyncio.get_running_loop().time() + grace
        while True:
            try:
                response = await ami.action({"Action": "Command", "Command": "ari show websocket sessions"})
            except AmiUnavailable as exc:
                log.info("cannot check whether ARI application %s is taken (%s); starting", config.ari.app, exc)
                return
            if response.get("Response") != "Success":  # e.g. the AMI user may not run commands
                log.info("cannot check whether ARI application %s is taken (AMI: %s); starting", config.ari.app,
                         response.get("Message"))
                return
            sessions = sessions_of(config.ari.app, command_output(response))
            if not sessions:
                return
            if asyncio.get_running_loop().time() >= deadline:
                raise AnotherController(
                    f"ARI application {config.ari.app!r} is already served by another process "
                    f"(WebSocket session {sessions[0]}); a second controller would take its calls over. "
                    "Stop the other controller, or give this one another `ari.app`")
            await asyncio.sleep(0.5)
    finally:
        ami.close()
