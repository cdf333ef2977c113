"""The permission tables of each tenant, schema-less; the migration ``tenant_0004`` creates them.

Tenant-wide grants store ``workspace_id = ''`` rather than NULL, so that one unique constraint
refuses duplicate grants on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import sqlalchemy as sa

from plexica.db.metadata import tenant_metadata

__all__ = ["TENANT_WIDE", "definitions", "grants", "plugins", "policies", "role_permissions", "roles"]

TENANT_WIDE = ""

roles = sa.Table(
    "perm_roles",
    tenant_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(80), primary_key=True),  # "custom" or "plugin:<name>"
    sa.Column("description", sa.String(1000), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

role_permissions = sa.Table(
    "perm_role_permissions",
    tenant_metadata,
    sa.Column("role", sa.String(64), primary_key=True),
    sa.Column("pattern", sa.String(200), primary_key=True),
    sa.Column("source", sa.String(80), primary_key=True),
)

grants = sa.Table(
    "perm_grants",
    tenant_metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("subject_type", sa.String(10), nullable=False),
    sa.Column("subject_id", sa.String(255), nullable=False),
    sa.Column("workspace_id", sa.String(36), nullable=False, server_default=TENANT_WIDE),
    sa.Column("created_by", sa.String(255), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("role", "subject_type", "subject_id", "workspace_id", name="uq_perm_grants_subject_role"),
    sa.CheckConstraint("subject_type IN ('user', 'team')", name="subject_type"),
)

policies = sa.Table(
    "perm_policies",
    tenant_metadata,
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("effect", sa.String(5), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("condition", sa.JSON(), nullable=True),
    sa.Column("description", sa.String(1000), nullable=False, server_default=""),
    sa.Column("source", sa.String(80), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("effect IN ('allow', 'deny')", name="effect"),
)

definitions = sa.Table(
    "perm_definitions",
    tenant_metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("plugin", sa.String(63), nullable=False),
    sa.Column("description", sa.String(1000), nullable=False, server_default=""),
)

plugins = sa.Table(
    "perm_plugins",
    tenant_metadata,
    sa.Column("plugin", sa.String(63), primary_key=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
)

sa.Index("ix_perm_grants_subject", grants.c.subject_type, grants.c.subject_id)
