from __future__ import annotations

from controller.ivr.nodes import Context, Next, Node, Param
from controller.ivr.port import TransferTarget


class TransferNode(Node):
    """Transfer to an external number through the trunk, or to an extension."""

    type = "transfer"
    waits = True
    params = {
        "to": Param("template", required=True, doc="number or extension; may use {variables}"),
        "kind": Param("enum", default="external", choices=("external", "extension")),
        "timeout": Param("number", positive=True, default=30.0, doc="ring this long"),
        "prompt": Param("prompts", default="正在为您转接，请稍候。"),
        "next": Param("node", doc="after the transferred call ended with the caller still here"),
        "failure": Param("node", doc="no answer, busy or failed (none: the flow ends)"),
    }

    def assigns(self) -> set[str]:
        return {"transfer_result"}

    async def run(self, ctx: Context) -> Next:
        await self.play(ctx, self["prompt"])
        result = await ctx.port.transfer(TransferTarget(self["kind"], ctx.render(self["to"]), self["timeout"]))
        ctx.set("transfer_result", result)
        return (self["next"] if result == "connected_then_ended" else self["failure"])  # type: ignore[no-any-return]
