"""The per-tenant limits (plugin config) and the checks every upload passes, declared and actual."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from plexica_sdk.errors import ValidationError

DEFAULT_TYPES: Final = (
    "image/*",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/json",
    "application/zip",
)

#: The per-tenant configuration (``plexica plugins config files --tenant SLUG``).
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "max_file_bytes": {
            "type": "integer",
            "minimum": 1,
            "maximum": 5 * 1024**3,
            "default": 25 * 1024**2,
            "description": "The largest file accepted, in bytes",
        },
        "allowed_content_types": {
            "type": "array",
            "items": {"type": "string", "pattern": r"^[a-z0-9.+-]+/([a-z0-9.+-]+|\*)$"},
            "maxItems": 100,
            "default": list(DEFAULT_TYPES),
            "description": "Accepted content types ('image/*' allowed); an empty list accepts any",
        },
        "url_expires_seconds": {
            "type": "integer",
            "minimum": 60,
            "maximum": 86400,
            "default": 900,
            "description": "How long an upload or download URL stays valid",
        },
    },
    "additionalProperties": False,
}


def media_type(value: str | None) -> str:
    """``value`` without parameters, lowercased (``Text/Plain; charset=utf-8`` is ``text/plain``)."""
    return (value or "").split(";", 1)[0].strip().lower()


def type_allowed(content_type: str, patterns: Sequence[str]) -> bool:
    """Whether ``content_type`` matches one of ``patterns`` (``image/*`` covers ``image/png``); none: any."""
    if not patterns:
        return True
    return any(p == content_type or (p.endswith("/*") and content_type.startswith(p[:-1])) for p in patterns)


def check(config: Mapping[str, Any], size: int, content_type: str) -> None:
    """Refuse a file over the tenant's size limit or of a type it does not accept.

    Raises:
        ValidationError: ``field`` names ``size`` or ``content_type``.
    """
    limit = int(config["max_file_bytes"])
    if size > limit:
        raise ValidationError(f"files may be at most {limit} bytes; this one is {size}", field="size")
    patterns = list(config["allowed_content_types"])
    if not type_allowed(content_type, patterns):
        raise ValidationError(
            f"content type {content_type[:80]!r} is not accepted here (accepted: {', '.join(patterns)})",
            field="content_type",
        )
