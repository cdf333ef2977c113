"""Queries on workspaces and their members. Parameterized SQLAlchemy Core only.

Every method takes a tenant-bound connection (``Database.tenant_connection``); the caller owns the
transaction. Two locks make the concurrent rules hold on PostgreSQL: :meth:`lock_tree` (a
transaction-scoped advisory lock per tenant) serializes changes of the tree's shape, and
:meth:`lock` (``SELECT ... FOR UPDATE`` on one workspace row) serializes changes of one
workspace's members. SQLite needs neither: every transaction there starts with ``BEGIN IMMEDIATE``,
so writers run one at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal, final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.identity.models import users
from plexica.identity.repository import aware, insert_ignoring_duplicates
from plexica.workspaces.models import Member, Workspace, workspace_members, workspaces

__all__ = ["ROOT", "WorkspaceRepository"]

#: ``parent`` filter value selecting the roots of the tree.
ROOT: Literal["root"] = "root"


def _workspace(row: sa.Row[Any]) -> Workspace:
    return Workspace(
        id=row.id,
        name=row.name,
        slug=row.slug,
        description=row.description,
        parent_id=row.parent_id,
        depth=row.depth,
        path=row.path,
        status=row.status,
        version=row.version,
        created_by=row.created_by,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        archived_at=aware(row.archived_at) if row.archived_at is not None else None,
        role=getattr(row, "role", None),
    )


def _member(row: sa.Row[Any]) -> Member:
    return Member(
        workspace_id=row.workspace_id,
        user_id=row.user_id,
        role=row.role,
        username=row.username,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
    )


@final
class WorkspaceRepository:
    """Reads and writes the tenant's ``workspaces`` and ``workspace_members``."""

    # ------------------------------------------------------------------ locks

    async def lock_tree(self, conn: AsyncConnection, schema: str) -> None:
        """Serialize changes of the tree's shape in ``schema`` until the transaction ends."""
        if conn.dialect.name == "postgresql":
            key = f"plexica:workspace-tree:{schema}"
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))

    async def lock(self, conn: AsyncConnection, workspace_id: str) -> Workspace | None:
        """Read a workspace and lock its row until the transaction ends (``None``: no such workspace)."""
        return await self.get(conn, workspace_id, for_update=True)

    # ------------------------------------------------------------------ reads

    async def get(
        self, conn: AsyncConnection, workspace_id: str, *, user_id: str | None = None, for_update: bool = False
    ) -> Workspace | None:
        """One workspace; with ``user_id``, carrying that user's role in it."""
        if user_id is None:
            query = sa.select(workspaces)
        else:
            on = sa.and_(workspace_members.c.workspace_id == workspaces.c.id, workspace_members.c.user_id == user_id)
            query = sa.select(workspaces, workspace_members.c.role).select_from(
                workspaces.outerjoin(workspace_members, on)
            )
        query = query.where(workspaces.c.id == workspace_id)
        if for_update:
            # Only the bare row is ever locked: PostgreSQL cannot lock the nullable side of the join.
            assert user_id is None, "lock the workspace row alone"
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        return _workspace(row) if row is not None else None

    async def page(
        self,
        conn: AsyncConnection,
        *,
        user_id: str,
        members_only: bool,
        parent: str | None,
        status: str | None,
        after: tuple[str, str] | None,
        limit: int,
    ) -> list[Workspace]:
        """Workspaces ordered by name then id, each with ``user_id``'s role.

        Args:
            members_only: only the workspaces ``user_id`` is a member of.
            parent: a parent's id, :data:`ROOT` for the roots, ``None`` for any.
            status: ``active``, ``archived``, or ``None`` for both.
            after: the ``(name, id)`` of the last item already returned.
        """
        on = sa.and_(workspace_members.c.workspace_id == workspaces.c.id, workspace_members.c.user_id == user_id)
        joined = workspaces.join(workspace_members, on) if members_only else workspaces.outerjoin(workspace_members, on)
        query = (
            sa.select(workspaces, workspace_members.c.role)
            .select_from(joined)
            .order_by(workspaces.c.name, workspaces.c.id)
            .limit(limit)
        )
        if parent == ROOT:
            query = query.where(workspaces.c.parent_id.is_(None))
        elif parent is not None:
            query = query.where(workspaces.c.parent_id == parent)
        if status is not None:
            query = query.where(workspaces.c.status == status)
        if after is not None:
            query = query.where(
                sa.tuple_(workspaces.c.name, workspaces.c.id) > sa.tuple_(sa.literal(after[0]), sa.literal(after[1]))
            )
        return [_workspace(row) for row in (await conn.execute(query)).all()]

    async def slug_taken(self, conn: AsyncConnection, slug: str, *, besides: str | None = None) -> bool:
        query = sa.select(workspaces.c.id).where(workspaces.c.slug == slug)
        if besides is not None:
            query = query.where(workspaces.c.id != besides)
        return (await conn.scalar(query)) is not None

    async def subtree_depth(self, conn: AsyncConnection, path: str) -> int:
        """The greatest depth in the subtree at ``path`` (its root included)."""
        deepest = await conn.scalar(
            sa.select(sa.func.max(workspaces.c.depth)).where(workspaces.c.path.startswith(path, autoescape=True))
        )
        return int(deepest or 0)

    async def subtree_ids(self, conn: AsyncConnection, path: str) -> list[str]:
        rows = await conn.execute(sa.select(workspaces.c.id).where(workspaces.c.path.startswith(path, autoescape=True)))
        return [row.id for row in rows]

    # ----------------------------------------------------------------- writes

    async def insert(self, conn: AsyncConnection, values: Mapping[str, Any]) -> None:
        await conn.execute(workspaces.insert().values(**values))

    async def update(
        self, conn: AsyncConnection, workspace_id: str, version: int, values: Mapping[str, Any], at: dt.datetime
    ) -> bool:
        """Change an active workspace if it is still at ``version``; whether it was changed."""
        result = await conn.execute(
            workspaces.update()
            .where(workspaces.c.id == workspace_id, workspaces.c.version == version, workspaces.c.status == "active")
            .values(**values, version=workspaces.c.version + 1, updated_at=at)
        )
        return bool(result.rowcount == 1)

    async def archive_subtree(self, conn: AsyncConnection, path: str, at: dt.datetime) -> list[str]:
        """Archive every active workspace of the subtree at ``path``; the ids archived, by depth."""
        in_subtree = workspaces.c.path.startswith(path, autoescape=True)
        rows = await conn.execute(
            sa.select(workspaces.c.id)
            .where(in_subtree, workspaces.c.status == "active")
            .order_by(workspaces.c.depth, workspaces.c.id)
        )
        ids = [row.id for row in rows]
        if ids:
            await conn.execute(
                workspaces.update()
                .where(workspaces.c.id.in_(ids))
                .values(status="archived", archived_at=at, updated_at=at, version=workspaces.c.version + 1)
            )
        return ids

    async def restore_subtree(
        self, conn: AsyncConnection, path: str, archived_at: dt.datetime, at: dt.datetime
    ) -> list[str]:
        """Restore the workspaces of the subtree at ``path`` archived together (at ``archived_at``).

        Descendants archived on their own, earlier, stay archived.
        """
        in_batch = sa.and_(
            workspaces.c.path.startswith(path, autoescape=True),
            workspaces.c.status == "archived",
            workspaces.c.archived_at == archived_at,
        )
        rows = await conn.execute(
            sa.select(workspaces.c.id).where(in_batch).order_by(workspaces.c.depth, workspaces.c.id)
        )
        ids = [row.id for row in rows]
        if ids:
            await conn.execute(
                workspaces.update()
                .where(workspaces.c.id.in_(ids))
                .values(status="active", archived_at=None, updated_at=at, version=workspaces.c.version + 1)
            )
        return ids

    async def move_subtree(
        self, conn: AsyncConnection, workspace: Workspace, parent_id: str | None, new_path: str, at: dt.datetime
    ) -> None:
        """Put ``workspace`` (and its subtree) under ``parent_id``, its path becoming ``new_path``."""
        old_path = workspace.path
        delta = new_path.count("/") - old_path.count("/")
        await conn.execute(
            workspaces.update()
            .where(workspaces.c.path.startswith(old_path, autoescape=True))
            .values(
                path=sa.literal(new_path) + sa.func.substr(workspaces.c.path, len(old_path) + 1),
                depth=workspaces.c.depth + delta,
                version=workspaces.c.version + 1,
                updated_at=at,
            )
        )
        await conn.execute(workspaces.update().where(workspaces.c.id == workspace.id).values(parent_id=parent_id))

    # ---------------------------------------------------------------- members

    async def role_of(self, conn: AsyncConnection, workspace_id: str, user_id: str) -> str | None:
        return await conn.scalar(
            sa.select(workspace_members.c.role).where(
                workspace_members.c.workspace_id == workspace_id, workspace_members.c.user_id == user_id
            )
        )

    async def members(self, conn: AsyncConnection, workspace_id: str, *, after: str | None, limit: int) -> list[Member]:
        query = (
            sa.select(workspace_members, users.c.username)
            .join(users, users.c.id == workspace_members.c.user_id)
            .where(workspace_members.c.workspace_id == workspace_id)
            .order_by(workspace_members.c.user_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(workspace_members.c.user_id > after)
        return [_member(row) for row in (await conn.execute(query)).all()]

    async def member(self, conn: AsyncConnection, workspace_id: str, user_id: str) -> Member | None:
        row = (
            await conn.execute(
                sa.select(workspace_members, users.c.username)
                .join(users, users.c.id == workspace_members.c.user_id)
                .where(workspace_members.c.workspace_id == workspace_id, workspace_members.c.user_id == user_id)
            )
        ).first()
        return _member(row) if row is not None else None

    async def admin_count(self, conn: AsyncConnection, workspace_id: str) -> int:
        count = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(workspace_members)
            .where(workspace_members.c.workspace_id == workspace_id, workspace_members.c.role == "admin")
        )
        return int(count or 0)

    async def add_member(
        self, conn: AsyncConnection, workspace_id: str, user_id: str, role: str, at: dt.datetime
    ) -> bool:
        """Add a member unless they already are one; whether this call added them."""
        values = {"workspace_id": workspace_id, "user_id": user_id, "role": role, "created_at": at, "updated_at": at}
        return await insert_ignoring_duplicates(conn, workspace_members, values, ["workspace_id", "user_id"])

    async def set_role(
        self, conn: AsyncConnection, workspace_id: str, user_id: str, role: str, at: dt.datetime
    ) -> None:
        await conn.execute(
            workspace_members.update()
            .where(workspace_members.c.workspace_id == workspace_id, workspace_members.c.user_id == user_id)
            .values(role=role, updated_at=at)
        )

    async def remove_member(self, conn: AsyncConnection, workspace_id: str, user_id: str) -> None:
        await conn.execute(
            workspace_members.delete().where(
                workspace_members.c.workspace_id == workspace_id, workspace_members.c.user_id == user_id
            )
        )

    async def drop_user(self, conn: AsyncConnection, user_id: str) -> list[tuple[str, str]]:
        """Remove ``user_id`` from every workspace; the ``(workspace id, role)`` pairs they had."""
        rows = await conn.execute(
            workspace_members.delete()
            .where(workspace_members.c.user_id == user_id)
            .returning(workspace_members.c.workspace_id, workspace_members.c.role)
        )
        return sorted((row.workspace_id, row.role) for row in rows)
