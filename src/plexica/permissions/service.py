"""Rules for changing a tenant's roles, grants and policies; every change invalidates the caches.

Limits (per tenant): :data:`MAX_CUSTOM_ROLES` custom roles of at most :data:`MAX_ROLE_PATTERNS`
patterns, :data:`MAX_GRANTS_PER_SUBJECT` grants per user or team, :data:`MAX_POLICIES` policies.
Validation errors name the offending field (``permissions[2]``, ``condition.all[0].operator``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, Literal, final

import attrs
from sqlalchemy.exc import IntegrityError

from plexica.permissions.conditions import validate_policy
from plexica.permissions.engine import PermissionEngine
from plexica.permissions.rbac import SYSTEM_ROLES, is_permission_pattern
from plexica.permissions.repository import CUSTOM, TENANT, GrantRow, PermissionRepository, PolicyRow
from plexica_sdk.errors import ConflictError, NotFoundError, ValidationError
from plexica_sdk.types import Policy, TenantContext

__all__ = [
    "MAX_CUSTOM_ROLES",
    "MAX_GRANTS_PER_SUBJECT",
    "MAX_POLICIES",
    "MAX_ROLE_PATTERNS",
    "PermissionService",
    "RoleInfo",
]

MAX_CUSTOM_ROLES: Final = 100
MAX_ROLE_PATTERNS: Final = 200
MAX_GRANTS_PER_SUBJECT: Final = 200
MAX_POLICIES: Final = 200
ROLE_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")
_ID_RE: Final = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")


@attrs.frozen(kw_only=True)
class RoleInfo:
    """A role of a tenant: ``system`` (immutable), ``plugin`` (from installed plugins) or ``custom``."""

    name: str
    kind: Literal["system", "plugin", "custom"]
    permissions: tuple[str, ...]
    description: str = ""
    plugins: tuple[str, ...] = ()


def _check_id(value: Any, field: str, max_length: int = 255) -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value) or len(value) > max_length:
        raise ValidationError(f"{field} must be a string of 1 to {max_length} printable characters", field=field)
    return value


@final
class PermissionService:
    """CRUD over roles, grants and policies of one tenant at a time (the ``ctx`` argument)."""

    def __init__(self, db: Any, engine: PermissionEngine) -> None:
        self.db = db
        self.engine = engine
        self.repo = PermissionRepository()

    # ----------------------------------------------------------------- roles

    async def list_roles(self, ctx: TenantContext) -> list[RoleInfo]:
        """Every role of the tenant with the patterns it grants, by name."""
        model = await self.engine.model(ctx)
        async with self.db.tenant_session(ctx.schema) as session:
            rows = await self.repo.model_rows(session)
        sources: dict[str, list[str]] = {}
        descriptions: dict[str, str] = {}
        for row in rows.roles:
            sources.setdefault(row.name, []).append(row.source)
            descriptions.setdefault(row.name, row.description)
        found = []
        for name in sorted(model.roles):
            kinds = sources.get(name, [])
            kind: Literal["system", "plugin", "custom"] = (
                "system" if name in SYSTEM_ROLES else "custom" if CUSTOM in kinds else "plugin"
            )
            plugins = tuple(sorted(s.removeprefix("plugin:") for s in kinds if s.startswith("plugin:")))
            patterns = tuple(sorted(model.roles[name]))
            found.append(
                RoleInfo(
                    name=name, kind=kind, permissions=patterns, description=descriptions.get(name, ""), plugins=plugins
                )
            )
        return found

    async def get_role(self, ctx: TenantContext, name: str) -> RoleInfo:
        """One role. Raises ``NotFoundError``."""
        for role in await self.list_roles(ctx):
            if role.name == name:
                return role
        raise NotFoundError(f"no role {name[:64]!r}", resource="role")

    @staticmethod
    def _check_role(name: Any, permissions: Any, description: Any) -> tuple[str, list[str], str]:
        if not isinstance(name, str) or not ROLE_NAME_RE.fullmatch(name):
            raise ValidationError("name must be 2-63 lowercase letters, digits, '_' or '-'", field="name")
        if not isinstance(permissions, list | tuple) or len(permissions) > MAX_ROLE_PATTERNS:
            raise ValidationError(
                f"permissions must be a list of at most {MAX_ROLE_PATTERNS} patterns", field="permissions"
            )
        for index, pattern in enumerate(permissions):
            if not isinstance(pattern, str) or not is_permission_pattern(pattern):
                raise ValidationError(
                    "not a permission pattern such as notes:note:read or notes:*", field=f"permissions[{index}]"
                )
        if not isinstance(description, str) or len(description) > 1000:
            raise ValidationError("description must be a string of at most 1000 characters", field="description")
        return name, list(permissions), description

    async def create_role(
        self, ctx: TenantContext, name: str, permissions: Sequence[str], description: str = ""
    ) -> RoleInfo:
        """Create a custom role.

        Raises:
            ValidationError: a bad name or pattern (the field is named), or the tenant's limit.
            ConflictError: the name is taken by a system, plugin or custom role.
        """
        name, patterns, description = self._check_role(name, permissions, description)
        if name in SYSTEM_ROLES:
            raise ConflictError(f"{name} is a system role", resource="role")
        try:
            async with self.db.tenant_session(ctx.schema) as session:
                if await self.repo.role_sources(session, name):
                    raise ConflictError(f"role {name!r} exists", resource="role")
                if await self.repo.count_custom_roles(session) >= MAX_CUSTOM_ROLES:
                    raise ValidationError(f"a tenant has at most {MAX_CUSTOM_ROLES} custom roles", field="name")
                await self.repo.save_custom_role(session, name, description, patterns, create=True)
        except IntegrityError:
            raise ConflictError(f"role {name!r} exists", resource="role") from None
        await self.engine.invalidate_tenant(ctx)
        return await self.get_role(ctx, name)

    async def update_role(
        self, ctx: TenantContext, name: str, permissions: Sequence[str], description: str = ""
    ) -> RoleInfo:
        """Replace a custom role's patterns and description. System and plugin roles are immutable."""
        name, patterns, description = self._check_role(name, permissions, description)
        async with self.db.tenant_session(ctx.schema) as session:
            await self._custom(session, name)
            await self.repo.save_custom_role(session, name, description, patterns, create=False)
        await self.engine.invalidate_tenant(ctx)
        return await self.get_role(ctx, name)

    async def delete_role(self, ctx: TenantContext, name: str) -> None:
        """Delete a custom role and every grant of it."""
        async with self.db.tenant_session(ctx.schema) as session:
            await self._custom(session, name)
            await self.repo.delete_custom_role(session, name)
        await self.engine.invalidate_tenant(ctx)

    async def _custom(self, session: Any, name: str) -> None:
        if name in SYSTEM_ROLES:
            raise ConflictError(f"{name} is a system role and cannot be changed", resource="role")
        sources = await self.repo.role_sources(session, name)
        if not sources:
            raise NotFoundError(f"no role {name[:64]!r}", resource="role")
        if CUSTOM not in sources:
            raise ConflictError(f"role {name!r} belongs to a plugin and cannot be changed", resource="role")

    # ---------------------------------------------------------------- grants

    @staticmethod
    def _subject(user_id: str | None, team_id: str | None) -> tuple[str, str]:
        if (user_id is None) == (team_id is None):
            raise ValidationError("give exactly one of user_id and team_id", field="user_id")
        if user_id is not None:
            return "user", _check_id(user_id, "user_id")
        return "team", _check_id(team_id, "team_id", 36)

    async def list_grants(
        self, ctx: TenantContext, *, role: str | None = None, user_id: str | None = None, team_id: str | None = None
    ) -> list[GrantRow]:
        subject = None if user_id is None and team_id is None else self._subject(user_id, team_id)
        async with self.db.tenant_session(ctx.schema) as session:
            return await self.repo.list_grants(session, role=role, subject=subject)

    async def grant(
        self,
        ctx: TenantContext,
        role: str,
        *,
        user_id: str | None = None,
        team_id: str | None = None,
        workspace_id: str | None = None,
        granted_by: str | None = None,
    ) -> GrantRow:
        """Grant ``role`` to a user or team, tenant-wide or in one workspace (idempotent).

        Raises:
            ValidationError: a bad field, or the subject's limit is reached.
            NotFoundError: the role does not exist.
        """
        subject_type, subject_id = self._subject(user_id, team_id)
        if workspace_id is not None:
            _check_id(workspace_id, "workspace_id", 36)
        if not isinstance(role, str) or role not in (await self.engine.model(ctx)).roles:
            raise NotFoundError(f"no role {str(role)[:64]!r}", resource="role")
        try:
            async with self.db.tenant_session(ctx.schema) as session:
                found = await self.repo.find_grant(session, role, subject_type, subject_id, workspace_id)
                if found is not None:
                    return found
                if await self.repo.count_grants_of(session, subject_type, subject_id) >= MAX_GRANTS_PER_SUBJECT:
                    raise ValidationError(
                        f"a {subject_type} holds at most {MAX_GRANTS_PER_SUBJECT} grants", field="role"
                    )
                grant = await self.repo.insert_grant(session, role, subject_type, subject_id, workspace_id, granted_by)
        except IntegrityError:  # granted concurrently: the same grant exists
            async with self.db.tenant_session(ctx.schema) as session:
                existing = await self.repo.find_grant(session, role, subject_type, subject_id, workspace_id)
            if existing is None:
                raise
            return existing
        await self._invalidate(ctx, grant)
        return grant

    async def revoke(
        self,
        ctx: TenantContext,
        role: str,
        *,
        user_id: str | None = None,
        team_id: str | None = None,
        workspace_id: str | None = None,
    ) -> GrantRow:
        """Revoke a grant given by its role, subject and workspace. Raises ``NotFoundError``."""
        subject_type, subject_id = self._subject(user_id, team_id)
        async with self.db.tenant_session(ctx.schema) as session:
            found = await self.repo.find_grant(session, role, subject_type, subject_id, workspace_id)
            if found is None:
                raise NotFoundError("no such grant", resource="grant")
            await self.repo.delete_grant(session, found.id)
        await self._invalidate(ctx, found)
        return found

    async def revoke_grant(self, ctx: TenantContext, grant_id: str) -> GrantRow:
        """Revoke a grant by id. Raises ``NotFoundError``."""
        async with self.db.tenant_session(ctx.schema) as session:
            found = await self.repo.get_grant(session, grant_id)
            if found is None:
                raise NotFoundError("no such grant", resource="grant")
            await self.repo.delete_grant(session, grant_id)
        await self._invalidate(ctx, found)
        return found

    async def _invalidate(self, ctx: TenantContext, grant: GrantRow) -> None:
        if grant.subject_type == "user":
            await self.engine.invalidate_user(ctx, grant.subject_id)
        else:  # every member of the team is affected
            await self.engine.invalidate_tenant(ctx)

    # -------------------------------------------------------------- policies

    async def list_policies(self, ctx: TenantContext) -> list[PolicyRow]:
        async with self.db.tenant_session(ctx.schema) as session:
            return await self.repo.list_policies(session)

    async def get_policy(self, ctx: TenantContext, policy_id: str) -> PolicyRow:
        async with self.db.tenant_session(ctx.schema) as session:
            found = await self.repo.get_policy(session, policy_id)
        if found is None:
            raise NotFoundError(f"no policy {policy_id[:64]!r}", resource="policy")
        return found

    @staticmethod
    def _check_policy(policy: Policy) -> None:
        validate_policy(policy)
        if ":" in policy.id:
            raise ValidationError("id must not contain ':' (reserved for plugin policies)", field="id")

    async def create_policy(self, ctx: TenantContext, policy: Policy) -> PolicyRow:
        """Store a tenant policy.

        Raises:
            ValidationError: naming the offending field, or the tenant's limit is reached.
            ConflictError: a policy with that id exists.
        """
        self._check_policy(policy)
        try:
            async with self.db.tenant_session(ctx.schema) as session:
                if await self.repo.get_policy(session, policy.id) is not None:
                    raise ConflictError(f"policy {policy.id!r} exists", resource="policy")
                if await self.repo.count_policies(session) >= MAX_POLICIES:
                    raise ValidationError(f"a tenant has at most {MAX_POLICIES} policies", field="id")
                await self.repo.insert_policy(session, policy, source=TENANT)
        except IntegrityError:
            raise ConflictError(f"policy {policy.id!r} exists", resource="policy") from None
        await self.engine.invalidate_tenant(ctx)
        return await self.get_policy(ctx, policy.id)

    async def update_policy(self, ctx: TenantContext, policy_id: str, policy: Policy) -> PolicyRow:
        """Replace a tenant policy (the id in the body must match). Plugin policies are immutable."""
        if policy.id != policy_id:
            raise ValidationError("the id in the body must match the policy's", field="id")
        self._check_policy(policy)
        async with self.db.tenant_session(ctx.schema) as session:
            await self._tenant_policy(session, policy_id)
            await self.repo.update_policy(session, policy)
        await self.engine.invalidate_tenant(ctx)
        return await self.get_policy(ctx, policy_id)

    async def delete_policy(self, ctx: TenantContext, policy_id: str) -> None:
        async with self.db.tenant_session(ctx.schema) as session:
            await self._tenant_policy(session, policy_id)
            await self.repo.delete_policy(session, policy_id)
        await self.engine.invalidate_tenant(ctx)

    async def _tenant_policy(self, session: Any, policy_id: str) -> None:
        found = await self.repo.get_policy(session, policy_id)
        if found is None:
            raise NotFoundError(f"no policy {policy_id[:64]!r}", resource="policy")
        if found.source != TENANT:
            raise ConflictError(f"policy {policy_id!r} belongs to a plugin and cannot be changed", resource="policy")
