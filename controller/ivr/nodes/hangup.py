from __future__ import annotations

from controller.ivr.nodes import Context, Next, Node, Param


class HangupNode(Node):
    """End the call, after an optional closing prompt (谢谢您的来电，再见)."""

    type = "hangup"
    params = {"prompt": Param("prompts")}

    def hangs_up_at_once(self) -> bool:
        return not self["prompt"]

    async def run(self, ctx: Context) -> Next:
        await self.play(ctx, self["prompt"])
        ctx.ended = "hangup"
        await ctx.port.hangup()
        return None
