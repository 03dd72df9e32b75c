from __future__ import annotations

from controller.ivr.nodes import Context, Next, Node, Param
from controller.ivr.nodes._input import ask
from controller.ivr.port import RecordSpec


class SurveyNode(Node):
    """Satisfaction survey after the agent call: a rating 1-5 and an optional spoken comment."""

    type = "survey"
    waits = True
    params = {
        "prompt": Param("prompts", default="请对本次服务评分，非常满意请按5，非常不满意请按1。"),
        "invalid_prompt": Param("prompts", default="请按1到5之间的数字。"),
        "thanks_prompt": Param("prompts", default="感谢您的评价，再见。"),
        "timeout": Param("number", positive=True, default=5.0),
        "retries": Param("int", default=2),
        "comment": Param("bool", default=False, doc="record a spoken comment after the rating"),
        "comment_prompt": Param("prompts", default="请在提示音后留下您的意见，按井号键结束。"),
        "comment_max_seconds": Param("number", positive=True, default=60.0),
        "next": Param("node", doc="none: the flow ends"),
    }

    def assigns(self) -> set[str]:
        return {"survey_score"}

    async def run(self, ctx: Context) -> Next:
        score = None
        for attempt in range(self["retries"]):
            answer = await ask(ctx, self, self["prompt"], timeout=self["timeout"])
            if answer.digits in ("1", "2", "3", "4", "5"):
                score = int(answer.digits)
                break
            if attempt + 1 < self["retries"]:
                await self.play(ctx, self["invalid_prompt"])
        comment = None
        if score is not None and self["comment"]:
            await self.play(ctx, self["comment_prompt"])
            recording = await ctx.port.record(RecordSpec("survey_comment", max_seconds=self["comment_max_seconds"]))
            comment = recording.name if recording.duration > 0 else None
        ctx.set("survey_score", score)
        await ctx.port.save_record("survey", {"score": score, "comment_recording": comment, "flow": ctx.flow_id,
                                              "agent_id": ctx.variables.get("agent_id")})
        ctx.emit("survey.result", node=self.id, rating=score, comment=comment)
        if score is not None:
            await self.play(ctx, self["thanks_prompt"])
        return self["next"]  # type: ignore[no-any-return]
