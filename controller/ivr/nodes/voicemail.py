from __future__ import annotations

from controller.ivr.nodes import Context, Next, Node, Param
from controller.ivr.port import RecordSpec


class VoicemailNode(Node):
    """Record a message after a beep; stored with the call's record."""

    type = "voicemail"
    waits = True
    params = {
        "prompt": Param("prompts", default="请在提示音后留言，按井号键结束。"),
        "max_seconds": Param("number", positive=True, default=120.0),
        "silence_seconds": Param("number", default=5.0, doc="end after this much silence (0: never)"),
        "beep": Param("bool", default=True),
        "done_prompt": Param("prompts", default="您的留言已保存，谢谢。"),
        "queue": Param("template", doc="whose inbox gets the message (README \"Voicemail inbox\"); default: the"
                                       " last queue the call visited, else inbox.default_queue"),
        "next": Param("node", doc="none: the flow ends"),
    }

    def assigns(self) -> set[str]:
        return {"voicemail_recording"}

    async def run(self, ctx: Context) -> Next:
        await self.play(ctx, self["prompt"])
        result = await ctx.port.record(RecordSpec("voicemail", max_seconds=self["max_seconds"],
                                                  silence_seconds=self["silence_seconds"], beep=self["beep"]))
        ctx.set("voicemail_recording", result.name)
        record = {"recording": result.name, "duration": result.duration, "reason": result.reason, "flow": ctx.flow_id}
        if self["queue"]:
            record["queue"] = ctx.render(self["queue"])  # whose inbox (default: the last queue visited)
        await ctx.port.save_record("voicemail", record)
        await self.play(ctx, self["done_prompt"])
        return self["next"]  # type: ignore[no-any-return]
