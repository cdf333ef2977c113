"""Validators shared by the request bodies."""

from __future__ import annotations

from typing import Any, Final

import attrs

__all__ = ["DESCRIPTION", "ID", "NAME", "OPTIONAL_ID"]

#: An id or key we store: 1-255 characters.
ID: Final[Any] = attrs.validators.and_(attrs.validators.min_len(1), attrs.validators.max_len(255))
OPTIONAL_ID: Final[Any] = attrs.validators.optional(ID)
#: A display name: 1-255 characters (the services also refuse blank ones and control characters).
NAME: Final[Any] = ID
DESCRIPTION: Final[Any] = attrs.validators.optional(attrs.validators.max_len(2000))
