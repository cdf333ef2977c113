"""Asserting on RFC 9457 problem responses, the shape of every Plexica HTTP error."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["assert_problem"]


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Any: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def assert_problem(response: _Response, status: int) -> dict[str, Any]:
    """Assert ``response`` is a ``status`` problem+json without a traceback, and return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    assert "Traceback" not in response.text
    return body
