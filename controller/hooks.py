"""The hook that does nothing, shared by the objects that run optional callbacks.

A call's session and queue visit run hooks on every change (`CallSession.persist`, `QueueCall.on_legs_changed`, ...)
and reset them to this at the call's end (dropping the closure over the call, a reference cycle); the store's
thread runs it as its last job when stopped; the ARI event stream's `on_disconnected` defaults to it. A plain
function rather than `Callable[[], None] | None`: one call per use whether a hook is set or not, and no check at
each call site to forget.
"""

from __future__ import annotations


def nothing() -> None:
    """Do nothing: the default hook."""
    return None
