"""Customer tier look-up (public / key account), used for priority and the screen pop."""

from __future__ import annotations

import logging

import aiohttp

from controller.config import CustomerSettings

log = logging.getLogger("controller.customers")


class CustomerDirectory:
    def __init__(self, settings: CustomerSettings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session

    async def tier_of(self, number: str) -> str:
        """The configured service's answer, or the default tier when it is unset, down or slow."""
        if not self.settings.tier_url or not number:
            return self.settings.default_tier
        url = self.settings.tier_url.replace("{number}", number)
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=self.settings.timeout)) as r:
                if r.status != 200:
                    return self.settings.default_tier
                body = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("customer tier look-up failed (%s); using %s", type(exc).__name__, self.settings.default_tier)
            return self.settings.default_tier
        tier = body.get("tier") if isinstance(body, dict) else None
        return tier if isinstance(tier, str) and tier else self.settings.default_tier
