"""User profiles of a tenant: admitted on each request, created from token claims, disabled, removed.

The identity provider owns credentials; a tenant's ``users`` table holds what the platform needs
about each person (who they are, whether they may still come in). :meth:`UserService.admit` runs
on every authenticated tenant request, from :class:`~plexica.http.user_middleware.UserMiddleware`:

- the first request of a user creates their profile from the token's claims (id = ``sub``) and
  records ``core.user.created`` in the same transaction; a changed name or e-mail updates it
  (``core.user.updated``);
- a ``disabled`` or ``removed`` user is refused with 403 even while their token is valid;
- the verdict is cached (:class:`~plexica.identity.stamps.StampedCache`, one ``MGET``) and, with
  a :class:`~plexica.cache.layered.LayeredCache`, kept in process for its L1 bound, so a steady
  stream of requests costs no cache read and no database write. Disabling or removing a user
  invalidates both (the L1 in every process, by broadcast), so their next request is refused.

Removal disables the profile and drops every team and workspace membership in the same
transaction. It may leave a workspace without an admin: the tenant's admins (who hold
``core:workspace:manage``) still manage it. Removing someone here does not touch the identity
provider; their tokens keep verifying and keep being refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, final

import attrs

from plexica.cache.layered import LayeredCache
from plexica.db.engine import Database
from plexica.identity.access import AccessInvalidator
from plexica.identity.models import USER_STATUSES, UserProfile
from plexica.identity.paging import Page, decode_cursor, encode_cursor
from plexica.identity.repository import UserRepository, now
from plexica.identity.stamps import StampedCache
from plexica.workspaces.models import membership_cache_keys
from plexica.workspaces.repository import WorkspaceRepository
from plexica_sdk.errors import ConflictError, NotFoundError, PermissionDeniedError, ValidationError
from plexica_sdk.protocols import Cache
from plexica_sdk.types import Principal, TenantContext

if TYPE_CHECKING:  # a protocol for annotations only: tenancy and people need not import events
    from plexica.events.recorder import EventRecorder

__all__ = ["Removal", "UserDisabledError", "UserService", "user_cache_keys"]

logger = logging.getLogger(__name__)

#: Seconds a cached admission lives; invalidation makes it shorter, never longer.
ADMISSION_TTL = 120
#: A returning user's ``last_seen_at`` is refreshed when it is older than this (seconds).
SEEN_RESOLUTION = 600


class UserDisabledError(PermissionDeniedError):
    """The caller's profile in this tenant is disabled or removed: 403 whatever their token says."""

    def __init__(self, status: str) -> None:
        super().__init__("core:tenant:access", f"user is {status}")
        self.status = status


def user_cache_keys(ctx: TenantContext, user_id: str) -> tuple[str, str]:
    """The cache keys of a user's admission: ``(entry, generation counter)``."""
    base = f"{ctx.cache_prefix}core:user:{user_id}"
    return base, f"{base}:gen"


def _local_key(ctx: TenantContext, user_id: str) -> str:
    """The process-local (L1) key of a user's admission verdict."""
    return f"l1:{user_cache_keys(ctx, user_id)[0]}"


def _claims_of(principal: Principal) -> tuple[str | None, str | None, str | None]:
    return principal.username, principal.email, principal.name


def _fingerprint(claims: tuple[str | None, str | None, str | None]) -> bytes:
    return hashlib.sha256(json.dumps(claims).encode()).hexdigest()[:24].encode()


@attrs.frozen(kw_only=True)
class Removal:
    """What removing a user took away."""

    user: UserProfile
    teams: tuple[str, ...]
    workspaces: tuple[tuple[str, str], ...]


