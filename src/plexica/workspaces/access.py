"""Who may see and change a workspace, as pure checks over what was read. No IO.

A workspace is *visible* to its members and to callers holding ``core:workspace:manage``; to
anyone else it does not exist (``NotFoundError``). Changing it needs its ``admin`` role (or
``manage``), else ``PermissionDeniedError``. An archived workspace is read-only (``ConflictError``).
"""

from __future__ import annotations

from typing import Any

import attrs

from plexica.workspaces.models import Actor, Workspace
from plexica_sdk.errors import ConflictError, NotFoundError, PermissionDeniedError

__all__ = ["Selection", "active", "admin", "check_version", "not_found", "payload", "visible"]


@attrs.frozen
class Selection:
    """A user's standing in a workspace: their role (``None``: not a member) and its status."""

    role: str | None
    status: str


def not_found() -> NotFoundError:
    return NotFoundError("no such workspace", resource="workspace")


def visible(workspace: Workspace | None, actor: Actor) -> Workspace:
    if workspace is None or (workspace.role is None and not actor.manage_all):
        raise not_found()
    return workspace


def admin(workspace: Workspace | None, actor: Actor, permission: str) -> Workspace:
    workspace = visible(workspace, actor)
    if workspace.role != "admin" and not actor.manage_all:
        raise PermissionDeniedError(permission, "workspace admin only")
    return workspace


def active(workspace: Workspace) -> Workspace:
    if workspace.status != "active":
        raise ConflictError("the workspace is archived; restore it first", resource="workspace")
    return workspace


def check_version(workspace: Workspace, expected: int | None) -> None:
    if expected is not None and workspace.version != expected:
        raise ConflictError(
            f"the workspace is at version {workspace.version}, not {expected}; reload and retry", resource="workspace"
        )


def payload(workspace: Workspace, **extra: Any) -> dict[str, Any]:
    return {
        "workspace_id": workspace.id,
        "slug": workspace.slug,
        "name": workspace.name,
        "parent_id": workspace.parent_id,
        "version": workspace.version,
        **extra,
    }
