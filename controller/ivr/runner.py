"""Running a flow on a call: node after node, through the call's `CallPort`, until it ends."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from controller.ivr.flow import FlowSet
from controller.ivr.nodes import Context, Jump, Next, Node
from controller.ivr.port import CallerHangup, CallPort, Prompt

log = logging.getLogger("controller.ivr")

#: Nodes run in a row without waiting for the caller before the flow is stopped as a runaway loop
#: (validation refuses such loops; this guards against ones through variables and subflows).
MAX_QUICK_STEPS = 200

Ended = Literal["end", "hangup", "caller_hangup", "error"]
#: Called as each node starts, and after each failed attempt of a menu or collect node: (flow id, node id,
#: the variables so far with sensitive ones left out, the attempts the node has used).
NodeEntered = Callable[[str, str, dict[str, Any], int], None]
#: For a flow resumed after its start node's wait is over (a resumed call's talk ended): where it goes next.
Settled = Callable[[Node, Context], Next]
#: Built-in variables that describe the moment, not the call: recomputed when a flow resumes.
MOMENT_VARIABLES = frozenset({"now", "today", "time", "weekday"})


@dataclass
class FlowResult:
    visited: list[str]
    variables: dict[str, Any]  # sensitive ones masked
    ended: Ended
    error: str | None = None
    played: list[tuple[str, list[Prompt]]] = field(default_factory=list)


def builtin_variables(port: CallPort, flow_id: str, tz: str = "Asia/Shanghai") -> dict[str, Any]:
    now = datetime.fromtimestamp(port.clock.now(), ZoneInfo(tz))
    return {"caller": port.caller, "did": port.did, "call_id": port.call_id, "language": port.language,
            "now": now.isoformat(timespec="seconds"), "today": now.date().isoformat(),
            "time": now.strftime("%H:%M"), "weekday": now.strftime("%a").lower(), "flow": flow_id, "region": {}}


@dataclass(frozen=True)
class ResumePoint:
    """Where a caller taken over after a restart goes on: `node` None is the flow's start."""

    flow_id: str
    node: str | None
    variables: dict[str, Any]
    how: Literal["same_version", "same_node", "start"]
    attempts_used: int = 0  # of that node (same version only: a changed node starts afresh)


def resume_point(flows: FlowSet, saved: Mapping[str, Any]) -> ResumePoint | None:
    """The node a caller was in (their stored "ivr" part: flow, version, node, variables), in the live
    flows: that node when the flow's version is the same; the node of the same id when the flow
    changed; else the flow's start. None when the flow itself is gone (nothing to resume on)."""
    flow = flows.flows.get(str(saved.get("flow", "")))
    if flow is None:
        return None
    variables = saved.get("variables")
    kept = {k: v for k, v in variables.items() if k not in MOMENT_VARIABLES} if isinstance(variables, dict) else {}
    node = str(saved.get("node", ""))
    if node in flow.nodes:
        if saved.get("version") == flow.version:
            used = saved.get("attempts")
            return ResumePoint(flow.id, node, kept, "same_version", used if isinstance(used, int) else 0)
        return ResumePoint(flow.id, node, kept, "same_node")
    return ResumePoint(flow.id, None, kept, "start")


async def run_flow(flows: FlowSet, flow_id: str, port: CallPort, *, start_node: str | None = None,
                   variables: Mapping[str, Any] | None = None, on_node: NodeEntered | None = None,
                   settled: Settled | None = None, attempts_used: int = 0) -> FlowResult:
    """Run a flow from its start, or from `start_node` with `variables` and the `attempts_used` there (a
    resumed call). With `settled`, `start_node` is not run again: its outcome is known, `settled(node,
    ctx)` says where to go next."""
    flow = flows.flows[flow_id]
    port.language = flow.language  # type: ignore[assignment]
    ctx = Context(port, flow.id, {**builtin_variables(port, flow.id), **flow.variables, **(variables or {})},
                  flow.language, nodes=flow.nodes)
    ctx.variables["language"] = flow.language
    ctx.attempts_used = attempts_used if start_node is not None else 0
    chosen = (variables or {}).get("language")
    if start_node is not None and chosen in ("zh", "en") and chosen != flow.language:
        ctx.set("language", chosen)  # a resumed caller who had chosen their language keeps it
    node_id: str | None = start_node or flow.start
    quick_steps = 0
    try:
        while node_id is not None:
            node = flow.nodes.get(node_id)
            if node is None:
                raise LookupError(f"flow {flow.id!r} has no node {node_id!r}")
            ctx.visited.append(node_id)
            if settled is not None:
                following, settled = settled(node, ctx), None
            else:
                if on_node is not None:
                    report = _reporter(ctx, node_id, on_node)
                    report(ctx.attempts_used)
                    ctx.on_attempt_failed = report
                ctx.emit("ivr.node_entered", node=node_id, type=node.type)
                following = await node.run(ctx)
            ctx.attempts_used = 0  # only the resumed node goes on after its attempts
            quick_steps = 0 if node.waits else quick_steps + 1
            if quick_steps > MAX_QUICK_STEPS:
                raise RuntimeError(f"{MAX_QUICK_STEPS} nodes in a row without waiting for the caller (a loop?)")
            if isinstance(following, Jump):
                flow = flows.flows[following.flow]
                ctx.flow_id, ctx.nodes = flow.id, flow.nodes
                ctx.set("language", flow.language)  # a subflow speaks its own language
                node_id = following.node or flow.start
            else:
                node_id = following
        ended: Ended = "hangup" if ctx.ended == "hangup" else "end"
        return FlowResult(ctx.visited, ctx.shareable_variables(), ended, played=ctx.played)
    except CallerHangup:
        return FlowResult(ctx.visited, ctx.shareable_variables(), "caller_hangup", played=ctx.played)
    except Exception as exc:  # a node failed: the caller goes to the fallback route, never to silence
        log.exception("flow %s failed at node %s", flow.id, node_id)
        return FlowResult(ctx.visited, ctx.shareable_variables(), "error", f"{type(exc).__name__}: {exc}",
                          played=ctx.played)
    finally:
        # The reporter is a closure over the context: a reference cycle per call (holding the port and the call's
        # session) that only the garbage collector's middle passes freed (README "Benchmarks", fourth session).
        ctx.on_attempt_failed = None


def _reporter(ctx: Context, node_id: str, on_node: NodeEntered) -> Callable[[int], None]:
    """Reports the node (with the variables as they are then) and the attempts it has used."""
    flow_id = ctx.flow_id

    def report(attempts: int) -> None:
        on_node(flow_id, node_id, {name: value for name, value in ctx.variables.items() if name not in ctx.sensitive},
                attempts)
    return report
