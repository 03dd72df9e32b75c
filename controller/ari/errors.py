"""ARI errors, mapped from HTTP status so callers can handle the normal cases by name."""

from __future__ import annotations


class AriError(Exception):
    """An ARI request failed. `status` is the HTTP status (0: no answer at all)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path} -> {status}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message


class AriUnavailable(AriError):
    """Asterisk did not answer (connection refused, timeout) or answered 5xx."""


class AriDetached(AriUnavailable):
    """The controller is stopping and leaves its calls in Asterisk: no request is sent (`AriClient.detach`)."""


class AriBadRequest(AriError):
    """400: a parameter was wrong (a bug on our side, or bad user input passed through)."""


class AriNotFound(AriError):
    """404 on something that is not a channel (bridge, playback, recording, endpoint)."""


class ChannelGone(AriError):
    """The channel has hung up or left our application (404, or 409/412/422 'not in Stasis').

    Normal in telephony: a caller can hang up between any two requests. Handle it quietly.
    """


class AriConflict(AriError):
    """409/412/422: the operation does not fit the object's state (e.g. recording a bridged channel)."""
