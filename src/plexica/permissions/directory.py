"""Who is in which team and workspace: what the engine needs of the identity tables.

:class:`SubjectDirectory` keeps the engine independent of the identity and workspace services.
It hands out ``SELECT`` statements rather than answers, so the engine reads a user's teams,
workspace memberships and grants in one round trip, with a statement built once per engine
(``user`` is then a bind parameter): the first check of a user is dominated by that read.

:class:`SqlSubjectDirectory` selects from the identity tables (``team_members`` and
``workspace_members`` of the tenant migrations ``tenant_0002`` and ``tenant_0003``), declared
here on a private ``MetaData`` so that nothing is registered twice in the tenant metadata.
"""

from __future__ import annotations

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
    """Team and workspace memberships of users, as statements over schema-less tenant tables."""

    def teams_of(self, user: Any) -> sa.Select[Any]:
        """A ``SELECT`` of one column: the ids of the teams of ``user`` (an id or a bind parameter)."""
        ...

    def workspace_roles_of(self, user: Any) -> sa.Select[Any]:
        """A ``SELECT`` of ``(workspace_id, role)`` pairs of ``user``: ``admin``, ``member`` or ``viewer``."""
        ...


@final
class SqlSubjectDirectory:
    """:class:`SubjectDirectory` over the identity tables of the tenant schema."""

    def teams_of(self, user: Any) -> sa.Select[Any]:
        return sa.select(_team_members.c.team_id).where(_team_members.c.user_id == user)

    def workspace_roles_of(self, user: Any) -> sa.Select[Any]:
        members = _workspace_members.c
        return sa.select(members.workspace_id, members.role).where(members.user_id == user)
