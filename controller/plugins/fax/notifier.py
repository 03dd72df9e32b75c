"""The fax CTI events (declared in plugins/cti/events.yml). No numbers: readers fetch the item or the fax."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Publish = Callable[..., Any]


class FaxNotifier:
    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    def received(self, item: dict[str, Any], pages: int) -> None:
        self._publish("fax.new", call_id=item["call_id"], agent_id=item["agent_id"], queue=item["queue"],
                      item_id=item["id"], pages=pages)

    def ended(self, fax: dict[str, Any], *, sent: bool, pages_sent: int | None, error: str | None) -> None:
        if sent:
            self._publish("fax.sent", fax_id=fax["id"], pages=pages_sent)
        else:
            self._publish("fax.failed", fax_id=fax["id"], pages=pages_sent, error=error)
