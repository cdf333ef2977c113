"""Bodies of ``/tenants``."""

from __future__ import annotations

import attrs

from plexica.http.schemas.common import ID
from plexica_sdk.types import TenantInfo

__all__ = ["CreateTenant", "TenantInfo", "TenantList"]


@attrs.frozen(kw_only=True)
class CreateTenant:
    """A tenant to provision: ``slug`` names its schema and host name (lower-case letters, digits, ``-``)."""

    slug: str = attrs.field(validator=attrs.validators.and_(attrs.validators.min_len(1), attrs.validators.max_len(63)))
    name: str | None = attrs.field(default=None, validator=attrs.validators.optional(ID))
    plan: str = attrs.field(default="standard", validator=ID)


@attrs.frozen(kw_only=True)
class TenantList:
    items: tuple[TenantInfo, ...]
