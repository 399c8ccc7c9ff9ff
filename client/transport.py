"""HTTP for the client, with the protocol's one error shape turned into exceptions.

Only the standard library, so a tablet build needs nothing else. A ``Transport`` is the seam where the
simulator injects a flaky network (see ``client.simulate.FlakyTransport``).
"""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any


class NetworkError(Exception):
    """The request may or may not have reached the server: retrying must be safe."""


class ApiError(Exception):
    """The server answered with the protocol's error shape."""

    def __init__(self, status: int, code: str, message: str = "", details: dict | None = None,
                 retry_after: float | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or {}
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Overload or a database that is away: the same request may be sent again later."""
        return self.status in (429, 502, 503, 504) or self.status >= 500


class Transport:
    """Send JSON to one server; answer the decoded body or raise ``ApiError`` / ``NetworkError``."""

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:
                raw = response.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, OSError) as exc:
            raise NetworkError(str(exc)) from None
        except json.JSONDecodeError as exc:  # a proxy's HTML page, a cut-off body
            raise NetworkError(f"unreadable answer: {exc}") from None


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    try:
        raw = exc.read()
    except (OSError, ConnectionError):
        raw = b""
    retry_after = exc.headers.get("Retry-After") if exc.headers else None
    try:
        retry_after = float(retry_after) if retry_after is not None else None
    except ValueError:
        retry_after = None
    try:
        error = json.loads(raw)["error"]
        return ApiError(exc.code, error["code"], error.get("message", ""), error.get("details"), retry_after)
    except (ValueError, KeyError, TypeError):
        # Not the protocol's shape (a proxy or load balancer in the way): keep the status for the caller.
        return ApiError(exc.code, "unexpected_answer", raw[:200].decode(errors="replace"), None, retry_after)
