"""Customer tier look-up against a real local HTTP server that records the exact request."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from controller.config import CustomerSettings
from controller.customers import CustomerDirectory


@pytest.fixture
async def crm() -> AsyncIterator[tuple[str, list[str]]]:
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response({"tier": "vip"})

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_tier_url_gets_only_valid_numbers_percent_encoded(crm: tuple[str, list[str]]) -> None:
    base, seen = crm
    settings = CustomerSettings(tier_url=base + "/customers/{number}?number={number}", default_tier="regular")
    async with aiohttp.ClientSession() as http:
        directory = CustomerDirectory(settings, http)
        assert await directory.tier_of("+8613800138000") == "vip"
        # Not phone numbers: never sent, the default tier answers.
        for caller in ("x&admin=1", "../../internal/keys", "8001\n", "", "anonymous"):
            assert await directory.tier_of(caller) == "regular", caller
    assert seen == ["/customers/%2B8613800138000?number=%2B8613800138000"]
