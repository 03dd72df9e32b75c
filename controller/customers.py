"""Customer tier look-up (public / key account), used for priority and the screen pop."""

from __future__ import annotations

import logging
import re
from urllib.parse import quote

import aiohttp

from controller.config import CustomerSettings
from controller.lookup import is_phone_number

log = logging.getLogger("controller.customers")
_TIER = re.compile(r"[\w.-]{1,40}")  # a name ("vip", "key_account"): no spaces, no control characters


class CustomerDirectory:
    def __init__(self, settings: CustomerSettings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session

    async def tier_of(self, number: str) -> str:
        """The configured service's answer, or the default tier when it is unset, down or slow.

        A caller id that is not a phone number is never sent: it may carry '&', '/' or '..'."""
        if not self.settings.tier_url or not is_phone_number(number):
            return self.settings.default_tier
        url = self.settings.tier_url.replace("{number}", quote(number, safe=""))
        try:
            async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=self.settings.timeout)) as r:
                if r.status != 200:
                    return self.settings.default_tier
                body = await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("customer tier look-up failed (%s); using %s", type(exc).__name__, self.settings.default_tier)
            return self.settings.default_tier
        tier = body.get("tier") if isinstance(body, dict) else None
        if isinstance(tier, str) and _TIER.fullmatch(tier):
            return tier
        log.warning("customer tier look-up: the answer has no usable tier; using %s", self.settings.default_tier)
        return self.settings.default_tier
