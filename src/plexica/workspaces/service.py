"""Business rules of workspaces: the tree, its archive and restore, and who may do what in it.

Visibility: a workspace exists for a caller who is one of its members, or who holds
``core:workspace:manage`` (``Actor.manage_all``); anyone else gets ``NotFoundError`` (404), as if
it did not exist. A visible workspace's changes need its ``admin`` role (or ``manage_all``), else
``PermissionDeniedError`` (403). Roles rank ``admin > member > viewer``; roles do not inherit down
the tree. Archived workspaces are read-only until restored.

Events: each change's ``core.workspace.*`` events are written with the change, in its transaction
(:class:`~plexica.events.recorder.EventRecorder`), and published by the outbox relay after it commits.

Concurrency: changes of the tree's shape (create under a parent, move, archive, restore) take
the tenant's tree lock; member changes lock the workspace's row first, so "is this the last
admin?" is answered by one transaction at a time. On SQLite, writers are serialized anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, final

import attrs
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.db.engine import Database
from plexica.identity.access import AccessInvalidator
from plexica.identity.paging import Page, decode_cursor, encode_cursor
from plexica.identity.repository import UserRepository, now
from plexica.identity.stamps import StampedCache
from plexica.workspaces.access import Selection, active, admin, check_version, not_found, payload, visible
from plexica.workspaces.models import (
    MAX_DEPTH,
    Actor,
    Member,
    Workspace,
    membership_cache_keys,
)
from plexica.workspaces.repository import WorkspaceRepository
from plexica.workspaces.rules import check_description, check_name, check_role, check_slug, slug_from
from plexica_sdk.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from plexica_sdk.protocols import Cache
from plexica_sdk.types import TenantContext

if TYPE_CHECKING:  # a protocol for annotations only: tenancy and people need not import events
    from plexica.events.recorder import EventRecorder

__all__ = ["Selection", "WorkspaceService"]

#: Seconds a cached membership (for ``X-Workspace-ID``) lives; changes invalidate it at once.
MEMBERSHIP_TTL = 60
_STATUS_FILTERS = ("active", "archived", "all")
_UPDATABLE = ("name", "slug", "description")


@final
class WorkspaceService:
    """Workspaces and their members, in the given tenant's schema."""

    def __init__(
        self, *, db: Database, cache: Cache, events: EventRecorder, access: AccessInvalidator | None = None
    ) -> None:
        self.db = db
        self.access = access
        self.events = events
        self.stamps = StampedCache(cache, ttl=MEMBERSHIP_TTL)
        self.repo = WorkspaceRepository()
        self.users = UserRepository()

    # ---------------------------------------------------------- the tree

    async def create(
        self,
        ctx: TenantContext,
        actor: Actor,
        *,
        name: str,
        slug: str | None = None,
        description: str | None = None,
        parent_id: str | None = None,
    ) -> Workspace:
        """Create a workspace (under ``parent_id``, or as a root); its creator becomes its admin.

        Raises:
            ValidationError: bad input, an unknown or invisible parent, or the tree would be too deep.
            PermissionDeniedError: a root without ``can_create``, or a child without the parent's admin role.
            ConflictError: the slug is taken, or the parent is archived.
        """
        name = check_name(name)
        slug = check_slug(slug) if slug is not None else slug_from(name)
        description = check_description(description)
        if not actor.can_create:
            raise PermissionDeniedError("core:workspace:create", "cannot create workspaces")
        workspace_id = str(uuid.uuid4())
        at = now()
        try:
            async with self.db.tenant_connection(ctx.schema) as conn:
                await self._require_active_user(conn, actor.user_id)
                path, depth = f"/{workspace_id}/", 0
                if parent_id is not None:
                    await self.repo.lock_tree(conn, ctx.schema)
                    parent = await self._parent(conn, parent_id, actor)
                    if parent.depth + 1 > MAX_DEPTH:
                        raise ValidationError(f"workspaces nest at most {MAX_DEPTH} levels deep", field="parent_id")
                    path, depth = f"{parent.path}{workspace_id}/", parent.depth + 1
                if await self.repo.slug_taken(conn, slug):
                    raise ConflictError(f"workspace slug {slug!r} is taken", resource="workspace")
                await self.repo.insert(
                    conn,
                    {
                        "id": workspace_id,
                        "name": name,
                        "slug": slug,
                        "description": description,
                        "parent_id": parent_id,
                        "depth": depth,
                        "path": path,
                        "status": "active",
                        "version": 1,
                        "created_by": actor.user_id,
                        "created_at": at,
                        "updated_at": at,
                    },
                )
                await self.repo.add_member(conn, workspace_id, actor.user_id, "admin", at)
                workspace = await self.repo.get(conn, workspace_id, user_id=actor.user_id)
                assert workspace is not None
                await self._record(conn, ctx, "core.workspace.created", workspace.id, payload(workspace))
                await self._record(
                    conn,
                    ctx,
                    "core.workspace.member.added",
                    workspace.id,
                    {"workspace_id": workspace.id, "user_id": actor.user_id, "role": "admin"},
                )
        except IntegrityError as exc:  # a concurrent create took the slug first
            raise ConflictError(f"workspace slug {slug!r} is taken", resource="workspace") from exc
        await self._invalidate_member(ctx, workspace_id, actor.user_id)
        return workspace

    async def get(self, ctx: TenantContext, actor: Actor, workspace_id: str) -> Workspace:
        """Raises ``NotFoundError`` unless the workspace exists and is visible to ``actor``."""
        async with self.db.tenant_connection(ctx.schema) as conn:
            return visible(await self.repo.get(conn, workspace_id, user_id=actor.user_id), actor)

    async def list(
        self,
        ctx: TenantContext,
        actor: Actor,
        *,
        parent: str | None = None,
        status: str = "active",
        mine: bool = False,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Workspace]:
        """The workspaces visible to ``actor`` (only their own unless ``manage_all``), by name.

        Args:
            parent: a parent's id for its children, ``"root"`` for the roots, ``None`` for all.
            status: ``active`` (default), ``archived`` or ``all``.
            mine: only the ones ``actor`` is a member of, even with ``manage_all``.

        Raises:
            ValidationError: a bad ``status`` or ``cursor``.
        """
        if status not in _STATUS_FILTERS:
            raise ValidationError(f"status must be one of {', '.join(_STATUS_FILTERS)}", field="status")
        after = None
        if cursor:
            name, last_id = decode_cursor(cursor, 2)
            after = (str(name), str(last_id))
        async with self.db.tenant_connection(ctx.schema) as conn:
            items = await self.repo.page(
                conn,
                user_id=actor.user_id,
                members_only=mine or not actor.manage_all,
                parent=parent,
                status=None if status == "all" else status,
                after=after,
                limit=limit + 1,
            )
        more = len(items) > limit
        items = items[:limit]
        next_cursor = encode_cursor(items[-1].name, items[-1].id) if more and items else None
        return Page(items=tuple(items), next_cursor=next_cursor)

    async def update(
        self, ctx: TenantContext, actor: Actor, workspace_id: str, changes: Mapping[str, Any], *, version: int | None
    ) -> Workspace:
        """Change name, slug or description of an active workspace still at ``version``.

        ``version`` ``None`` skips the check (the HTTP layer requires ``If-Match``, or ``*``).

        Raises:
            ValidationError: an unknown field or a bad value.
            NotFoundError / PermissionDeniedError: not visible / not its admin.
            ConflictError: archived, a stale ``version``, or a taken slug.
        """
        values: dict[str, Any] = {}
        for field, value in changes.items():
            if field not in _UPDATABLE:
                raise ValidationError(f"{field} cannot be changed here", field=field)
            values[field] = {"name": check_name, "slug": check_slug, "description": check_description}[field](value)
        try:
            async with self.db.tenant_connection(ctx.schema) as conn:
                workspace = admin(
                    await self.repo.get(conn, workspace_id, user_id=actor.user_id), actor, "core:workspace:update"
                )
                check_version(workspace, version)
                active(workspace)
                values = {k: v for k, v in values.items() if getattr(workspace, k) != v}
                if not values:
                    return workspace
                if "slug" in values and await self.repo.slug_taken(conn, values["slug"], besides=workspace_id):
                    raise ConflictError(f"workspace slug {values['slug']!r} is taken", resource="workspace")
                if not await self.repo.update(conn, workspace_id, workspace.version, values, now()):
                    raise ConflictError("the workspace changed meanwhile; reload and retry", resource="workspace")
                updated = await self.repo.get(conn, workspace_id, user_id=actor.user_id)
                assert updated is not None
                await self._record(
                    conn, ctx, "core.workspace.updated", updated.id, payload(updated, changes=sorted(values))
                )
        except IntegrityError as exc:
            raise ConflictError(f"workspace slug {values.get('slug')!r} is taken", resource="workspace") from exc
        return updated

    async def archive(
        self, ctx: TenantContext, actor: Actor, workspace_id: str, *, version: int | None = None
    ) -> Workspace:
        """Archive a workspace and every active descendant; archiving an archived one changes nothing.

        Raises:
            NotFoundError / PermissionDeniedError: not visible / not its admin.
            ConflictError: a stale ``version``.
        """
        async with self.db.tenant_connection(ctx.schema) as conn:
            await self.repo.lock_tree(conn, ctx.schema)
            workspace = admin(
                await self.repo.get(conn, workspace_id, user_id=actor.user_id), actor, "core:workspace:archive"
            )
            check_version(workspace, version)
            if workspace.status == "archived":
                return workspace
            archived = await self.repo.archive_subtree(conn, workspace.path, now())
            workspace = visible(await self.repo.get(conn, workspace_id, user_id=actor.user_id), actor)
            for archived_id in archived:
                await self._record(
                    conn,
                    ctx,
                    "core.workspace.archived",
                    archived_id,
                    {"workspace_id": archived_id, "root_id": workspace.id},
                )
        for archived_id in archived:
            await self._invalidate_workspace(ctx, archived_id)
        return workspace

    async def restore(
        self, ctx: TenantContext, actor: Actor, workspace_id: str, *, version: int | None = None
    ) -> Workspace:
        """Restore an archived workspace and the descendants archived with it.

        Raises:
            NotFoundError / PermissionDeniedError: not visible / not its admin.
            ConflictError: a stale ``version``, or the parent is archived (restore it first).
        """
        async with self.db.tenant_connection(ctx.schema) as conn:
            await self.repo.lock_tree(conn, ctx.schema)
            workspace = admin(
                await self.repo.get(conn, workspace_id, user_id=actor.user_id), actor, "core:workspace:archive"
            )
            check_version(workspace, version)
            if workspace.status == "active" or workspace.archived_at is None:
                return workspace
            if workspace.parent_id is not None:
                parent = await self.repo.get(conn, workspace.parent_id)
                if parent is not None and parent.status != "active":
                    raise ConflictError("the parent workspace is archived; restore it first", resource="workspace")
            restored = await self.repo.restore_subtree(conn, workspace.path, workspace.archived_at, now())
            workspace = visible(await self.repo.get(conn, workspace_id, user_id=actor.user_id), actor)
            for restored_id in restored:
                await self._record(
                    conn,
                    ctx,
                    "core.workspace.restored",
                    restored_id,
                    {"workspace_id": restored_id, "root_id": workspace.id},
                )
        for restored_id in restored:
            await self._invalidate_workspace(ctx, restored_id)
        return workspace

    async def move(
        self, ctx: TenantContext, actor: Actor, workspace_id: str, parent_id: str | None, *, version: int | None = None
    ) -> Workspace:
        """Put a workspace, with its subtree, under another parent (``None``: make it a root).

        Needs the workspace's admin role and the new parent's (or ``can_create`` for a root).

        Raises:
            ValidationError: the new parent is unknown, invisible, the workspace itself or one of its
                descendants (a cycle), or the subtree would sink deeper than the limit.
            NotFoundError / PermissionDeniedError: not visible / not allowed.
            ConflictError: a stale ``version``, or the workspace or the new parent is archived.
        """
        async with self.db.tenant_connection(ctx.schema) as conn:
            await self.repo.lock_tree(conn, ctx.schema)
            workspace = admin(
                await self.repo.get(conn, workspace_id, user_id=actor.user_id), actor, "core:workspace:move"
            )
            check_version(workspace, version)
            active(workspace)
            if parent_id == workspace.parent_id:
                return workspace
            if parent_id is None:
                if not actor.can_create:
                    raise PermissionDeniedError("core:workspace:create", "cannot create root workspaces")
                new_path = f"/{workspace.id}/"
            else:
                parent = await self._parent(conn, parent_id, actor)
                if parent.path.startswith(workspace.path):
                    raise ValidationError(
                        "a workspace cannot move under itself or one of its descendants", field="parent_id"
                    )
                new_path = f"{parent.path}{workspace.id}/"
            deepest = await self.repo.subtree_depth(conn, workspace.path)
            new_depth = new_path.count("/") - 2
            if deepest + new_depth - workspace.depth > MAX_DEPTH:
                raise ValidationError(f"workspaces nest at most {MAX_DEPTH} levels deep", field="parent_id")
            moved = await self.repo.subtree_ids(conn, workspace.path)
            await self.repo.move_subtree(conn, workspace, parent_id, new_path, now())
            workspace = visible(await self.repo.get(conn, workspace_id, user_id=actor.user_id), actor)
            await self._record(
                conn, ctx, "core.workspace.updated", workspace.id, payload(workspace, changes=["parent_id"])
            )
        for moved_id in moved:
            await self._invalidate_workspace(ctx, moved_id)
        return workspace

    async def _parent(self, conn: AsyncConnection, parent_id: str, actor: Actor) -> Workspace:
        parent = await self.repo.get(conn, parent_id, user_id=actor.user_id)
        if parent is None or (parent.role is None and not actor.manage_all):
            raise ValidationError("no such parent workspace", field="parent_id")
        if parent.role != "admin" and not actor.manage_all:
            raise PermissionDeniedError("core:workspace:create", "admin of the parent workspace only")
        if parent.status != "active":
            raise ConflictError("the parent workspace is archived", resource="workspace")
        return parent

    # ------------------------------------------------------------ members

    async def members(
        self, ctx: TenantContext, actor: Actor, workspace_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Member]:
        """A visible workspace's members, by user id."""
        after = str(decode_cursor(cursor, 1)[0]) if cursor else None
        async with self.db.tenant_connection(ctx.schema) as conn:
            visible(await self.repo.get(conn, workspace_id, user_id=actor.user_id), actor)
            items = await self.repo.members(conn, workspace_id, after=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=tuple(items), next_cursor=encode_cursor(items[-1].user_id) if more and items else None)

    async def add_member(self, ctx: TenantContext, actor: Actor, workspace_id: str, user_id: str, role: str) -> Member:
        """Add an active user of the tenant to a workspace (admins only).

        Raises:
            ValidationError: a bad role, or no such active user.
            NotFoundError / PermissionDeniedError: not visible / not its admin.
            ConflictError: archived, or already a member (change their role instead).
        """
        role = check_role(role)
        if not isinstance(user_id, str) or not user_id:
            raise ValidationError("user_id must be a user id", field="user_id")
        at = now()
        async with self.db.tenant_connection(ctx.schema) as conn:
            await self._lock_for_members(conn, workspace_id, actor, "core:workspace:members")
            profile = await self.users.get(conn, user_id)
            if profile is None or profile.status != "active":
                raise ValidationError("no such active user in this tenant", field="user_id")
            if not await self.repo.add_member(conn, workspace_id, user_id, role, at):
                raise ConflictError("the user is already a member; change their role instead", resource="member")
            member = await self.repo.member(conn, workspace_id, user_id)
            assert member is not None
            await self._record(
                conn,
                ctx,
                "core.workspace.member.added",
                workspace_id,
                {"workspace_id": workspace_id, "user_id": user_id, "role": role},
            )
        await self._invalidate_member(ctx, workspace_id, user_id)
        return member

    async def set_role(self, ctx: TenantContext, actor: Actor, workspace_id: str, user_id: str, role: str) -> Member:
        """Change a member's role (admins only); the last admin cannot be demoted.

        Raises:
            ValidationError: a bad role.
            NotFoundError: the workspace is not visible, or the user is not a member.
            PermissionDeniedError: not its admin.
            ConflictError: archived, or demoting the last admin.
        """
        role = check_role(role)
        async with self.db.tenant_connection(ctx.schema) as conn:
            await self._lock_for_members(conn, workspace_id, actor, "core:workspace:members")
            member = await self.repo.member(conn, workspace_id, user_id)
            if member is None:
                raise NotFoundError("no such member", resource="member")
            if member.role == role:
                return member
            if member.role == "admin" and await self.repo.admin_count(conn, workspace_id) <= 1:
                raise ConflictError("a workspace keeps at least one admin", resource="member")
            await self.repo.set_role(conn, workspace_id, user_id, role, now())
            updated = await self.repo.member(conn, workspace_id, user_id)
            assert updated is not None
            await self._record(
                conn,
                ctx,
                "core.workspace.member.role-updated",
                workspace_id,
                {"workspace_id": workspace_id, "user_id": user_id, "role": role, "previous_role": member.role},
            )
        await self._invalidate_member(ctx, workspace_id, user_id)
        return updated

    async def remove_member(self, ctx: TenantContext, actor: Actor, workspace_id: str, user_id: str) -> None:
        """Remove a member (admins; or any member leaving); the last admin cannot be removed.

        Of two concurrent removals of a workspace's last two admins, exactly one succeeds: the
        other finds one admin left and gets ``ConflictError``.

        Raises:
            NotFoundError: the workspace is not visible, or the user is not a member.
            PermissionDeniedError: removing someone else without being its admin.
            ConflictError: archived, or removing the last admin.
        """
        async with self.db.tenant_connection(ctx.schema) as conn:
            leaving = user_id == actor.user_id
            await self._lock_for_members(conn, workspace_id, actor, "core:workspace:members", leaving=leaving)
            member = await self.repo.member(conn, workspace_id, user_id)
            if member is None:
                raise NotFoundError("no such member", resource="member")
            if member.role == "admin" and await self.repo.admin_count(conn, workspace_id) <= 1:
                raise ConflictError("a workspace keeps at least one admin", resource="member")
            await self.repo.remove_member(conn, workspace_id, user_id)
            await self._record(
                conn,
                ctx,
                "core.workspace.member.removed",
                workspace_id,
                {"workspace_id": workspace_id, "user_id": user_id, "role": member.role},
            )
        await self._invalidate_member(ctx, workspace_id, user_id)

    async def _lock_for_members(
        self, conn: AsyncConnection, workspace_id: str, actor: Actor, permission: str, *, leaving: bool = False
    ) -> Workspace:
        # The row lock comes first: every member change of this workspace waits here for the
        # previous one to commit, then counts admins on committed data.
        if await self.repo.lock(conn, workspace_id) is None:
            raise not_found()
        workspace = await self.repo.get(conn, workspace_id, user_id=actor.user_id)
        workspace = visible(workspace, actor) if leaving else admin(workspace, actor, permission)
        return active(workspace)

    async def _require_active_user(self, conn: AsyncConnection, user_id: str) -> None:
        profile = await self.users.get(conn, user_id)
        if profile is None or profile.status != "active":
            raise PermissionDeniedError("core:workspace:create", "only a tenant's active users own workspaces")

    # ------------------------------------------------- request selection

    async def selection(self, ctx: TenantContext, workspace_id: str, user_id: str) -> Selection | None:
        """``user_id``'s standing in a workspace (``None``: no such workspace), cached.

        This is what ``X-Workspace-ID`` is checked against on every request that sends it.
        """
        key, generation_key = membership_cache_keys(ctx, workspace_id, user_id)
        cached = await self.stamps.read(key, generation_key)
        if cached.value is not None:
            if cached.value == b"none":
                return None
            role, _, status = cached.value.decode().partition(",")
            return Selection(role or None, status)
        async with self.db.tenant_connection(ctx.schema) as conn:
            workspace = await self.repo.get(conn, workspace_id, user_id=user_id)
        value = b"none" if workspace is None else f"{workspace.role or ''},{workspace.status}".encode()
        await self.stamps.write(key, cached.generation, value)
        return None if workspace is None else Selection(workspace.role, workspace.status)

    async def _invalidate_member(self, ctx: TenantContext, workspace_id: str, user_id: str) -> None:
        key, generation_key = membership_cache_keys(ctx, workspace_id, user_id)
        await self.stamps.invalidate(generation_key, key)
        if self.access is not None:
            await self.access.invalidate_user(ctx, user_id)

    async def _invalidate_workspace(self, ctx: TenantContext, workspace_id: str) -> None:
        key, generation_key = membership_cache_keys(ctx, workspace_id, "")
        await self.stamps.invalidate(generation_key, prefix=key)

    async def _record(
        self, conn: AsyncConnection, ctx: TenantContext, event_type: str, workspace_id: str, data: Mapping[str, Any]
    ) -> None:
        # In the change's transaction; the workspace is the subject: its events stay in order on the bus.
        await self.events.record(
            conn, event_type, dict(data), attrs.evolve(ctx, workspace_id=workspace_id), subject=workspace_id
        )
