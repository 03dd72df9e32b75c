"""The campaigns' request error (its own module: the runner's helpers raise it too)."""

from __future__ import annotations


class CampaignError(ValueError):
    """A request that cannot be done (the message says why); `status` is the HTTP status for it."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status
