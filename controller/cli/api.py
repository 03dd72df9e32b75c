"""How ccctl talks to the controller's HTTP API: one small client with clear errors."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class ApiUnavailable(Exception):
    """The controller could not be reached (not running, wrong --url)."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.problems = problems or []  # a 422's `problems`: each `field.path: message` or `file:line:column: …`


class ControllerApi:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 5.0) -> None:
        self.url = (url or os.environ.get("CCC_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.token = token or os.environ.get("CCC_TOKEN") or "demo-admin-token"
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            problems = None
            try:
                payload = json.loads(text)
                if exc.code == 503 and path == "/healthz":
                    return payload  # degraded is an answer, not an error
                message = payload.get("error", text)
                problems = payload.get("problems")
            except (ValueError, AttributeError):
                message = text
            raise ApiError(exc.code, message, problems) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiUnavailable(f"cannot reach the controller at {self.url}: {reason}") from exc

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, query=query)

    def download(self, path: str) -> bytes:
        """A binary resource (a recording's audio)."""
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=max(self.timeout, 60)) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                message = json.loads(text).get("error", text)
            except ValueError:
                message = text
            raise ApiError(exc.code, message) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ApiUnavailable(f"cannot reach the controller at {self.url}: {getattr(exc, 'reason', exc)}") from exc

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body if body is not None else {})
