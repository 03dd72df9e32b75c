"""Shared by the nodes that ask the caller for keys (menu, collect, callback, survey)."""

from __future__ import annotations

from typing import Any

from controller.ivr.nodes import MASKED, Context, Node, Param
from controller.ivr.port import CollectResult, CollectSpec


async def ask(ctx: Context, node: Node, prompts: Any, *, max_digits: int = 1, min_digits: int = 1,
              terminator: str | None = None, timeout: float = 5.0, inter_digit_timeout: float = 3.0,
              total_timeout: float = 30.0) -> CollectResult:
    """Play `prompts` (a key interrupts them) and collect keys. A key that barged into an earlier
    prompt answers a one-key question at once."""
    if ctx.pending_key is not None and max_digits == 1:
        key, ctx.pending_key = ctx.pending_key, None
        return CollectResult(key, "max_digits")
    ctx.pending_key = None
    spoken = ctx.prompts(prompts)
    if spoken:
        ctx.played.append((node.id, spoken))
    return await ctx.port.collect(CollectSpec(
        prompts=spoken, min_digits=min_digits, max_digits=max_digits, terminator=terminator,
        first_digit_timeout=timeout, inter_digit_timeout=inter_digit_timeout,
        total_timeout=max(total_timeout, timeout), barge_in=True))


#: The `sensitive` parameter of the nodes that collect keys (menu, collect).
SENSITIVE = Param("bool", default=False,
                  doc="a PIN or card number: the value is usable in the flow (e.g. by an http node) but "
                      "masked in call records, CTI events, the screen pop and queue data")


def collected(ctx: Context, node: Node, variable: str | None, value: str) -> None:
    """Keep what the caller entered in `variable` and tell CTI and the call record (masked when
    the node is sensitive)."""
    sensitive = bool(node["sensitive"])
    if variable:
        ctx.set(variable, value, sensitive=sensitive)
    ctx.emit("ivr.input_collected", node=node.id, variable=variable, value=MASKED if sensitive else value,
             sensitive=sensitive)
