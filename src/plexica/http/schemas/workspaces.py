"""Bodies of ``/workspaces`` and their members."""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from plexica.http.schemas.common import DESCRIPTION, ID, NAME, OPTIONAL_ID
from plexica.workspaces.models import Member, WorkspaceRole, WorkspaceStatus

__all__ = [
    "AddMember",
    "CreateWorkspace",
    "Member",
    "MemberPage",
    "MoveWorkspace",
    "UpdateMember",
    "UpdateWorkspace",
    "WorkspaceOut",
    "WorkspacePage",
]

Role = WorkspaceRole
_SLUG: Any = attrs.validators.max_len(63)


@attrs.frozen(kw_only=True)
class CreateWorkspace:
    """A workspace to create: a root, or a child of ``parent_id``; ``slug`` defaults to one made from the name."""

    name: str = attrs.field(validator=NAME)
    slug: str | None = attrs.field(default=None, validator=attrs.validators.optional(_SLUG))
    description: str | None = attrs.field(default=None, validator=DESCRIPTION)
    parent_id: str | None = attrs.field(default=None, validator=OPTIONAL_ID)


@attrs.frozen(kw_only=True)
class UpdateWorkspace:
    """The fields to change; an absent one is unchanged, a ``null`` description clears it."""

    name: str = attrs.field(default="", validator=attrs.validators.max_len(255))
    slug: str = attrs.field(default="", validator=_SLUG)
    description: str | None = attrs.field(default=None, validator=DESCRIPTION)


@attrs.frozen(kw_only=True)
class MoveWorkspace:
    """The new parent: a workspace id, or ``null`` to make the workspace a root."""

    parent_id: str | None = attrs.field(validator=OPTIONAL_ID)


@attrs.frozen(kw_only=True)
class AddMember:
    user_id: str = attrs.field(validator=ID)
    role: Role = "member"


@attrs.frozen(kw_only=True)
class UpdateMember:
    role: Role


@attrs.frozen(kw_only=True)
class WorkspaceOut:
    """A workspace as the caller sees it: ``role`` is theirs in it (``null``: not a member)."""

    id: str
    name: str
    slug: str
    description: str | None
    parent_id: str | None
    ancestor_ids: tuple[str, ...]
    depth: int
    status: WorkspaceStatus
    version: int
    role: Role | None
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    archived_at: dt.datetime | None


@attrs.frozen(kw_only=True)
class WorkspacePage:
    items: tuple[WorkspaceOut, ...]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class MemberPage:
    items: tuple[Member, ...]
    next_cursor: str | None
