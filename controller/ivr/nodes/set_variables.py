from __future__ import annotations

from collections.abc import Iterator

from controller.ivr import expr
from controller.ivr.flow import Report
from controller.ivr.nodes import Context, Next, Node, Param


class SetNode(Node):
    """Set variables from expressions: {tier: "'vip'", attempts: "attempts + 1", language: "'en'"}."""

    type = "set"
    params = {
        "values": Param("any", required=True, doc="variable -> expression (quote text: \"'vip'\")"),
        "next": Param("node"),
    }

    def check(self, report: Report) -> None:
        if not isinstance(self["values"], dict) or not self["values"]:
            report.error(("values",), f"set {self.id!r}: values: expected variable: expression pairs")
            return
        for name, value in self["values"].items():
            if isinstance(value, str):
                try:
                    expr.parse(value)
                except expr.ExpressionError as exc:
                    report.error(("values", str(name)), f"set {self.id!r}: {name}: {exc.message}"
                                 f" (at column {exc.column + 1} of the expression)")

    def variables_used(self) -> Iterator[tuple[tuple[str, ...], str]]:
        for name, value in self["values"].items():
            if isinstance(value, str):
                for variable in sorted(expr.variables_in(expr.parse(value))):
                    yield ("values", str(name)), variable

    def assigns(self) -> set[str]:
        return set(map(str, self["values"]))

    async def run(self, ctx: Context) -> Next:
        for name, value in self["values"].items():
            ctx.set(str(name), expr.evaluate(expr.parse(value), ctx.variables) if isinstance(value, str) else value)
        return self["next"]  # type: ignore[no-any-return]
