"""Debian's baresip as a real softphone in the e2e tests (what an agent would run on their desk).

It runs headless with its own configuration directory: registers to the sandbox's Asterisk as
`user` with `password`, answers every call by itself (answermode=auto), sends a 440 Hz tone
(`ausine`) and plays nothing. The test drives it and watches it through the `ctrl_tcp` module:
JSON messages framed as netstrings, commands answered with `{"response": true, ...}`, and events
(`REGISTER_OK`, `CALL_INCOMING`, `CALL_ESTABLISHED`, `CALL_CLOSED`, ...) pushed as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

BARESIP = shutil.which("baresip") or "baresip"
MODULES = Path("/usr/lib/baresip/modules")


def _free_port(address: str, kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


class Softphone:
    """One baresip process with one account; `await start()`, then `await wait_registered()`."""

    def __init__(self, user: str, password: str, *, server: str = "127.0.0.1:5060",
                 address: str = "127.0.0.1") -> None:
        self.user = user
        self.password = password
        self.server = server
        self.address = address
        self.directory = Path(tempfile.mkdtemp(prefix="ccc-baresip-"))
        self.sip_port = _free_port(address, socket.SOCK_DGRAM)
        self.ctrl_port = _free_port("127.0.0.1", socket.SOCK_STREAM)
        self.events: list[dict[str, Any]] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._listener: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._responses: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tokens = itertools.count(1)

    def _write_configuration(self) -> None:
        host = self.server.split(":")[0]
        (self.directory / "accounts").write_text(
            f"<sip:{self.user}@{host}>;auth_pass={self.password};outbound=\"sip:{self.server}\";"
            "answermode=auto;regint=60\n")
        (self.directory / "config").write_text("\n".join([
            "poll_method epoll",
            f"sip_listen {self.address}:{self.sip_port}",
            "sip_trans_def udp",
            f"net_interface {self.address}",
            "audio_source ausine,440",
            "ausrc_srate 48000",  # ausine makes 48 kHz stereo; baresip resamples to the codec
            "ausrc_channels 2",
            f"module_path {MODULES}",
            "module g711.so",
            "module ausine.so",
            "module_app account.so",
            "module_app menu.so",  # answermode=auto
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            "",
        ]))

    async def start(self, timeout: float = 10) -> None:
        self._write_configuration()
        log = (self.directory / "baresip.log").open("wb")
        self.process = await asyncio.create_subprocess_exec(
            BARESIP, "-f", str(self.directory), stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=asyncio.subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
                break
            except OSError:
                if time.monotonic() > deadline or self.process.returncode is not None:
                    raise AssertionError(f"baresip did not start: {self.log()}") from None
                await asyncio.sleep(0.1)
        self._listener = asyncio.create_task(self._listen())

    def log(self) -> str:
        with contextlib.suppress(OSError):
            text = (self.directory / "baresip.log").read_text(errors="replace")
            return "\n".join(line for line in text.splitlines() if line.strip() and "audio=" not in line)[-3000:]
        return ""

    async def _listen(self) -> None:
        assert self._reader is not None
        while True:
            try:
                length = int((await self._reader.readuntil(b":"))[:-1])
                message = json.loads((await self._reader.readexactly(length + 1))[:-1])
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                return
            if message.get("response"):
                future = self._responses.pop(str(message.get("token")), None)
                if future is not None and not future.done():
                    future.set_result(message)
            elif message.get("event"):
                self.events.append(message)
                self._changed.set()

    async def command(self, command: str, params: str = "", timeout: float = 5) -> dict[str, Any]:
        """Run a baresip command (`reginfo`, `hangup`, `dial NUMBER`, ...) and return its answer."""
        assert self._writer is not None
        token = str(next(self._tokens))
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._responses[token] = future
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._writer.write(b"%d:%s," % (len(body), body))
        await self._writer.drain()
        async with asyncio.timeout(timeout):
            return await future

    async def wait_registered(self, timeout: float = 15) -> str:
        """Poll `reginfo` until the account shows OK (it registers before the control link is
        up, so its REGISTER_OK event cannot be relied on); returns the registration line."""
        deadline = time.monotonic() + timeout
        while True:
            info = re.sub(r"\x1b\[[0-9;]*m", "", (await self.command("reginfo")).get("data", ""))
            line = next((row for row in info.splitlines() if f"sip:{self.user}@" in row), "")
            if " OK " in line:
                return line.strip()
            if time.monotonic() > deadline:
                raise AssertionError(f"baresip not registered: {info!r}; log {self.log()}")
            await asyncio.sleep(0.2)

    def seen(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == event_type]

    async def wait_for(self, event_type: str, timeout: float = 15) -> dict[str, Any]:
        """The first event of that type (already seen or still to come)."""
        deadline = time.monotonic() + timeout
        while not self.seen(event_type):
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"baresip never reported {event_type}; events {self.events}; log {self.log()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.seen(event_type)[0]

    async def stop(self) -> None:
        """Unregister and quit (killed if it does not), then remove its files."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(OSError, TimeoutError, AssertionError):
                await self.command("quit", timeout=2)
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._writer is not None:
            self._writer.close()
        if self._listener is not None:
            self._listener.cancel()
        shutil.rmtree(self.directory, ignore_errors=True)
