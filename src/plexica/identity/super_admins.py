"""The super-admin allow-list (``core.super_admins``): a second gate behind the token's role.

A caller is a super-admin when **both** hold:

1. their token comes from the platform realm and carries its ``super_admin`` role (checked by
   the token verifier; a tenant realm's ``super_admin`` role grants nothing), and
2. their user id (``sub``) is on the allow-list.

The role alone says the identity provider trusts them; the allow-list lets the platform narrow
that down, so a mistaken role grant in the identity provider does not open every tenant.

Bootstrap: while the allow-list is **empty**, the role alone is enough (a fresh platform must
let someone in to add the first entry). The first grant must therefore enrol the caller
themselves, and the last entry cannot be revoked, so the list never silently falls back to
"every role holder".
"""

from __future__ import annotations

import logging
from typing import final

from plexica.db.engine import Database
from plexica.identity.models import SuperAdmin
from plexica.identity.repository import SuperAdminRepository
from plexica.identity.stamps import StampedCache
from plexica_sdk.errors import ConflictError, NotFoundError, ValidationError
from plexica_sdk.protocols import Cache
from plexica_sdk.types import Principal

__all__ = ["SuperAdminService"]

logger = logging.getLogger(__name__)

ALLOW_LIST_TTL = 60
_KEY = "core:super_admins"
_GENERATION_KEY = "core:super_admins:gen"
_BOOTSTRAP = b"*"


@final
class SuperAdminService:
    """Reads and changes the allow-list; answers whether a platform principal is on it."""

    def __init__(self, *, db: Database, cache: Cache) -> None:
        self.db = db
        self.stamps = StampedCache(cache, ttl=ALLOW_LIST_TTL)
        self.repo = SuperAdminRepository()

    async def list(self) -> tuple[SuperAdmin, ...]:
        async with self.db.core_connection() as conn:
            return tuple(await self.repo.entries(conn))

    async def allows(self, principal: Principal) -> bool:
        """Whether a principal whose token grants super-admin is also on the allow-list.

        Always ``False`` for a principal without the token's super-admin grant.
        """
        if not principal.is_super_admin:
            return False
        cached = await self.stamps.read(_KEY, _GENERATION_KEY)
        value = cached.value
        if value is None:
            async with self.db.core_connection() as conn:
                ids = await self.repo.ids(conn)
            value = b"\n".join(sorted(i.encode() for i in ids)) if ids else _BOOTSTRAP
            await self.stamps.write(_KEY, cached.generation, value)
            if value == _BOOTSTRAP:
                logger.warning("super-admin allow-list is empty: the platform realm's role alone grants access")
        if value == _BOOTSTRAP:
            return True
        return principal.id.encode() in value.split(b"\n")

    async def grant(self, user_id: str, *, username: str | None = None, granted_by: Principal) -> SuperAdmin:
        """Put a platform-realm user on the allow-list (they still need the realm's role).

        Raises:
            ValidationError: a bad ``user_id`` or ``username``.
            ConflictError: already listed, or the list is empty and the grant is not for the caller.
        """
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= 255:
            raise ValidationError("user_id must be a platform user id", field="user_id")
        if username is not None and (not isinstance(username, str) or len(username) > 255):
            raise ValidationError("username must be a string of at most 255 characters", field="username")
        async with self.db.core_connection() as conn:
            listed = await self.repo.lock_all(conn)
            if not listed and user_id != granted_by.id:
                raise ConflictError(
                    "the allow-list is empty: grant yourself first, or you would lock yourself out",
                    resource="super_admin",
                )
            entry = await self.repo.insert(conn, user_id, username)
        await self.stamps.invalidate(_GENERATION_KEY, _KEY)
        logger.info("super-admin granted", extra={"user": user_id, "by": granted_by.id})
        return entry

    async def revoke(self, user_id: str, *, revoked_by: Principal) -> None:
        """Take a user off the allow-list; takes effect on their next request.

        Raises:
            NotFoundError: not listed.
            ConflictError: the last entry (an empty list would trust every role holder again).
        """
        async with self.db.core_connection() as conn:
            listed = await self.repo.lock_all(conn)
            if user_id not in listed:
                raise NotFoundError("no such super-admin", resource="super_admin")
            if len(listed) <= 1:
                raise ConflictError("the last super-admin cannot be revoked", resource="super_admin")
            await self.repo.delete(conn, user_id)
        await self.stamps.invalidate(_GENERATION_KEY, _KEY)
        logger.info("super-admin revoked", extra={"user": user_id, "by": revoked_by.id})
