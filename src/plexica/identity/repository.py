"""Queries on user profiles, teams and the super-admin allow-list. Parameterized SQLAlchemy Core only.

Every method takes the connection it runs on: tenant tables need a tenant-bound connection
(``Database.tenant_connection``), ``core.super_admins`` a core one. The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.identity.models import (
    SuperAdmin,
    Team,
    TeamMember,
    UserProfile,
    super_admins,
    team_members,
    teams,
    users,
)
from plexica_sdk.errors import ConflictError

__all__ = ["SuperAdminRepository", "TeamRepository", "UserRepository", "aware", "insert_ignoring_duplicates", "now"]


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def aware(value: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes; everything we store is UTC.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _maybe(value: dt.datetime | None) -> dt.datetime | None:
    return aware(value) if value is not None else None


async def insert_ignoring_duplicates(
    conn: AsyncConnection, table: sa.Table, values: Mapping[str, Any], keys: Sequence[str]
) -> bool:
    """Insert a row unless one with the same ``keys`` exists; whether it was inserted.

    ``INSERT ... ON CONFLICT DO NOTHING`` on both dialects, so two requests racing to create the
    same row both succeed and exactly one inserts.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=list(keys))
    result = await conn.execute(statement)
    return bool(result.rowcount == 1)


def _profile(row: sa.Row[Any]) -> UserProfile:
    return UserProfile(
        id=row.id,
        username=row.username,
        email=row.email,
        display_name=row.display_name,
        status=row.status,
        created_at=aware(row.created_at),
        last_seen_at=aware(row.last_seen_at),
        updated_at=_maybe(row.updated_at),
        removed_at=_maybe(row.removed_at),
    )


