from __future__ import annotations

from controller.ivr.nodes import Context, Next, Node, Param
from controller.lookup import caller_region

#: Longest first: 广西壮族自治区 is 广西, not 广西壮族.
_SUFFIXES = ("维吾尔自治区", "壮族自治区", "回族自治区", "特别行政区", "自治区", "省", "市")


def _short(name: str) -> str:
    """广东省 → 广东, 深圳市 → 深圳, 宁夏回族自治区 → 宁夏 (a bare suffix stays as it is)."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


class RegionNode(Node):
    """Route by the caller number's home province or city (按归属地转接); sets `region`."""

    type = "region"
    params = {
        "routes": Param("routes", required=True, doc="province or city (广东 or 广东省, 深圳) -> node"),
        "default": Param("node", required=True, doc="other regions, unknown or withheld numbers"),
    }

    async def run(self, ctx: Context) -> Next:
        region = caller_region(ctx.port.caller) if ctx.port.caller else None
        info = region.as_dict() if region is not None else {}
        ctx.set("region", info)
        routes = {_short(str(key)): target for key, target in self["routes"].items()}
        for name in (info.get("city"), info.get("province")):
            if name and _short(str(name)) in routes:
                return str(routes[_short(str(name))])
        return self["default"]  # type: ignore[no-any-return]
