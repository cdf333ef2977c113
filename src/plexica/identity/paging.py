"""Keyset pagination shared by the identity and workspace listings: pages and opaque cursors.

A cursor is the sort key of the last item of a page, JSON in base64url. It is opaque to clients
but not secret: it only holds values the caller has already seen.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Generic, TypeVar

import attrs

from plexica_sdk.errors import ValidationError

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "decode_cursor", "encode_cursor", "parse_limit"]

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_MAX_CURSOR_CHARS = 2048


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a listing; ``next_cursor`` is ``None`` on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None = None


def encode_cursor(*key: str | int) -> str:
    """The cursor that resumes a listing after the item whose sort key is ``key``."""
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """The sort key a cursor holds.

    Raises:
        ValidationError: the cursor was not made by :func:`encode_cursor` for this listing.
    """
    try:
        if len(cursor) > _MAX_CURSOR_CHARS:
            raise ValueError("too long")
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValidationError("invalid cursor", field="cursor") from None
    if not isinstance(key, list) or len(key) != arity or not all(isinstance(v, str | int) for v in key):
        raise ValidationError("invalid cursor", field="cursor")
    return key


def parse_limit(raw: str | None) -> int:
    """A page size from a query parameter: default 50, 1 to 200.

    Raises:
        ValidationError: not an integer in range.
    """
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationError("limit must be an integer", field="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit
