"""The permission engine: RBAC with system, plugin and custom roles, ABAC policies as data,
decisions that explain themselves, SQL data filtering, and versioned caching.

Start from :class:`PermissionEngine` (``platform.permissions``): ``authorize``, ``explain`` and
``subject``; :func:`authorized` filters a ``select()`` by the same rule; :class:`PermissionService`
changes roles, grants and policies.
"""

from __future__ import annotations

from plexica.permissions.abac import CompiledPolicy, compile_policy
from plexica.permissions.cache import PermissionCache
from plexica.permissions.conditions import parse_condition, policy_from_json, policy_to_json, validate_policy
from plexica.permissions.contributions import PluginContribution
from plexica.permissions.decision import Explanation, Grants, PolicyOutcome, RoleGrant, Subject, TenantModel
from plexica.permissions.directory import SqlSubjectDirectory, SubjectDirectory
from plexica.permissions.engine import PermissionEngine, client_ip
from plexica.permissions.filtering import access_clause, authorized, resource_of
from plexica.permissions.rbac import (
    ADMIN_ROLE,
    MEMBER_ROLE,
    SYSTEM_ROLES,
    WORKSPACE_ADMIN_ROLE,
    WORKSPACE_MEMBER_ROLE,
    WORKSPACE_ROLES,
    WORKSPACE_VIEWER_ROLE,
    PatternSet,
    RoleTable,
    is_permission_key,
    is_permission_pattern,
    matches,
)
from plexica.permissions.service import PermissionService, RoleInfo

__all__ = [
    "ADMIN_ROLE",
    "MEMBER_ROLE",
    "SYSTEM_ROLES",
    "WORKSPACE_ADMIN_ROLE",
    "WORKSPACE_MEMBER_ROLE",
    "WORKSPACE_ROLES",
    "WORKSPACE_VIEWER_ROLE",
    "CompiledPolicy",
    "Explanation",
    "Grants",
    "PatternSet",
    "PermissionCache",
    "PermissionEngine",
    "PermissionService",
    "PluginContribution",
    "PolicyOutcome",
    "RoleGrant",
    "RoleInfo",
    "RoleTable",
    "SqlSubjectDirectory",
    "Subject",
    "SubjectDirectory",
    "TenantModel",
    "access_clause",
    "authorized",
    "client_ip",
    "compile_policy",
    "is_permission_key",
    "is_permission_pattern",
    "matches",
    "parse_condition",
    "policy_from_json",
    "policy_to_json",
    "resource_of",
    "validate_policy",
]
