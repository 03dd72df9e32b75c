"""AmiService logs in when an action needs it and closes the link once idle (README "Benchmarks", sixth
session: an idle AMI session costs Asterisk 22.10 a thread wake-up per AMI event). A minimal AMI server here."""

from __future__ import annotations

import asyncio

import pytest

from controller.app import Controller
from controller.ari.errors import AriError
from controller.config import AmiSettings
from controller.plugins.ami import services
from controller.plugins.ami.services import AmiService, AmiUnavailable


class FakeAmi:
    """Answers every action with Success (its ActionID echoed); counts connections and logins."""

    def __init__(self, *, answers: bool = True) -> None:
        self.answers = answers
        self.connections = self.logins = self.open = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        try:
            if not self.answers:
                await reader.read()
                return
            writer.write(b"Asterisk Call Manager/9.0.0\r\n")
            while block := await reader.readuntil(b"\r\n\r\n"):
                fields = dict(line.split(": ", 1) for line in block.decode().strip().split("\r\n"))
                self.logins += fields.get("Action") == "Login"
                writer.write(f"Response: Success\r\nActionID: {fields.get('ActionID', '')}\r\n\r\n".encode())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1

    async def __aenter__(self) -> AmiSettings:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return AmiSettings(host="127.0.0.1", port=port, user="u", secret="s")

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


async def test_actions_log_in_once_and_the_idle_link_closes() -> None:
    fake = FakeAmi()
    async with fake as settings:
        ami = AmiService(settings, action_timeout=2, idle_close=0.2)
        await asyncio.gather(*(ami.action({"Action": "Ping"}) for _ in range(3)))
        assert fake.logins == 1 and ami.connected and fake.open == 1  # one login for the three at once
        await asyncio.sleep(0.4)
        assert not ami.connected and fake.open == 0 and ami.reachable  # closed once idle, still reachable
        await ami.action({"Action": "Ping"})
        assert fake.logins == 2 and ami.connected  # the next action logs in again
        ami.close()


async def test_a_failed_login_is_not_tried_again_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for retry_after, connections in ((services.RETRY_LOGIN_AFTER_SECONDS, 1), (0.0, 2)):
        monkeypatch.setattr(services, "RETRY_LOGIN_AFTER_SECONDS", retry_after)
        fake = FakeAmi(answers=False)  # accepts, never greets nor answers
        async with fake as settings:
            ami = AmiService(settings, action_timeout=0.2)
            for _ in range(2):
                with pytest.raises(AmiUnavailable):
                    await ami.action({"Action": "Ping"})
            await asyncio.sleep(0.05)
            assert fake.connections == connections and not ami.reachable
            assert fake.open == 0  # the failed login's connection is closed, no reconnect left running
            ami.close()


class _Ari:
    def __init__(self, status: int) -> None:
        self.status = status

    async def info(self) -> dict[str, object]:
        raise AriError("GET", "/asterisk/info", self.status, "no answer" if not self.status else "refused")


class _Ami:
    def __init__(self) -> None:
        self.asked = 0

    async def channel_counts(self) -> dict[str, int]:
        self.asked += 1
        return {"active_calls": 0}


async def test_the_status_asks_no_ami_login_of_an_asterisk_that_does_not_answer_ari() -> None:
    for ari_status, asked in ((0, 0), (401, 1)):  # no answer at all; an answer (Asterisk is there)
        ami = _Ami()
        status = await Controller._node_status(_Ari(ari_status), ami)  # type: ignore[arg-type]
        assert status["reachable"] is False and ami.asked == asked
        assert status["channels"] == (None if asked == 0 else {"active_calls": 0})
