"""Teams of a tenant: named groups of its users (the permission engine grants roles through them).

Names are unique per tenant regardless of case. Only active users join; removing a user drops
their team memberships (see :mod:`plexica.identity.users`); deleting a team drops its memberships.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any, final

from sqlalchemy.exc import IntegrityError

from plexica.db.engine import Database
from plexica.identity.access import AccessInvalidator
from plexica.identity.models import Team, TeamMember
from plexica.identity.paging import Page, decode_cursor, encode_cursor
from plexica.identity.repository import TeamRepository, UserRepository
from plexica_sdk.errors import ConflictError, NotFoundError, ValidationError
from plexica_sdk.types import TenantContext

__all__ = ["TeamService"]

MAX_NAME = 255
MAX_DESCRIPTION = 2000


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= MAX_NAME:
        raise ValidationError(f"name must be a string of 1 to {MAX_NAME} characters", field="name")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValidationError("name must not contain control characters", field="name")
    return value.strip()


def _description(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_DESCRIPTION):
        raise ValidationError(
            f"description must be a string of at most {MAX_DESCRIPTION} characters", field="description"
        )
    return value


def _not_found() -> NotFoundError:
    return NotFoundError("no such team", resource="team")


@final
class TeamService:
    """Teams and their members, in the given tenant's schema."""

    def __init__(self, *, db: Database, access: AccessInvalidator | None = None) -> None:
        self.db = db
        self.access = access
        self.repo = TeamRepository()
        self.users = UserRepository()

    async def list(self, ctx: TenantContext, *, cursor: str | None = None, limit: int = 50) -> Page[Team]:
        """Teams by name, ``limit`` at a time, each with its member count."""
        after = None
        if cursor:
            name, last_id = decode_cursor(cursor, 2)
            after = (str(name), str(last_id))
        async with self.db.tenant_connection(ctx.schema) as conn:
            items = await self.repo.page(conn, after=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return Page(
            items=tuple(items), next_cursor=encode_cursor(items[-1].name, items[-1].id) if more and items else None
        )

    async def get(self, ctx: TenantContext, team_id: str) -> Team:
        async with self.db.tenant_connection(ctx.schema) as conn:
            team = await self.repo.get(conn, team_id)
        if team is None:
            raise _not_found()
        return team

    async def create(
        self, ctx: TenantContext, *, name: str, description: str | None = None, created_by: str | None
    ) -> Team:
        """Raises ``ValidationError`` for bad input, ``ConflictError`` when the name is taken."""
        name, description = _name(name), _description(description)
        team_id = str(uuid.uuid4())
        try:
            async with self.db.tenant_connection(ctx.schema) as conn:
                if await self.repo.name_taken(conn, name):
                    raise ConflictError(f"a team named {name!r} exists", resource="team")
                await self.repo.insert(conn, team_id=team_id, name=name, description=description, created_by=created_by)
                team = await self.repo.get(conn, team_id)
        except IntegrityError as exc:
            raise ConflictError(f"a team named {name!r} exists", resource="team") from exc
        assert team is not None
        return team

    async def update(self, ctx: TenantContext, team_id: str, changes: Mapping[str, Any]) -> Team:
        """Change a team's name or description.

        Raises:
            ValidationError: an unknown field or a bad value.
            NotFoundError: no such team.
            ConflictError: the new name is taken.
        """
        values: dict[str, Any] = {}
        for field, value in changes.items():
            if field == "name":
                values["name"] = _name(value)
            elif field == "description":
                values["description"] = _description(value)
            else:
                raise ValidationError(f"{field} cannot be changed", field=field)
        try:
            async with self.db.tenant_connection(ctx.schema) as conn:
                if await self.repo.get(conn, team_id) is None:
                    raise _not_found()
                if "name" in values and await self.repo.name_taken(conn, values["name"], besides=team_id):
                    raise ConflictError(f"a team named {values['name']!r} exists", resource="team")
                if values:
                    await self.repo.update(conn, team_id, values)
                team = await self.repo.get(conn, team_id)
        except IntegrityError as exc:
            raise ConflictError("a team with that name exists", resource="team") from exc
        assert team is not None
        return team

    async def delete(self, ctx: TenantContext, team_id: str) -> None:
        """Delete a team and its memberships. Raises ``NotFoundError``."""
        async with self.db.tenant_connection(ctx.schema) as conn:
            if not await self.repo.delete(conn, team_id):
                raise _not_found()
        if self.access is not None:  # every member loses the team's grants
            await self.access.invalidate_tenant(ctx)

    async def members(
        self, ctx: TenantContext, team_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[TeamMember]:
        after = str(decode_cursor(cursor, 1)[0]) if cursor else None
        async with self.db.tenant_connection(ctx.schema) as conn:
            if await self.repo.get(conn, team_id) is None:
                raise _not_found()
            items = await self.repo.members(conn, team_id, after=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=tuple(items), next_cursor=encode_cursor(items[-1].user_id) if more and items else None)

    async def add_member(self, ctx: TenantContext, team_id: str, user_id: str) -> None:
        """Add an active user to a team.

        Raises:
            ValidationError: no such active user.
            NotFoundError: no such team.
            ConflictError: already a member.
        """
        if not isinstance(user_id, str) or not user_id:
            raise ValidationError("user_id must be a user id", field="user_id")
        async with self.db.tenant_connection(ctx.schema) as conn:
            if await self.repo.get(conn, team_id) is None:
                raise _not_found()
            profile = await self.users.get(conn, user_id)
            if profile is None or profile.status != "active":
                raise ValidationError("no such active user in this tenant", field="user_id")
            if not await self.repo.add_member(conn, team_id, user_id):
                raise ConflictError("the user is already a member", resource="member")
        if self.access is not None:
            await self.access.invalidate_user(ctx, user_id)

    async def remove_member(self, ctx: TenantContext, team_id: str, user_id: str) -> None:
        """Raises ``NotFoundError`` when there is no such team or the user is not in it."""
        async with self.db.tenant_connection(ctx.schema) as conn:
            if await self.repo.get(conn, team_id) is None:
                raise _not_found()
            if not await self.repo.remove_member(conn, team_id, user_id):
                raise NotFoundError("no such member", resource="member")
        if self.access is not None:
            await self.access.invalidate_user(ctx, user_id)
