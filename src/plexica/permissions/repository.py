"""Queries over the permission tables of one tenant; every method takes the tenant session."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, final

import attrs
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from plexica.permissions import models
from plexica.permissions.conditions import policy_to_json
from plexica.permissions.rbac import SYSTEM_ROLES
from plexica_sdk.errors import ConflictError
from plexica_sdk.types import PermissionDef, Policy, RoleDef

__all__ = ["GrantRow", "ModelRows", "PermissionRepository", "PolicyRow", "RoleRow"]

CUSTOM = "custom"
TENANT = "tenant"


def plugin_source(plugin: str) -> str:
    return f"plugin:{plugin}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.frozen
class RoleRow:
    name: str
    source: str
    description: str


@attrs.frozen
class GrantRow:
    id: str
    role: str
    subject_type: str
    subject_id: str
    workspace_id: str | None
    created_by: str | None = None
    created_at: dt.datetime | None = None


@attrs.frozen
class PolicyRow:
    policy: Policy
    source: str
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@attrs.frozen
class ModelRows:
    """Everything a tenant model is compiled from."""

    roles: tuple[RoleRow, ...]
    role_permissions: tuple[tuple[str, str, str], ...]
    policies: tuple[PolicyRow, ...]


def _grant(row: Any) -> GrantRow:
    return GrantRow(
        id=row.id,
        role=row.role,
        subject_type=row.subject_type,
        subject_id=row.subject_id,
        workspace_id=row.workspace_id or None,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def _policy(row: Any) -> PolicyRow:
    policy = Policy(
        id=row.id, effect=row.effect, target=row.target, condition=row.condition, description=row.description
    )
    return PolicyRow(policy=policy, source=row.source, created_at=row.created_at, updated_at=row.updated_at)


@final
class PermissionRepository:
    """Stateless; one instance serves every tenant."""

    # ------------------------------------------------------------- the model

    async def model_rows(self, session: AsyncSession) -> ModelRows:
        roles = (await session.execute(sa.select(models.roles).order_by(models.roles.c.name))).all()
        patterns = (await session.execute(sa.select(models.role_permissions))).all()
        policies = (await session.execute(sa.select(models.policies).order_by(models.policies.c.id))).all()
        return ModelRows(
            roles=tuple(RoleRow(r.name, r.source, r.description) for r in roles),
            role_permissions=tuple((r.role, r.pattern, r.source) for r in patterns),
            policies=tuple(_policy(r) for r in policies),
        )

    @staticmethod
    def subject_query(directory: Any) -> sa.CompoundSelect[Any]:
        """One statement for a user's teams, workspace roles and grants; the user is ``:user_id``.

        Rows are ``(kind, a, b, c, d)``: ``("t", team_id)``, ``("w", workspace_id, role)`` and
        ``("g", role, workspace_id, subject_type, subject_id)``. Build it once and reuse it.

        Args:
            directory: a ``SubjectDirectory``, whose statements get the bind parameter.
        """
        user = sa.bindparam("user_id", type_=sa.String(255))
        g = models.grants.c
        text = sa.String(255)
        none = sa.cast(sa.null(), text)
        teams, memberships = directory.teams_of(user).subquery(), directory.workspace_roles_of(user).subquery()
        subject = sa.or_(
            sa.and_(g.subject_type == "user", g.subject_id == user),
            sa.and_(g.subject_type == "team", g.subject_id.in_(directory.teams_of(user))),
        )
        return sa.union_all(
            sa.select(sa.literal_column("'t'", text), sa.cast(teams.c[0], text), none, none, none),
            sa.select(
                sa.literal_column("'w'", text),
                sa.cast(memberships.c[0], text),
                sa.cast(memberships.c[1], text),
                none,
                none,
            ),
            sa.select(sa.literal_column("'g'", text), g.role, g.workspace_id, g.subject_type, g.subject_id).where(
                subject
            ),
        )

    async def subject_rows(
        self, session: AsyncSession, query: sa.CompoundSelect[Any], user_id: str
    ) -> tuple[set[str], dict[str, str], list[tuple[str, str | None, str]]]:
        """A user's teams, workspace roles and grants (``(role, workspace_id, source)``), in one query.

        Args:
            query: the statement of :meth:`subject_query`.
        """
        found_teams: set[str] = set()
        found_workspaces: dict[str, str] = {}
        found_grants: list[tuple[str, str | None, str]] = []
        for kind, a, b, c, d in (await session.execute(query, {"user_id": user_id})).all():
            if kind == "t":
                found_teams.add(a)
            elif kind == "w":
                found_workspaces[a] = b
            else:
                found_grants.append((a, b or None, "user" if c == "user" else f"team:{d}"))
        return found_teams, found_workspaces, found_grants

    # --------------------------------------------------------------- plugins

    async def registered_plugins(self, session: AsyncSession) -> dict[str, str]:
        rows = (await session.execute(sa.select(models.plugins.c.plugin, models.plugins.c.fingerprint))).all()
        return {r.plugin: r.fingerprint for r in rows}

    async def register_plugin(
        self,
        session: AsyncSession,
        *,
        plugin: str,
        version: str,
        fingerprint: str,
        permissions: Sequence[PermissionDef],
        roles: Sequence[RoleDef],
        policies: Sequence[Policy],
        reserved_keys: Mapping[str, str],
    ) -> None:
        """Record what ``plugin`` contributes to this tenant, replacing an earlier registration.

        Raises:
            ConflictError: a permission key belongs to another plugin (``reserved_keys`` lists
                the built-ins'), or a role the plugin defines is a custom role of the tenant.
        """
        keys = [p.key for p in permissions]
        owners = dict(reserved_keys)
        if keys:
            d = models.definitions.c
            rows = (await session.execute(sa.select(d.key, d.plugin).where(d.key.in_(keys)))).all()
            owners.update((row.key, row.plugin) for row in rows)
        for key in keys:
            owner = owners.get(key)
            if owner is not None and owner != plugin:
                raise ConflictError(f"permission {key!r} is already defined by plugin {owner!r}", resource="permission")
        own_roles = sorted({role.name for role in roles} - SYSTEM_ROLES)
        if own_roles:
            r = models.roles.c
            taken = await session.scalar(sa.select(r.name).where(r.name.in_(own_roles), r.source == CUSTOM).limit(1))
            if taken is not None:
                raise ConflictError(f"role {taken!r} is already a custom role of this tenant", resource="role")
        await self.unregister_plugin(session, plugin)
        source, now = plugin_source(plugin), _now()
        if permissions:
            await session.execute(
                models.definitions.insert(),
                [{"key": p.key, "plugin": plugin, "description": p.description[:1000]} for p in permissions],
            )
        described = {role.name: role.description for role in roles}
        if own_roles:
            await session.execute(
                models.roles.insert(),
                [
                    {
                        "name": n,
                        "source": source,
                        "description": described[n][:1000],
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in own_roles
                ],
            )
        pairs = sorted({(role.name, pattern) for role in roles for pattern in role.permissions})
        if pairs:
            await session.execute(
                models.role_permissions.insert(), [{"role": r, "pattern": p, "source": source} for r, p in pairs]
            )
        for policy in policies:
            await self.insert_policy(session, attrs.evolve(policy, id=f"{plugin}:{policy.id}"), source=source)
        await session.execute(
            models.plugins.insert().values(plugin=plugin, version=version, fingerprint=fingerprint, registered_at=now)
        )

    async def unregister_plugin(self, session: AsyncSession, plugin: str) -> None:
        """Remove what ``plugin`` contributed (grants of its roles stay, inert until it returns)."""
        source = plugin_source(plugin)
        await session.execute(models.definitions.delete().where(models.definitions.c.plugin == plugin))
        await session.execute(models.roles.delete().where(models.roles.c.source == source))
        await session.execute(models.role_permissions.delete().where(models.role_permissions.c.source == source))
        await session.execute(models.policies.delete().where(models.policies.c.source == source))
        await session.execute(models.plugins.delete().where(models.plugins.c.plugin == plugin))

    async def definitions(self, session: AsyncSession) -> list[PermissionDef]:
        d = models.definitions.c
        rows = (await session.execute(sa.select(d.key, d.description).order_by(d.key))).all()
        return [PermissionDef(key=r.key, description=r.description) for r in rows]

    # ----------------------------------------------------------------- roles

    async def role_sources(self, session: AsyncSession, name: str) -> set[str]:
        r = models.roles.c
        return set((await session.execute(sa.select(r.source).where(r.name == name))).scalars())

    async def count_custom_roles(self, session: AsyncSession) -> int:
        r = models.roles.c
        return int(await session.scalar(sa.select(sa.func.count()).where(r.source == CUSTOM)) or 0)

    async def save_custom_role(
        self, session: AsyncSession, name: str, description: str, patterns: Iterable[str], *, create: bool
    ) -> None:
        now = _now()
        if create:
            await session.execute(
                models.roles.insert().values(
                    name=name, source=CUSTOM, description=description, created_at=now, updated_at=now
                )
            )
        else:
            await session.execute(
                models.roles.update()
                .where(models.roles.c.name == name, models.roles.c.source == CUSTOM)
                .values(description=description, updated_at=now)
            )
        rp = models.role_permissions
        await session.execute(rp.delete().where(rp.c.role == name, rp.c.source == CUSTOM))
        rows = [{"role": name, "pattern": p, "source": CUSTOM} for p in sorted(set(patterns))]
        if rows:
            await session.execute(rp.insert(), rows)

    async def delete_custom_role(self, session: AsyncSession, name: str) -> None:
        await session.execute(models.roles.delete().where(models.roles.c.name == name, models.roles.c.source == CUSTOM))
        rp = models.role_permissions
        await session.execute(rp.delete().where(rp.c.role == name, rp.c.source == CUSTOM))
        await session.execute(models.grants.delete().where(models.grants.c.role == name))

    # ---------------------------------------------------------------- grants

    async def list_grants(
        self,
        session: AsyncSession,
        *,
        role: str | None = None,
        subject: tuple[str, str] | None = None,
    ) -> list[GrantRow]:
        g = models.grants.c
        query = sa.select(models.grants).order_by(g.role, g.subject_type, g.subject_id, g.workspace_id)
        if role is not None:
            query = query.where(g.role == role)
        if subject is not None:
            query = query.where(g.subject_type == subject[0], g.subject_id == subject[1])
        return [_grant(r) for r in (await session.execute(query)).all()]

    async def find_grant(
        self, session: AsyncSession, role: str, subject_type: str, subject_id: str, workspace_id: str | None
    ) -> GrantRow | None:
        g = models.grants.c
        row = (
            await session.execute(
                sa.select(models.grants).where(
                    g.role == role,
                    g.subject_type == subject_type,
                    g.subject_id == subject_id,
                    g.workspace_id == (workspace_id or models.TENANT_WIDE),
                )
            )
        ).first()
        return None if row is None else _grant(row)

    async def get_grant(self, session: AsyncSession, grant_id: str) -> GrantRow | None:
        row = (await session.execute(sa.select(models.grants).where(models.grants.c.id == grant_id))).first()
        return None if row is None else _grant(row)

    async def count_grants_of(self, session: AsyncSession, subject_type: str, subject_id: str) -> int:
        g = models.grants.c
        query = sa.select(sa.func.count()).where(g.subject_type == subject_type, g.subject_id == subject_id)
        return int(await session.scalar(query) or 0)

    async def insert_grant(
        self,
        session: AsyncSession,
        role: str,
        subject_type: str,
        subject_id: str,
        workspace_id: str | None,
        created_by: str | None,
    ) -> GrantRow:
        grant = GrantRow(
            id=str(uuid.uuid4()),
            role=role,
            subject_type=subject_type,
            subject_id=subject_id,
            workspace_id=workspace_id,
            created_by=created_by,
            created_at=_now(),
        )
        values = attrs.asdict(grant)
        values["workspace_id"] = workspace_id or models.TENANT_WIDE
        await session.execute(models.grants.insert().values(**values))
        return grant

    async def delete_grant(self, session: AsyncSession, grant_id: str) -> None:
        await session.execute(models.grants.delete().where(models.grants.c.id == grant_id))

    # -------------------------------------------------------------- policies

    async def list_policies(self, session: AsyncSession) -> list[PolicyRow]:
        p = models.policies
        return [_policy(r) for r in (await session.execute(sa.select(p).order_by(p.c.id))).all()]

    async def get_policy(self, session: AsyncSession, policy_id: str) -> PolicyRow | None:
        row = (await session.execute(sa.select(models.policies).where(models.policies.c.id == policy_id))).first()
        return None if row is None else _policy(row)

    async def count_policies(self, session: AsyncSession, source: str = TENANT) -> int:
        p = models.policies.c
        return int(await session.scalar(sa.select(sa.func.count()).where(p.source == source)) or 0)

    async def insert_policy(self, session: AsyncSession, policy: Policy, *, source: str = TENANT) -> None:
        now = _now()
        await session.execute(
            models.policies.insert().values(
                id=policy.id,
                effect=policy.effect,
                target=policy.target,
                condition=policy_to_json(policy)["condition"],
                description=policy.description,
                source=source,
                created_at=now,
                updated_at=now,
            )
        )

    async def update_policy(self, session: AsyncSession, policy: Policy) -> None:
        await session.execute(
            models.policies.update()
            .where(models.policies.c.id == policy.id)
            .values(
                effect=policy.effect,
                target=policy.target,
                condition=policy_to_json(policy)["condition"],
                description=policy.description,
                updated_at=_now(),
            )
        )

    async def delete_policy(self, session: AsyncSession, policy_id: str) -> None:
        await session.execute(models.policies.delete().where(models.policies.c.id == policy_id))
