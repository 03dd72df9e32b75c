from __future__ import annotations

from controller.ivr.flow import Report
from controller.ivr.nodes import Context, Next, Node, Param
from controller.ivr.nodes._input import SENSITIVE, ask, collected


class MenuNode(Node):
    """Press a key: a prompt, options, timeout and retries, then a default route."""

    type = "menu"
    waits = True
    params = {
        "prompt": Param("prompts", required=True),
        "options": Param("routes", required=True, doc="key -> node"),
        "timeout": Param("number", positive=True, default=5.0, doc="seconds to wait for a key"),
        "retries": Param("int", default=3, doc="attempts before the default route"),
        "invalid_prompt": Param("prompts", default="输入有误，请重新输入。"),
        "timeout_prompt": Param("prompts", default="您没有输入。"),
        "default": Param("node", required=True, doc="after the last failed attempt"),
        "variable": Param("str", doc="store the key pressed in this variable"),
        "sensitive": SENSITIVE,
    }

    def check(self, report: Report) -> None:
        for key in self["options"]:
            if len(str(key)) != 1 or str(key) not in "0123456789*#":
                report.error(("options", str(key), "<key>"), f"menu {self.id!r}: option {key!r} is not one key"
                             " (0-9, * or #)")
        if self["retries"] < 1:
            report.error(("retries",), f"menu {self.id!r}: retries must be at least 1")

    def assigns(self) -> set[str]:
        return {self["variable"]} if self["variable"] else set()

    async def run(self, ctx: Context) -> Next:
        options = {str(key): target for key, target in self["options"].items()}
        for attempt in ctx.attempts(self["retries"]):
            result = await ask(ctx, self, self["prompt"], timeout=self["timeout"])
            if result.digits in options:
                collected(ctx, self, self["variable"], result.digits)
                return str(options[result.digits])
            ctx.attempt_failed(attempt)
            if attempt + 1 < self["retries"]:
                await self.play(ctx, self["timeout_prompt"] if not result.digits else self["invalid_prompt"])
        return self["default"]  # type: ignore[no-any-return]
