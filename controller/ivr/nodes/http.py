from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from controller.ivr import expr
from controller.ivr.flow import Report
from controller.ivr.nodes import Context, Next, Node, Param


def url_component(value: str) -> str:
    """A value made safe for any part of a URL: '&', '=', '/', '?', '#', '%' and '..' cannot change its shape."""
    return quote(value, safe="").replace(".", "%2E")  # "." too: a ".." segment would climb the path


class HttpNode(Node):
    """Ask a back-end (a bill inquiry, a CRM): JSON fields go into variables; failures take `failure`."""

    type = "http"
    params = {
        "url": Param("template", required=True,
                     doc="e.g. http://crm/balance?number={caller}; each value is percent-encoded"),
        "method": Param("enum", default="GET", choices=("GET", "POST", "PUT")),
        "headers": Param("any", default={}),
        "body": Param("any", doc="JSON body; strings may use {variables}"),
        "timeout": Param("number", positive=True, default=5.0),
        "map": Param("any", default={}, doc="variable -> dotted path in the JSON answer"),
        "next": Param("node", required=True),
        "failure": Param("node", required=True, doc="timeout, connection error, non-2xx status, missing field"),
    }

    def check(self, report: Report) -> None:
        mapping = self["map"]
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            report.error(("map",), f"http {self.id!r}: map: expected variable: json.path pairs")
            return
        for name in mapping:
            if not re.fullmatch(r"[^\W\d]\w*", str(name)):
                report.error(("map", str(name), "<key>"), f"http {self.id!r}: {name!r} is not a variable name")
        if not isinstance(self["headers"], dict):
            report.error(("headers",), f"http {self.id!r}: headers: expected a mapping")

    def assigns(self) -> set[str]:
        return {*map(str, self["map"]), "http_status", "http_error"}

    def _fill(self, ctx: Context, value: Any) -> Any:
        if isinstance(value, str):
            return ctx.render(value)
        if isinstance(value, dict):
            return {key: self._fill(ctx, item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._fill(ctx, item) for item in value]
        return value

    async def run(self, ctx: Context) -> Next:
        response = await ctx.port.http_request(
            method=self["method"], url=ctx.render(self["url"], escape=url_component),
            headers={str(k): ctx.render(v) for k, v in self["headers"].items()},
            body=self._fill(ctx, self["body"]), timeout_seconds=self["timeout"])
        ctx.set("http_status", response.status)
        if not 200 <= response.status < 300:
            outcome = "timeout" if response.timed_out else "connection_error" if response.status == 0 else "http_status"
            return self._failed(ctx, outcome, response.status, response.error or f"HTTP {response.status}")
        values = {}
        for name, path in self["map"].items():
            value = expr.lookup(response.json, path) if isinstance(response.json, dict) else None
            if value is None:
                return self._failed(ctx, "bad_answer", response.status, f"the answer has no {path!r}")
            values[name] = value
        for name, value in values.items():
            ctx.set(str(name), value)
        ctx.emit("ivr.http_result", node=self.id, outcome="ok", status=response.status)
        return self["next"]  # type: ignore[no-any-return]

    def _failed(self, ctx: Context, outcome: str, status: int, error: str) -> Next:
        """The back-end failed: the flow takes `failure`; the failure is logged, counted and published
        (`ivr.http_result`, see IvrService)."""
        ctx.set("http_error", error)
        ctx.emit("ivr.http_result", node=self.id, outcome=outcome, status=status, error=error)
        return self["failure"]  # type: ignore[no-any-return]
