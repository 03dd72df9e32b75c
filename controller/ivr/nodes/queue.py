from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from controller.ivr import expr
from controller.ivr.flow import Report
from controller.ivr.nodes import Context, Next, Node, Param
from controller.ivr.port import QueueOutcome, QueueRequest


class QueueNode(Node):
    """Hand the call to the ACD; routes by how the queue visit ended."""

    type = "queue"
    waits = True
    params = {
        "queue": Param("template", required=True),
        "skills": Param("any", default={}, doc="skill -> minimum level"),
        "priority": Param("expr", default=0, doc="a number or an expression (tier == 'vip' and 10 or 0)"),
        "data": Param("list", doc="variables shown on the agent's screen (default: all the flow's own; the"
                                  " built-ins have their own fields or stay internal)"),
        "answered": Param("node", doc="after the agent hung up, caller still here (e.g. the survey)"),
        "overflow": Param("node", doc="the queue overflowed (voicemail, callback targets)"),
        "timeout": Param("node"),
        "no_agents": Param("node"),
        "unavailable": Param("node", doc="no such queue / the ACD is not running"),
        "otherwise": Param("node", required=True, doc="for any result without its own route"),
    }

    def check(self, report: Report) -> None:
        skills = self["skills"]
        if not isinstance(skills, dict) or not all(isinstance(v, int) and 1 <= v <= 10 for v in skills.values()):
            report.error(("skills",), f"queue {self.id!r}: skills: expected skill: level (1-10) pairs")
        if not isinstance(self["priority"], int | str) or isinstance(self["priority"], bool):
            report.error(("priority",), f"queue {self.id!r}: priority: expected a number or an expression")

    def variables_used(self) -> Iterator[tuple[tuple[str, ...], str]]:
        yield from super().variables_used()
        for index, name in enumerate(self["data"] or []):
            yield ("data", str(index)), str(name)

    def assigns(self) -> set[str]:
        return {"agent_id", "queue_result", "overflow_target"}

    def _priority(self, ctx: Context) -> int:
        value: Any = self["priority"]
        if isinstance(value, str):
            value = expr.evaluate(expr.parse(value), ctx.variables)
        try:
            return int(value or 0)
        except (TypeError, ValueError):
            return 0

    async def run(self, ctx: Context) -> Next:
        names = self["data"] if self["data"] is not None else [n for n in ctx.variables if n != "now"]
        data = {str(n): expr.lookup(ctx.shareable_variables(), str(n)) for n in names}
        after_talk = ctx.nodes.get(self["answered"] or self["otherwise"])
        request = QueueRequest(ctx.render(self["queue"]), dict(self["skills"]), self._priority(ctx), data,
                               hangs_up_after=after_talk is not None and after_talk.hangs_up_at_once())
        return self.after(ctx, await ctx.port.enqueue(request))

    def after(self, ctx: Context, outcome: QueueOutcome) -> Next:
        """Where the flow goes when the queue visit is over (also for a call whose talk was resumed by a
        new controller process: the flow goes on from here)."""
        ctx.set("queue_result", outcome.result)
        ctx.set("agent_id", outcome.agent_id)
        ctx.set("overflow_target", outcome.overflow_target)
        target = outcome.overflow_target
        if outcome.result in ("overflow", "transferred") and target is not None and target.startswith("node:"):
            return target.removeprefix("node:")
        route = {"answered_then_ended": "answered", "transferred": "answered"}.get(outcome.result, outcome.result)
        return self[route] or self["otherwise"]  # type: ignore[no-any-return]
