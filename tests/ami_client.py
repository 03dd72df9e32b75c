"""A minimal AMI client, as wallboards and scripts speak it: login, actions, events (for the tests)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools


class Ami:
    """One AMI connection: `action()` sends and returns the response; other messages are events."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5038) -> None:
        self.host, self.port = host, port
        self.banner = ""
        self.events: list[dict[str, str]] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ids = itertools.count(1)
        self._responses: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._pump: asyncio.Task[None] | None = None
        self._new_event = asyncio.Event()

    async def open(self, timeout: float = 5.0) -> None:
        """Connect and read the banner, without logging in."""
        async with asyncio.timeout(timeout):
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self.banner = (await self._reader.readline()).decode().strip()
        self._pump = asyncio.create_task(self._read())

    async def connect(self, username: str, secret: str, timeout: float = 5.0) -> dict[str, str]:
        await self.open(timeout)
        return await self.action("Login", Username=username, Secret=secret)

    async def action(self, name: str, timeout: float = 5.0, **fields: str) -> dict[str, str]:
        assert self._writer is not None
        action_id = f"t{next(self._ids)}"
        future: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._responses[action_id] = future
        lines = [f"Action: {name}", f"ActionID: {action_id}", *(f"{k}: {v}" for k, v in fields.items())]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self._writer.drain()
        async with asyncio.timeout(timeout):
            return await future

    async def wait_for(self, predicate: object, timeout: float = 10.0) -> dict[str, str]:
        """The first event (seen so far or coming) for which predicate(event) is true."""
        assert callable(predicate)
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self._new_event.clear()
                await self._new_event.wait()

    async def _read(self) -> None:
        assert self._reader is not None
        message: dict[str, str] = {}
        while line := await self._reader.readline():
            text = line.decode(errors="replace").rstrip("\r\n")
            if text:
                key, _, value = text.partition(":")
                message[key.strip()] = value.strip()
                continue
            if "Response" in message and message.get("ActionID") in self._responses:
                future = self._responses.pop(message["ActionID"])
                if not future.done():
                    future.set_result(message)
            elif message:
                self.events.append(message)
                self._new_event.set()
            message = {}

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
