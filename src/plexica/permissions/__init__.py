"""Permission checks. The kernel ships the role-based check; ABAC builds on it."""

from __future__ import annotations

from plexica.permissions.rbac import ADMIN_ROLE, MEMBER_ROLE, RoleTable, matches

__all__ = ["ADMIN_ROLE", "MEMBER_ROLE", "RoleTable", "matches"]
