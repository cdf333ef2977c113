"""Who is in which team and workspace: what the engine needs of the identity tables.

:class:`SubjectDirectory` keeps the engine independent of the identity and workspace services;
:class:`SqlSubjectDirectory` answers it with plain queries over their tables (``team_members``,
``workspace_members`` from the tenant migrations ``tenant_0002`` and ``tenant_0003``), declared
here on a private ``MetaData`` so that nothing is registered twice in the tenant metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, final

import sqlalchemy as sa

__all__ = ["SqlSubjectDirectory", "SubjectDirectory"]

_metadata = sa.MetaData()
_team_members = sa.Table(
    "team_members", _metadata, sa.Column("team_id", sa.String(36)), sa.Column("user_id", sa.String(255))
)
_workspace_members = sa.Table(
    "workspace_members",
    _metadata,
    sa.Column("workspace_id", sa.String(36)),
    sa.Column("user_id", sa.String(255)),
    sa.Column("role", sa.String(20)),
)


class SubjectDirectory(Protocol):
    """Team and workspace memberships of users, read in a tenant session."""

    async def teams_of(self, session: Any, user_id: str) -> set[str]:
        """Ids of the teams ``user_id`` belongs to."""
        ...

    async def workspace_roles_of(self, session: Any, user_id: str) -> Mapping[str, str]:
        """``{workspace_id: role}`` (``admin``, ``member`` or ``viewer``) of every membership."""
        ...

    async def workspace_role(self, session: Any, user_id: str, workspace_id: str) -> str | None:
        """The user's role in one workspace, or None when they are not a member."""
        ...


@final
class SqlSubjectDirectory:
    """:class:`SubjectDirectory` over the identity tables of the tenant schema."""

    async def teams_of(self, session: Any, user_id: str) -> set[str]:
        rows = await session.execute(sa.select(_team_members.c.team_id).where(_team_members.c.user_id == user_id))
        return {row[0] for row in rows}

    async def workspace_roles_of(self, session: Any, user_id: str) -> Mapping[str, str]:
        members = _workspace_members.c
        rows = await session.execute(sa.select(members.workspace_id, members.role).where(members.user_id == user_id))
        return {row[0]: row[1] for row in rows}

    async def workspace_role(self, session: Any, user_id: str, workspace_id: str) -> str | None:
        members = _workspace_members.c
        role: str | None = await session.scalar(
            sa.select(members.role).where(members.user_id == user_id, members.workspace_id == workspace_id)
        )
        return role
