"""Workspaces: a tree of workspaces inside each tenant, their members and roles.

See :mod:`plexica.workspaces.service` for the rules, and ``docs/workspaces.md`` for the API.
"""

from __future__ import annotations

from plexica.workspaces.access import Selection
from plexica.workspaces.models import MAX_DEPTH, ROLES, Actor, Member, Workspace
from plexica.workspaces.service import WorkspaceService

__all__ = ["MAX_DEPTH", "ROLES", "Actor", "Member", "Selection", "Workspace", "WorkspaceService"]
