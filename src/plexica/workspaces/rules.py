"""Input rules of workspaces: names, slugs, descriptions, roles, versions. Pure functions, no IO."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from plexica.workspaces.models import ROLES, WorkspaceRole
from plexica_sdk.errors import ValidationError

__all__ = ["SLUG_RE", "check_description", "check_name", "check_role", "check_slug", "slug_from"]

#: 1-63 lowercase letters, digits and dashes, not starting or ending with a dash.
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME = 255
MAX_DESCRIPTION = 2000


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= MAX_NAME:
        raise ValidationError(f"name must be a string of 1 to {MAX_NAME} characters", field="name")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValidationError("name must not contain control characters", field="name")
    return value.strip()


def check_slug(value: Any) -> str:
    if not isinstance(value, str) or not SLUG_RE.match(value):
        raise ValidationError(
            "slug must have 1 to 63 lowercase letters, digits and dashes, not starting or ending with a dash",
            field="slug",
        )
    return value


def slug_from(name: str) -> str:
    """A slug derived from a name: ``"Sales — EMEA"`` → ``"sales-emea"``.

    Raises:
        ValidationError: nothing usable is left of the name (give a slug explicitly).
    """
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:63].strip("-")
    if not slug:
        raise ValidationError("cannot derive a slug from this name; give one", field="slug")
    return slug


def check_description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise ValidationError(
            f"description must be a string of at most {MAX_DESCRIPTION} characters", field="description"
        )
    return value


def check_role(value: Any, field: str = "role") -> WorkspaceRole:
    if value not in ROLES:
        raise ValidationError(f"role must be one of {', '.join(ROLES)}", field=field)
    role: WorkspaceRole = value
    return role
