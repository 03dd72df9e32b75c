"""The configuration as it is NOW: the file's settings with the managed sections (README "Administration
(live configuration)") as the database holds them, replaced whole on each change.

Services that decide from managed data (agents, queues, reasons, DIDs, webhooks, standards, prompts) read
`live.current` when they decide, or subscribe and rebuild what they derive from it. A `Config` is frozen,
so a reader always sees one consistent version, never half of a change.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from controller.config import Config

log = logging.getLogger("controller.config")

#: Called with (old, new) after `current` became `new`.
Subscriber = Callable[[Config, Config], Awaitable[None] | None]


class LiveConfig:
    def __init__(self, config: Config) -> None:
        self.current = config
        self._subscribers: list[tuple[str, Subscriber]] = []
        #: Held by whoever derives a new Config from `current` until it has replaced it (the admin service, a
        #: reload), so that two changes never start from the same `current` and one undo the other.
        #: `replace()` does not take it.
        self.lock = asyncio.Lock()

    def subscribe(self, name: str, on_change: Subscriber) -> None:
        """Call `on_change(old, new)` after each replacement, in the order of subscription. `name` says who
        it is in the log when it fails."""
        self._subscribers.append((name, on_change))

    async def replace(self, new: Config) -> None:
        """Make `new` current, then tell every subscriber. One that raises is logged and does not keep the
        others from being told (what it derives stays as it was: its owner's log line says so)."""
        old, self.current = self.current, new
        for name, on_change in list(self._subscribers):
            try:
                result = on_change(old, new)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("live configuration: %s failed to apply the change; the others applied it", name)
