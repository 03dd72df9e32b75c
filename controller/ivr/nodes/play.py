from __future__ import annotations

from controller.ivr.nodes import Context, Next, Node, Param


class PlayNode(Node):
    """Say something: sound files, text, numbers, digits, money, dates, times, recordings."""

    type = "play"
    params = {
        "prompts": Param("prompts", required=True, doc="what to say, in order"),
        "barge_in": Param("bool", default=False, doc="a key stops the prompt (and answers the next menu)"),
        "next": Param("node", doc="where to go next (none: the flow ends)"),
    }

    async def run(self, ctx: Context) -> Next:
        key = await self.play(ctx, self["prompts"], barge_in=self["barge_in"])
        if key is not None:
            ctx.pending_key = key
        return self["next"]  # type: ignore[no-any-return]
