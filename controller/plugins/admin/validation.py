"""Checks of a whole managed configuration, beyond each item's own (which the configuration file's loader
makes): keys are unique, what an item names exists. Other plugins add theirs (`AdminService.register_check`,
e.g. a DID's flow must be loaded). Each problem is `path: message`, as the file's messages are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from controller.config import Config
from controller.plugins.admin.kinds import KINDS

#: A whole-configuration check: the problems it finds (none: fine).
Check = Callable[[Config], Iterable[str]]


def duplicate_keys(config: Config) -> list[str]:
    """Two items of a list section with the same key (a file or an applied document may have them)."""
    problems = []
    for kind in KINDS:
        if kind.shape not in ("list", "values"):
            continue
        section = config
        for name in kind.section:
            section = getattr(section, name)
        keys = Counter(str(getattr(item, kind.key_field)) if kind.key_field else str(item)
                       for item in section)  # type: ignore[attr-defined]
        problems += [f"{kind.plural}[{key}]: appears {count} times (each {kind.name} once)"
                     for key, count in keys.items() if count > 1]
        problems += [f"{kind.plural}: an empty key" for key in keys if not key.strip()]
    return problems


def references(config: Config) -> list[str]:
    """What agents, queues and webhooks name must exist."""
    queues = {queue.name for queue in config.acd.queues}
    known = ", ".join(sorted(queues)) or "none"
    problems = []
    for agent in config.acd.agents:
        problems += [f"agents[{agent.id}].queues.{name}: no queue {name!r} (queues: {known})"
                     for name in agent.queues if name not in queues]
    for queue in config.acd.queues:
        overflow = queue.overflow or ""
        if overflow.startswith("queue:"):
            target = overflow.removeprefix("queue:")
            if target not in queues:
                problems.append(f"queues[{queue.name}].overflow: no queue {target!r} (queues: {known})")
            elif target == queue.name:
                problems.append(f"queues[{queue.name}].overflow: a queue cannot overflow to itself")
    for hook in config.webhooks:
        if hook.queue is not None and hook.queue not in queues:
            problems.append(f"webhooks[{hook.name}].queue: no queue {hook.queue!r} (queues: {known})")
    return problems


BUILT_IN_CHECKS: tuple[Check, ...] = (duplicate_keys, references, Config.phone_node_problems)


def problems_of(config: Config, checks: Iterable[Check]) -> list[str]:
    """Every problem the checks find in `config`, built-in ones first."""
    problems: list[str] = []
    for check in (*BUILT_IN_CHECKS, *checks):
        problems += check(config)
    return problems
