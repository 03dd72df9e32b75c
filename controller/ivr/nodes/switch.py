from __future__ import annotations

from collections.abc import Iterator

from controller.ivr import expr
from controller.ivr.flow import Report
from controller.ivr.nodes import Context, Next, Node, Param


class SwitchNode(Node):
    """Branch on conditions: the first case whose `when` is true, else `default`."""

    type = "switch"
    params = {
        "cases": Param("list", required=True, doc="[{when: expression, next: node}, ...]"),
        "default": Param("node", required=True),
    }

    def check(self, report: Report) -> None:
        for index, case in enumerate(self["cases"]):
            path = ("cases", str(index))
            if not isinstance(case, dict) or set(case) != {"when", "next"}:
                report.error(path, f"switch {self.id!r}: a case is {{when: expression, next: node}}")
                continue
            try:
                expr.parse(str(case["when"]))
            except expr.ExpressionError as exc:
                report.error((*path, "when"), f"switch {self.id!r}: {exc.message}"
                             f" (at column {exc.column + 1} of the expression)")

    def routes(self) -> Iterator[tuple[tuple[str, ...], str]]:
        for index, case in enumerate(self["cases"]):
            yield ("cases", str(index), "next"), str(case["next"])
        yield ("default",), str(self["default"])

    def variables_used(self) -> Iterator[tuple[tuple[str, ...], str]]:
        for index, case in enumerate(self["cases"]):
            for variable in sorted(expr.variables_in(expr.parse(str(case["when"])))):
                yield ("cases", str(index), "when"), variable

    async def run(self, ctx: Context) -> Next:
        for case in self["cases"]:
            if expr.evaluate(expr.parse(str(case["when"])), ctx.variables):
                return str(case["next"])
        return self["default"]  # type: ignore[no-any-return]
