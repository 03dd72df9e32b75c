"""FastAGI server limits on a real local socket: the connection cap, the bounded /ivr wait, and the
last line of defence against control characters in any value sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

import pytest

from controller.plugins.agi.server import AgiRequest, AgiValueError, FastAgiServer
from controller.plugins.agi.services import AgiService


async def tier_of(number: str) -> str:
    return "regular"


@contextlib.asynccontextmanager
async def serving(server: FastAgiServer) -> AsyncIterator[int]:
    listener = await server.serve("127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1]
    finally:
        listener.close()


async def open_request(port: int, script: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"agi_network: yes\nagi_network_script: {script}\nagi_uniqueid: 1.1\n\n".encode())
    await writer.drain()
    return reader, writer


def service(handover_timeout: float = 60.0) -> AgiService:
    return AgiService(app_name="ccc", flow_for_did=lambda did: "hotline", flow_exists=lambda flow: flow == "hotline",
                      tier_of=tier_of, connected=lambda: True, handover_timeout=handover_timeout)


async def test_connections_above_the_cap_are_closed_unread() -> None:
    server = FastAgiServer(max_connections=1)
    service().install(server)
    async with serving(server) as port:
        held_reader, held_writer = await open_request(port, "ivr?flow=hotline&did=4008001234")
        assert await held_reader.readline() == b"EXEC Stasis ccc,4008001234,flow=hotline\n"  # held: a live call
        second_reader, second_writer = await open_request(port, "route?did=4008001234")
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(second_reader.read(), 5) == b""
        assert server.rejected == 1 and server.connections == 1
        held_writer.close()
        second_writer.close()
        await asyncio.sleep(0.1)
        # The slot is free again once the held call is gone.
        reader, writer = await open_request(port, "route?did=4008001234")
        assert await reader.readline() == b'SET VARIABLE CCC_DID "4008001234"\n'
        writer.close()


async def test_the_ivr_hand_over_wait_is_bounded() -> None:
    server = FastAgiServer()
    service(handover_timeout=0.3).install(server)
    async with serving(server) as port:
        reader, writer = await open_request(port, "ivr?flow=hotline&did=4008001234")
        assert await reader.readline() == b"EXEC Stasis ccc,4008001234,flow=hotline\n"
        # Asterisk never answers: the controller gives up after handover_timeout and closes.
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


class SilentRequest:
    headers: ClassVar[dict[str, str]] = {}

    async def send_command(self, command: str) -> dict[str, str]:
        raise AssertionError(f"must not be sent: {command!r}")


@pytest.mark.parametrize("value", ["vip\nEXEC Goto(evil,s,1)", "a\rb", "nul\x00", "del\x7f"])
async def test_no_value_with_a_control_character_is_ever_sent(value: str) -> None:
    agi = AgiRequest(SilentRequest(), "lookup", {}, 1.0)  # type: ignore[arg-type]
    with pytest.raises(AgiValueError):
        await agi.set_variable("CCC_TIER", value)
    with pytest.raises(AgiValueError):
        await agi.command(f"EXEC Stasis ccc,{value}")
    with pytest.raises(AgiValueError):
        await agi.set_variable("CCC_TIER\nEXEC", "vip")


async def test_lookup_refuses_a_number_that_is_not_a_phone_number() -> None:
    server = FastAgiServer()
    service().install(server)
    async with serving(server) as port:
        reader, writer = await open_request(port, "lookup?number=x%26admin%3D1")
        lines = []
        while line := await asyncio.wait_for(reader.readline(), 5):
            lines.append(line)
            writer.write(b"200 result=1\n")
            await writer.drain()
        writer.close()
    assert lines == [b'SET VARIABLE CCC_STATUS "FAILED"\n', b'SET VARIABLE CCC_ERROR "not a phone number"\n']
