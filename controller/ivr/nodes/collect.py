from __future__ import annotations

import re

from controller.ivr.flow import Report
from controller.ivr.nodes import Context, Next, Node, Param
from controller.ivr.nodes._input import SENSITIVE, ask, collected


class CollectNode(Node):
    """Enter digits (an account or phone number): length, terminator, timeouts, a pattern."""

    type = "collect"
    waits = True
    params = {
        "prompt": Param("prompts", required=True),
        "variable": Param("str", required=True),
        "min_digits": Param("int", default=1),
        "max_digits": Param("int", default=20),
        "terminator": Param("str", default="#", doc="key that ends the input (\"\" for none)"),
        "timeout": Param("number", positive=True, default=5.0, doc="seconds for the first key"),
        "inter_digit_timeout": Param("number", positive=True, default=3.0),
        "total_timeout": Param("number", positive=True, default=30.0),
        "pattern": Param("regex", doc="the digits must match this regular expression"),
        "retries": Param("int", default=3),
        "invalid_prompt": Param("prompts", default="输入有误，请重新输入。"),
        "timeout_prompt": Param("prompts", default="您没有输入。"),
        "next": Param("node", required=True),
        "failure": Param("node", doc="after the last failed attempt (none: the flow ends)"),
        "sensitive": SENSITIVE,
    }

    def check(self, report: Report) -> None:
        if not 1 <= self["min_digits"] <= self["max_digits"]:
            report.error(("min_digits",), f"collect {self.id!r}: need 1 <= min_digits <= max_digits")
        if self["terminator"] not in ("", "#", "*"):
            report.error(("terminator",), f"collect {self.id!r}: terminator must be #, * or \"\"")

    def assigns(self) -> set[str]:
        return {self["variable"]}

    async def run(self, ctx: Context) -> Next:
        pattern = re.compile(self["pattern"]) if self["pattern"] else None
        for attempt in ctx.attempts(self["retries"]):
            result = await ask(ctx, self, self["prompt"], max_digits=self["max_digits"],
                               min_digits=self["min_digits"], terminator=self["terminator"] or None,
                               timeout=self["timeout"], inter_digit_timeout=self["inter_digit_timeout"],
                               total_timeout=self["total_timeout"])
            digits = result.digits
            valid = len(digits) >= self["min_digits"] and (pattern is None or pattern.fullmatch(digits))
            if digits and valid:
                collected(ctx, self, self["variable"], digits)
                return self["next"]  # type: ignore[no-any-return]
            ctx.attempt_failed(attempt)
            if attempt + 1 < self["retries"]:
                await self.play(ctx, self["invalid_prompt"] if digits else self["timeout_prompt"])
        return self["failure"]  # type: ignore[no-any-return]