@final
class UserRepository:
    """Reads and writes the tenant's ``users`` and drops a user's team memberships."""

    async def get(self, conn: AsyncConnection, user_id: str, *, for_update: bool = False) -> UserProfile | None:
        query = sa.select(users).where(users.c.id == user_id)
        if for_update:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        return _profile(row) if row is not None else None

    async def insert_if_absent(
        self,
        conn: AsyncConnection,
        *,
        user_id: str,
        username: str | None,
        email: str | None,
        display_name: str | None,
        at: dt.datetime,
    ) -> bool:
        """Create an active profile unless one exists; whether this call created it."""
        values = {
            "id": user_id,
            "username": username,
            "email": email,
            "display_name": display_name,
            "status": "active",
            "created_at": at,
            "last_seen_at": at,
            "updated_at": at,
        }
        return await insert_ignoring_duplicates(conn, users, values, ["id"])

    async def update_claims(
        self,
        conn: AsyncConnection,
        user_id: str,
        *,
        username: str | None,
        email: str | None,
        display_name: str | None,
        at: dt.datetime,
    ) -> None:
        await conn.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(username=username, email=email, display_name=display_name, updated_at=at, last_seen_at=at)
        )

    async def touch(self, conn: AsyncConnection, user_id: str, at: dt.datetime) -> None:
        await conn.execute(users.update().where(users.c.id == user_id).values(last_seen_at=at))

    async def set_status(self, conn: AsyncConnection, user_id: str, status: str, at: dt.datetime) -> None:
        await conn.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(status=status, updated_at=at, removed_at=at if status == "removed" else None)
        )

    async def page(
        self, conn: AsyncConnection, *, status: str | None, after: tuple[str, str] | None, limit: int
    ) -> list[UserProfile]:
        """Profiles ordered by username (empty first) then id, after the key ``after``."""
        name = sa.func.coalesce(users.c.username, "")
        query = sa.select(users).order_by(name, users.c.id).limit(limit)
        if status is not None:
            query = query.where(users.c.status == status)
        if after is not None:
            query = query.where(sa.tuple_(name, users.c.id) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
        return [_profile(row) for row in (await conn.execute(query)).all()]

    async def drop_team_memberships(self, conn: AsyncConnection, user_id: str) -> list[str]:
        """Remove ``user_id`` from every team; the ids of the teams they left."""
        rows = await conn.execute(
            team_members.delete().where(team_members.c.user_id == user_id).returning(team_members.c.team_id)
        )
        return sorted(row.team_id for row in rows)


def _team(row: sa.Row[Any]) -> Team:
    return Team(
        id=row.id,
        name=row.name,
        description=row.description,
        created_by=row.created_by,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        member_count=int(getattr(row, "member_count", 0) or 0),
    )


@final
class TeamRepository:
    """Reads and writes the tenant's ``teams`` and ``team_members``."""

    def _with_counts(self) -> sa.Select[Any]:
        count = (
            sa.select(sa.func.count())
            .select_from(team_members)
            .where(team_members.c.team_id == teams.c.id)
            .scalar_subquery()
        )
        return sa.select(teams, count.label("member_count"))

    async def get(self, conn: AsyncConnection, team_id: str) -> Team | None:
        row = (await conn.execute(self._with_counts().where(teams.c.id == team_id))).first()
        return _team(row) if row is not None else None

    async def page(self, conn: AsyncConnection, *, after: tuple[str, str] | None, limit: int) -> list[Team]:
        query = self._with_counts().order_by(teams.c.name, teams.c.id).limit(limit)
        if after is not None:
            query = query.where(
                sa.tuple_(teams.c.name, teams.c.id) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
            )
        return [_team(row) for row in (await conn.execute(query)).all()]

    async def name_taken(self, conn: AsyncConnection, name: str, *, besides: str | None = None) -> bool:
        query = sa.select(teams.c.id).where(sa.func.lower(teams.c.name) == name.lower())
        if besides is not None:
            query = query.where(teams.c.id != besides)
        return (await conn.scalar(query)) is not None

    async def insert(
        self, conn: AsyncConnection, *, team_id: str, name: str, description: str | None, created_by: str | None
    ) -> None:
        at = now()
        await conn.execute(
            teams.insert().values(
                id=team_id, name=name, description=description, created_by=created_by, created_at=at, updated_at=at
            )
        )

    async def update(self, conn: AsyncConnection, team_id: str, values: Mapping[str, Any]) -> None:
        await conn.execute(teams.update().where(teams.c.id == team_id).values(**values, updated_at=now()))

    async def delete(self, conn: AsyncConnection, team_id: str) -> bool:
        await conn.execute(team_members.delete().where(team_members.c.team_id == team_id))
        result = await conn.execute(teams.delete().where(teams.c.id == team_id))
        return bool(result.rowcount == 1)

    async def members(self, conn: AsyncConnection, team_id: str, *, after: str | None, limit: int) -> list[TeamMember]:
        query = (
            sa.select(team_members, users.c.username)
            .join(users, users.c.id == team_members.c.user_id)
            .where(team_members.c.team_id == team_id)
            .order_by(team_members.c.user_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(team_members.c.user_id > after)
        return [
            TeamMember(
                team_id=row.team_id, user_id=row.user_id, username=row.username, created_at=aware(row.created_at)
            )
            for row in (await conn.execute(query)).all()
        ]

    async def add_member(self, conn: AsyncConnection, team_id: str, user_id: str) -> bool:
        """Add a member unless they already are one; whether this call added them."""
        values = {"team_id": team_id, "user_id": user_id, "created_at": now()}
        return await insert_ignoring_duplicates(conn, team_members, values, ["team_id", "user_id"])

    async def remove_member(self, conn: AsyncConnection, team_id: str, user_id: str) -> bool:
        result = await conn.execute(
            team_members.delete().where(team_members.c.team_id == team_id, team_members.c.user_id == user_id)
        )
        return bool(result.rowcount == 1)


def _super_admin(row: sa.Row[Any]) -> SuperAdmin:
    return SuperAdmin(user_id=row.user_id, username=row.username, created_at=aware(row.created_at))


@final
class SuperAdminRepository:
    """Reads and writes ``core.super_admins`` on a core connection."""

    async def entries(self, conn: AsyncConnection) -> list[SuperAdmin]:
        rows = await conn.execute(sa.select(super_admins).order_by(super_admins.c.user_id))
        return [_super_admin(row) for row in rows.all()]

    async def ids(self, conn: AsyncConnection) -> frozenset[str]:
        return frozenset((await conn.scalars(sa.select(super_admins.c.user_id))).all())

    async def insert(self, conn: AsyncConnection, user_id: str, username: str | None) -> SuperAdmin:
        at = now()
        added = await insert_ignoring_duplicates(
            conn, super_admins, {"user_id": user_id, "username": username, "created_at": at}, ["user_id"]
        )
        if not added:
            raise ConflictError(f"{user_id!r} is already a super-admin", resource="super_admin")
        return SuperAdmin(user_id=user_id, username=username, created_at=at)

    async def lock_all(self, conn: AsyncConnection) -> list[str]:
        """The allow-list's ids, locked until the transaction ends (PostgreSQL; SQLite serializes writers)."""
        rows = await conn.execute(sa.select(super_admins.c.user_id).with_for_update())
        return [row.user_id for row in rows]

    async def delete(self, conn: AsyncConnection, user_id: str) -> bool:
        result = await conn.execute(super_admins.delete().where(super_admins.c.user_id == user_id))
        return bool(result.rowcount == 1)
