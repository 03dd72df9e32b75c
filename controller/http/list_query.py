"""The query of a list endpoint: a time window (`from`, `to`: epoch seconds) and a page size (`limit`).

    @operation("…", tag="…", query={"agent": {"type": "string"}, **list_query()})
    async def search(request):
        window = list_window(request)   # window.start, window.end, window.limit

`@operation` checks the parameters against these schemas before the handler runs, so `list_window`
only converts what is already known to be valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

#: An instant as epoch seconds (up to the year 5138).
TIME = {"type": "number", "minimum": 0, "maximum": 1e11}


def list_query(*, window: bool = True, limit_max: int = 1000, limit_default: int = 100,
               limit_description: str = "") -> dict[str, dict[str, Any]]:
    """The query parameters' schemas: `from`/`to` (unless `window=False`) and `limit` (1 to `limit_max`)."""
    limit: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": limit_max, "default": limit_default}
    if limit_description:
        limit["description"] = limit_description
    times = {"from": {**TIME, "description": "from this instant (epoch seconds, included)"},
             "to": {**TIME, "description": "until this instant (epoch seconds, excluded)"}} if window else {}
    return {**times, "limit": limit}


@dataclass(frozen=True)
class ListWindow:
    start: float | None  # `from`
    end: float | None  # `to`
    limit: int


def list_window(request: web.Request, *, limit_default: int = 100) -> ListWindow:
    """The request's `from`, `to` and `limit` (checked by `@operation` against `list_query()`)."""
    query = request.query
    return ListWindow(start=float(query["from"]) if "from" in query else None,
                      end=float(query["to"]) if "to" in query else None,
                      limit=int(query.get("limit", limit_default)))
