"""Tenant naming rules: slug, schema, cache prefix, bucket, realm, topics. Pure functions.

Every identifier that is quoted into DDL passes :func:`check_identifier` first, so a slug can
never smuggle SQL into a schema name.
"""

from __future__ import annotations

import re

from plexica_sdk.errors import InvalidTenantSlugError, ValidationError

__all__ = [
    "RESERVED_SLUGS",
    "SLUG_RE",
    "bucket_name",
    "cache_prefix",
    "check_identifier",
    "quote_identifier",
    "realm_name",
    "schema_name",
    "validate_slug",
]

#: 3-50 characters so ``tenant_<slug>`` fits PostgreSQL's 63-byte identifier limit.
SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,48}[a-z0-9]\Z")
#: Slugs no tenant may take: ``global.{event_type}`` topics carry the events of no tenant.
RESERVED_SLUGS = frozenset({"global"})
_IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}\Z")


def validate_slug(slug: str) -> str:
    """Return ``slug`` if it is a valid tenant slug.

    Raises:
        InvalidTenantSlugError: it is not.
    """
    if not isinstance(slug, str) or not SLUG_RE.match(slug) or "--" in slug or slug in RESERVED_SLUGS:
        raise InvalidTenantSlugError(str(slug))
    return slug


def schema_name(slug: str) -> str:
    """The database schema of a tenant: ``tenant_<slug with - as _>``."""
    return "tenant_" + validate_slug(slug).replace("-", "_")


def cache_prefix(slug: str) -> str:
    """Prefix of every cache key of a tenant: ``tenant:{<slug>}:``, braces included.

    The braces make the slug a Redis Cluster hash tag, so all of one tenant's keys share a slot
    (multi-key commands and per-tenant flushes stay on one node). A slug has no braces or ``:``,
    so no tenant's prefix is a prefix of another's.
    """
    return "tenant:{" + validate_slug(slug) + "}:"


def bucket_name(slug: str) -> str:
    return f"tenant-{validate_slug(slug)}"


def realm_name(slug: str, template: str = "tenant-{slug}") -> str:
    return template.format(slug=validate_slug(slug))


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a safe lowercase SQL identifier (schema or table name).

    Raises:
        ValidationError: it is not; nothing is ever quoted into SQL without this check.
    """
    if not isinstance(name, str) or not _IDENTIFIER_RE.match(name):
        raise ValidationError(f"unsafe SQL identifier {str(name)[:70]!r}", field="identifier")
    return name


def quote_identifier(name: str) -> str:
    """Validate and double-quote an identifier for DDL."""
    return f'"{check_identifier(name)}"'