@final
class UserService:
    """Business rules of user profiles; every query runs in the given tenant's schema."""

    def __init__(
        self,
        *,
        db: Database,
        cache: Cache,
        events: EventRecorder,
        access: AccessInvalidator | None = None,
        local: LayeredCache | None = None,
    ) -> None:
        self.db = db
        self.local = local
        self.access = access
        self.events = events  # every core.user.* event is written in its change's transaction
        self.stamps = StampedCache(cache, ttl=ADMISSION_TTL)
        self.repo = UserRepository()
        self.workspaces = WorkspaceRepository()

    # ------------------------------------------------------------- admission

    async def admit(self, ctx: TenantContext, principal: Principal) -> None:
        """Let a tenant's user in: create or refresh their profile, refuse them if disabled or removed.

        Raises:
            UserDisabledError: the profile is ``disabled`` or ``removed`` (403).
        """
        claims = _claims_of(principal)
        admitted = b"active:" + _fingerprint(claims)
        if self.local is None:
            verdict = await self._verdict(ctx, principal, admitted)
        else:
            local_key = _local_key(ctx, principal.id)
            verdict = await self.local.get_local(local_key, lambda: self._verdict(ctx, principal, admitted))
            if verdict != admitted and verdict.startswith(b"active:"):  # their claims changed
                self.local.forget(local_key)
                verdict = await self.local.get_local(local_key, lambda: self._verdict(ctx, principal, admitted))
        if verdict != admitted:
            raise UserDisabledError(verdict.decode())

    async def _verdict(self, ctx: TenantContext, principal: Principal, admitted: bytes) -> bytes:
        """``admitted`` (``active:<claims fingerprint>``) or the refused status, from L2 or the database."""
        key, generation_key = user_cache_keys(ctx, principal.id)
        cached = await self.stamps.read(key, generation_key)
        if cached.value == admitted or (cached.value is not None and not cached.value.startswith(b"active:")):
            return cached.value
        claims = _claims_of(principal)
        at = now()
        event: tuple[str, dict[str, Any]] | None = None
        async with self.db.tenant_connection(ctx.schema) as conn:
            profile = await self.repo.get(conn, principal.id)
            if profile is None and await self.repo.insert_if_absent(
                conn, user_id=principal.id, username=claims[0], email=claims[1], display_name=claims[2], at=at
            ):
                event = ("core.user.created", {"user_id": principal.id, "username": claims[0], "status": "active"})
            elif profile is None:  # another request created it a moment ago
                profile = await self.repo.get(conn, principal.id)
            if profile is not None and profile.status == "active":
                changes = [
                    name
                    for name, old, new in zip(
                        ("username", "email", "display_name"),
                        (profile.username, profile.email, profile.display_name),
                        claims,
                        strict=True,
                    )
                    if old != new
                ]
                if changes:
                    await self.repo.update_claims(
                        conn, principal.id, username=claims[0], email=claims[1], display_name=claims[2], at=at
                    )
                    event = (
                        "core.user.updated",
                        {"user_id": principal.id, "username": claims[0], "status": "active", "changes": changes},
                    )
                elif (at - profile.last_seen_at).total_seconds() > SEEN_RESOLUTION:
                    await self.repo.touch(conn, principal.id, at)
            if event is not None:  # created, or claims changed: the profile is active
                await self.events.record(conn, event[0], event[1], ctx, subject=principal.id)
        status = profile.status if profile is not None else "active"
        verdict = admitted if status == "active" else status.encode()
        await self.stamps.write(key, cached.generation, verdict)
        return verdict

    # ------------------------------------------------------------------ reads

    async def get(self, ctx: TenantContext, user_id: str) -> UserProfile:
        """Raises ``NotFoundError`` when the tenant has no such profile."""
        async with self.db.tenant_connection(ctx.schema) as conn:
            profile = await self.repo.get(conn, user_id)
        if profile is None:
            raise NotFoundError("no such user", resource="user")
        return profile

    async def list(
        self, ctx: TenantContext, *, status: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> Page[UserProfile]:
        """Profiles by username, ``limit`` at a time.

        Raises:
            ValidationError: an unknown ``status`` or a malformed ``cursor``.
        """
        if status is not None and status not in USER_STATUSES:
            raise ValidationError(f"status must be one of {', '.join(USER_STATUSES)}", field="status")
        after = None
        if cursor:
            name, last_id = decode_cursor(cursor, 2)
            after = (str(name), str(last_id))
        async with self.db.tenant_connection(ctx.schema) as conn:
            items = await self.repo.page(conn, status=status, after=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        last = items[-1] if items else None
        return Page(
            items=tuple(items),
            next_cursor=encode_cursor(last.username or "", last.id) if more and last is not None else None,
        )

    # ---------------------------------------------------------------- changes

    async def disable(self, ctx: TenantContext, user_id: str, *, actor_id: str) -> UserProfile:
        """Refuse a user from their next request on, keeping their memberships.

        Raises:
            NotFoundError: no such user.
            ConflictError: the user is the caller, or is removed (enable them instead).
        """
        return await self._set_status(ctx, user_id, "disabled", actor_id=actor_id, allowed_from=("active",))

    async def enable(self, ctx: TenantContext, user_id: str, *, actor_id: str) -> UserProfile:
        """Let a disabled or removed user in again (a removed one comes back without memberships)."""
        return await self._set_status(ctx, user_id, "active", actor_id=actor_id, allowed_from=("disabled", "removed"))

    async def _set_status(
        self, ctx: TenantContext, user_id: str, status: str, *, actor_id: str, allowed_from: Sequence[str]
    ) -> UserProfile:
        if user_id == actor_id:
            raise ConflictError("you cannot change your own status", resource="user")
        at = now()
        async with self.db.tenant_connection(ctx.schema) as conn:
            profile = await self.repo.get(conn, user_id, for_update=True)
            if profile is None:
                raise NotFoundError("no such user", resource="user")
            if profile.status == status:
                return profile
            if profile.status not in allowed_from:
                raise ConflictError(f"user is {profile.status}", resource="user")
            await self.repo.set_status(conn, user_id, status, at)
            updated = await self.repo.get(conn, user_id)
            assert updated is not None
            await self.events.record(
                conn,
                "core.user.updated",
                {"user_id": user_id, "username": updated.username, "status": status, "changes": ["status"]},
                ctx,
                subject=user_id,
            )
        await self._invalidate(ctx, user_id)
        return updated

    async def remove(self, ctx: TenantContext, user_id: str, *, actor_id: str) -> Removal:
        """Remove a user: disable the profile and drop every team and workspace membership, at once.

        Removing a removed user again changes nothing and publishes nothing.

        Raises:
            NotFoundError: no such user.
            ConflictError: the user is the caller.
        """
        if user_id == actor_id:
            raise ConflictError("you cannot remove yourself", resource="user")
        at = now()
        async with self.db.tenant_connection(ctx.schema) as conn:
            profile = await self.repo.get(conn, user_id, for_update=True)
            if profile is None:
                raise NotFoundError("no such user", resource="user")
            if profile.status == "removed":
                return Removal(user=profile, teams=(), workspaces=())
            await self.repo.set_status(conn, user_id, "removed", at)
            left_teams = await self.repo.drop_team_memberships(conn, user_id)
            left_workspaces = await self.workspaces.drop_user(conn, user_id)
            removed = await self.repo.get(conn, user_id)
            assert removed is not None
            for workspace_id, role in left_workspaces:
                await self.events.record(
                    conn,
                    "core.workspace.member.removed",
                    {"workspace_id": workspace_id, "user_id": user_id, "role": role},
                    attrs.evolve(ctx, workspace_id=workspace_id),
                    subject=workspace_id,
                )
            await self.events.record(
                conn, "core.user.removed", {"user_id": user_id, "username": removed.username}, ctx, subject=user_id
            )
        await self._invalidate(ctx, user_id, workspaces=[ws for ws, _ in left_workspaces])
        return Removal(user=removed, teams=tuple(left_teams), workspaces=tuple(left_workspaces))

    async def _invalidate(self, ctx: TenantContext, user_id: str, *, workspaces: Sequence[str] = ()) -> None:
        key, generation_key = user_cache_keys(ctx, user_id)
        await self.stamps.invalidate(generation_key, key)
        if self.local is not None:
            await self.local.invalidate_local(_local_key(ctx, user_id))
        if self.access is not None:
            await self.access.invalidate_user(ctx, user_id)
        for workspace_id in workspaces:
            entry, generation_key = membership_cache_keys(ctx, workspace_id, user_id)
            await self.stamps.invalidate(generation_key, entry)
