from __future__ import annotations

from collections.abc import Iterator

from controller.ivr.flow import Report
from controller.ivr.nodes import Context, Jump, Next, Node, Param


class GotoNode(Node):
    """Go to another node, or into another flow (a subflow) at its start or a node."""

    type = "goto"
    params = {
        "node": Param("node", doc="a node of this flow, or of `flow`"),
        "flow": Param("str", doc="another flow's id"),
    }

    def check(self, report: Report) -> None:
        if not self["node"] and not self["flow"]:
            report.error((), f"goto {self.id!r}: say which node or flow to go to")

    def routes(self) -> Iterator[tuple[tuple[str, ...], str]]:
        if not self["flow"] and self["node"]:
            yield ("node",), str(self["node"])

    def jumps(self) -> Iterator[tuple[tuple[str, ...], str, str | None]]:
        if self["flow"]:
            yield ("flow",), str(self["flow"]), self["node"]

    async def run(self, ctx: Context) -> Next:
        if self["flow"]:
            return Jump(str(self["flow"]), self["node"])
        return str(self["node"])
