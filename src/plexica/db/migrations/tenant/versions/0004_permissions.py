"""Permissions: custom and plugin roles, their patterns, grants, policies, plugin registrations.

Revision ID: tenant_0004
Revises: tenant_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plexica.db.migrations.ops import tenant_schema

revision = "tenant_0004"
down_revision = "tenant_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = tenant_schema()
    op.create_table(
        "perm_roles",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("source", sa.String(80), primary_key=True),
        sa.Column("description", sa.String(1000), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "perm_role_permissions",
        sa.Column("role", sa.String(64), primary_key=True),
        sa.Column("pattern", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(80), primary_key=True),
    )
    op.create_table(
        "perm_grants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("subject_type", sa.String(10), nullable=False),
        sa.Column("subject_id", sa.String(255), nullable=False),
        sa.Column("workspace_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("role", "subject_type", "subject_id", "workspace_id", name="uq_perm_grants_subject_role"),
        sa.CheckConstraint("subject_type IN ('user', 'team')", name="ck_perm_grants_subject_type"),
    )
    op.create_index("ix_perm_grants_subject", "perm_grants", ["subject_type", "subject_id"], schema=schema)
    op.create_table(
        "perm_policies",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("effect", sa.String(5), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("condition", sa.JSON(), nullable=True),
        sa.Column("description", sa.String(1000), nullable=False, server_default=""),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("effect IN ('allow', 'deny')", name="ck_perm_policies_effect"),
    )
    op.create_table(
        "perm_definitions",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("plugin", sa.String(63), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False, server_default=""),
    )
    op.create_table(
        "perm_plugins",
        sa.Column("plugin", sa.String(63), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    schema = tenant_schema()
    op.drop_table("perm_plugins")
    op.drop_table("perm_definitions")
    op.drop_table("perm_policies")
    op.drop_index("ix_perm_grants_subject", table_name="perm_grants", schema=schema)
    op.drop_table("perm_grants")
    op.drop_table("perm_role_permissions")
    op.drop_table("perm_roles")
