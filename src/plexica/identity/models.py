"""Tables and value types of a tenant's people: user profiles, teams, team members; super-admins.

Tenant tables are schema-less (bound to a tenant's schema per statement) and created by the tenant
stream's ``tenant_0001`` (``users``) and ``tenant_0002`` (the rest); ``core.super_admins`` comes
from ``core_0002``.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs
import sqlalchemy as sa

from plexica.db.metadata import core_metadata, tenant_metadata

__all__ = [
    "USER_STATUSES",
    "SuperAdmin",
    "Team",
    "TeamMember",
    "UserProfile",
    "UserStatus",
    "super_admins",
    "team_members",
    "teams",
    "users",
]

UserStatus = Literal["active", "disabled", "removed"]
USER_STATUSES: tuple[UserStatus, ...] = ("active", "disabled", "removed")

users = sa.Table(
    "users",
    tenant_metadata,
    sa.Column("id", sa.String(255), primary_key=True),  # the token's ``sub``
    sa.Column("username", sa.String(255), nullable=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("display_name", sa.String(255), nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
)

teams = sa.Table(
    "teams",
    tenant_metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),  # unique regardless of case: uq_teams_name_lower
    sa.Column("description", sa.String(2000), nullable=True),
    sa.Column("created_by", sa.String(255), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

team_members = sa.Table(
    "team_members",
    tenant_metadata,
    sa.Column("team_id", sa.String(36), sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.String(255), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

super_admins = sa.Table(
    "super_admins",
    core_metadata,
    sa.Column("user_id", sa.String(255), primary_key=True),
    sa.Column("username", sa.String(255), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


@attrs.frozen(kw_only=True)
class UserProfile:
    """A person of a tenant, as first seen in (and kept up to date from) their token's claims.

    ``disabled`` and ``removed`` users are refused (403) even with a valid token; removal also
    dropped their team and workspace memberships.
    """

    id: str
    username: str | None
    email: str | None = attrs.field(repr=False)  # personal data: kept out of reprs and logs
    display_name: str | None = attrs.field(repr=False)
    status: UserStatus
    created_at: dt.datetime
    last_seen_at: dt.datetime
    updated_at: dt.datetime | None = None
    removed_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class Team:
    """A named group of a tenant's users."""

    id: str
    name: str
    description: str | None
    created_by: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    member_count: int = 0


@attrs.frozen(kw_only=True)
class TeamMember:
    """One user's membership of a team."""

    team_id: str
    user_id: str
    username: str | None
    created_at: dt.datetime


@attrs.frozen(kw_only=True)
class SuperAdmin:
    """An entry of the platform's super-admin allow-list."""

    user_id: str
    username: str | None
    created_at: dt.datetime
