"""Tables and value types of workspaces: a tree of workspaces per tenant, and their members.

The tables are schema-less (bound to a tenant's schema per statement) and created by the tenant
stream's ``tenant_0003``. ``path`` is the materialised path of ids (``/root/child/``): a subtree
is one ``path LIKE '/root/child/%'`` query on both dialects. ``depth`` counts ancestors (a root
is 0) and is at most :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs
import sqlalchemy as sa

from plexica.db.metadata import tenant_metadata
from plexica_sdk.types import TenantContext

__all__ = [
    "MAX_DEPTH",
    "ROLES",
    "ROLE_RANK",
    "Actor",
    "Member",
    "Workspace",
    "WorkspaceRole",
    "WorkspaceStatus",
    "membership_cache_keys",
    "role_at_least",
    "workspace_members",
    "workspaces",
]

WorkspaceStatus = Literal["active", "archived"]
WorkspaceRole = Literal["admin", "member", "viewer"]

#: Roles from the most to the least powerful.
ROLES: tuple[WorkspaceRole, ...] = ("admin", "member", "viewer")
ROLE_RANK: dict[str, int] = {"admin": 3, "member": 2, "viewer": 1}
#: The deepest a workspace may sit: a root is at depth 0, so a tree has at most 11 levels.
MAX_DEPTH = 10

workspaces = sa.Table(
    "workspaces",
    tenant_metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("slug", sa.String(63), nullable=False, unique=True),
    sa.Column("description", sa.String(2000), nullable=True),
    sa.Column("parent_id", sa.String(36), sa.ForeignKey("workspaces.id", ondelete="RESTRICT"), nullable=True),
    sa.Column("depth", sa.Integer(), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
)

workspace_members = sa.Table(
    "workspace_members",
    tenant_metadata,
    sa.Column("workspace_id", sa.String(36), sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.String(255), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)


@attrs.frozen(kw_only=True)
class Actor:
    """Who asks a workspace operation, as the route layer established it.

    Attributes:
        user_id: the caller's user id (the token's ``sub``).
        manage_all: the caller holds ``core:workspace:manage`` and acts as admin of every workspace
            of the tenant (``tenant_admin`` does).
        can_create: the caller holds ``core:workspace:create`` (needed to make a root workspace).
    """

    user_id: str
    manage_all: bool = False
    can_create: bool = False


@attrs.frozen(kw_only=True)
class Workspace:
    """A workspace, with the asking user's role in it (``None``: not a member)."""

    id: str
    name: str
    slug: str
    description: str | None
    parent_id: str | None
    depth: int
    path: str
    status: WorkspaceStatus
    version: int
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    archived_at: dt.datetime | None = None
    role: WorkspaceRole | None = None

    @property
    def ancestor_ids(self) -> tuple[str, ...]:
        """The ids from the root down to the parent."""
        return tuple(self.path.strip("/").split("/")[:-1])


@attrs.frozen(kw_only=True)
class Member:
    """One user's membership of a workspace."""

    workspace_id: str
    user_id: str
    role: WorkspaceRole
    username: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


def membership_cache_keys(ctx: TenantContext, workspace_id: str, user_id: str) -> tuple[str, str]:
    """Cache keys of a user's membership of a workspace: ``(entry, the workspace's generation counter)``.

    Entries of one workspace share the prefix ``{entry without the user id}``, so a change to
    the whole workspace (archive, restore) drops them all at once.
    """
    prefix = f"{ctx.cache_prefix}core:wsm:{workspace_id}:"
    return prefix + user_id, f"{ctx.cache_prefix}core:wsgen:{workspace_id}"


def role_at_least(role: str | None, wanted: WorkspaceRole) -> bool:
    """Whether ``role`` ranks at least ``wanted`` (``admin > member > viewer``)."""
    return role is not None and ROLE_RANK.get(role, 0) >= ROLE_RANK[wanted]
