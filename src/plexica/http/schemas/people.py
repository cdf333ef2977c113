"""Bodies of ``/users``, ``/super-admins`` and ``/teams``."""

from __future__ import annotations

import attrs

from plexica.http.schemas.common import DESCRIPTION, ID, NAME
from plexica.identity.models import SuperAdmin, Team, TeamMember, UserProfile

__all__ = [
    "AddTeamMember",
    "CreateTeam",
    "GrantSuperAdmin",
    "SuperAdminList",
    "TeamMemberPage",
    "TeamPage",
    "UpdateTeam",
    "UserPage",
]


@attrs.frozen(kw_only=True)
class GrantSuperAdmin:
    """A platform-realm user to put on the super-admin allow-list."""

    user_id: str = attrs.field(validator=ID)
    username: str | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.max_len(255)))


@attrs.frozen(kw_only=True)
class CreateTeam:
    name: str = attrs.field(validator=NAME)
    description: str | None = attrs.field(default=None, validator=DESCRIPTION)


@attrs.frozen(kw_only=True)
class UpdateTeam:
    """The fields to change; an absent one is unchanged, a ``null`` description clears it."""

    name: str = attrs.field(default="", validator=attrs.validators.max_len(255))
    description: str | None = attrs.field(default=None, validator=DESCRIPTION)


@attrs.frozen(kw_only=True)
class AddTeamMember:
    user_id: str = attrs.field(validator=ID)


@attrs.frozen(kw_only=True)
class UserPage:
    items: tuple[UserProfile, ...]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class SuperAdminList:
    items: tuple[SuperAdmin, ...]


@attrs.frozen(kw_only=True)
class TeamPage:
    items: tuple[Team, ...]
    next_cursor: str | None


@attrs.frozen(kw_only=True)
class TeamMemberPage:
    items: tuple[TeamMember, ...]
    next_cursor: str | None
