"""Bodies of ``/permissions``, ``/roles`` and ``/policies``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from plexica.http.schemas.common import ID, OPTIONAL_ID
from plexica.permissions.decision import PolicyOutcome, RoleGrant
from plexica.permissions.repository import GrantRow
from plexica.permissions.service import RoleInfo

__all__ = [
    "CheckResult",
    "ExplanationOut",
    "GrantInput",
    "GrantList",
    "PermissionQuestion",
    "PolicyInput",
    "PolicyList",
    "PolicyOut",
    "PolicyUpdate",
    "RoleInput",
    "RoleList",
    "RoleUpdate",
]

_KEY: Any = attrs.validators.and_(attrs.validators.min_len(1), attrs.validators.max_len(255))
_KEYS: Any = attrs.validators.and_(attrs.validators.max_len(500), attrs.validators.deep_iterable(_KEY))


@attrs.frozen(kw_only=True)
class PermissionQuestion:
    """A permission (``notes:note:read``) on a resource's attributes, for the caller or (inspectors) ``user_id``."""

    permission: str = attrs.field(validator=ID)
    resource: Mapping[str, Any] | None = None
    user_id: str | None = attrs.field(default=None, validator=OPTIONAL_ID)


@attrs.frozen(kw_only=True)
class CheckResult:
    permission: str
    allowed: bool


@attrs.frozen(kw_only=True)
class ExplanationOut:
    """A decision with its working: roles in effect, what decided it (``granted_by``), every policy's outcome."""

    permission: str
    user_id: str
    workspace_id: str | None
    allowed: bool
    reason: str
    decided_by: str | None
    roles: tuple[RoleGrant, ...]
    granted_by: tuple[str, ...] | None
    policies: tuple[PolicyOutcome, ...]


@attrs.frozen(kw_only=True)
class RoleInput:
    """A custom role: its name and the permission patterns it grants (``notes:note:*``)."""

    name: str = attrs.field(validator=ID)
    permissions: tuple[str, ...] = attrs.field(default=(), validator=_KEYS)
    description: str = attrs.field(default="", validator=attrs.validators.max_len(2000))


@attrs.frozen(kw_only=True)
class RoleUpdate:
    """A custom role's new patterns and description (``name``, if sent, must be the role's)."""

    name: str | None = attrs.field(default=None, validator=OPTIONAL_ID)
    permissions: tuple[str, ...] = attrs.field(default=(), validator=_KEYS)
    description: str = attrs.field(default="", validator=attrs.validators.max_len(2000))


@attrs.frozen(kw_only=True)
class RoleList:
    items: tuple[RoleInfo, ...]


@attrs.frozen(kw_only=True)
class GrantInput:
    """Whom to grant the role: one of ``user_id`` or ``team_id``; tenant-wide, or in ``workspace_id``."""

    user_id: str | None = attrs.field(default=None, validator=OPTIONAL_ID)
    team_id: str | None = attrs.field(default=None, validator=OPTIONAL_ID)
    workspace_id: str | None = attrs.field(default=None, validator=OPTIONAL_ID)


@attrs.frozen(kw_only=True)
class GrantList:
    items: tuple[GrantRow, ...]


@attrs.frozen(kw_only=True)
class PolicyInput:
    """An ABAC policy: ``condition`` is ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}`` or a leaf."""

    id: str = attrs.field(validator=ID)
    effect: Literal["allow", "deny"]
    target: str = attrs.field(validator=ID)
    condition: Mapping[str, Any] | None = None
    description: str = attrs.field(default="", validator=attrs.validators.max_len(2000))


@attrs.frozen(kw_only=True)
class PolicyUpdate:
    """A policy's new content (``id``, if sent, must be the policy's)."""

    id: str | None = attrs.field(default=None, validator=OPTIONAL_ID)
    effect: Literal["allow", "deny"]
    target: str = attrs.field(validator=ID)
    condition: Mapping[str, Any] | None = None
    description: str = attrs.field(default="", validator=attrs.validators.max_len(2000))


@attrs.frozen(kw_only=True)
class PolicyOut:
    id: str
    effect: Literal["allow", "deny"]
    target: str
    condition: Mapping[str, Any] | None
    description: str
    source: str
    created_at: dt.datetime | None
    updated_at: dt.datetime | None


@attrs.frozen(kw_only=True)
class PolicyList:
    items: tuple[PolicyOut, ...]
