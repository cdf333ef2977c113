"""Workspaces: a tree of workspaces per tenant, and their members.

``path`` is the materialised path of ids (``/root-id/child-id/``), so a subtree is one
``LIKE 'prefix%'`` query on both dialects; ``depth`` is the number of ancestors (a root is 0).

Revision ID: tenant_0003
Revises: tenant_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plexica.db.migrations.ops import tenant_schema

revision = "tenant_0003"
down_revision = "tenant_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = tenant_schema()
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("description", sa.String(2000), nullable=True),
        sa.Column(
            "parent_id",
            sa.String(36),
            sa.ForeignKey("workspaces.id", ondelete="RESTRICT", name="fk_workspaces_parent_id_workspaces"),
            nullable=True,
        ),
        sa.Column("depth", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("slug", name="uq_workspaces_slug"),
        sa.CheckConstraint("status IN ('active', 'archived')", name="ck_workspaces_status"),
        sa.CheckConstraint("depth >= 0 AND depth <= 10", name="ck_workspaces_depth"),
    )
    op.create_index("ix_workspaces_parent_id", "workspaces", ["parent_id"], schema=schema)
    op.create_index(
        "ix_workspaces_path", "workspaces", ["path"], schema=schema, postgresql_ops={"path": "varchar_pattern_ops"}
    )

    op.create_table(
        "workspace_members",
        sa.Column(
            "workspace_id",
            sa.String(36),
            sa.ForeignKey("workspaces.id", ondelete="CASCADE", name="fk_workspace_members_workspace_id_workspaces"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.String(255),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_workspace_members_user_id_users"),
            primary_key=True,
        ),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'member', 'viewer')", name="ck_workspace_members_role"),
    )
    op.create_index("ix_workspace_members_user_id", "workspace_members", ["user_id"], schema=schema)


def downgrade() -> None:
    schema = tenant_schema()
    op.drop_index("ix_workspace_members_user_id", table_name="workspace_members", schema=schema)
    op.drop_table("workspace_members")
    op.drop_index("ix_workspaces_path", table_name="workspaces", schema=schema)
    op.drop_index("ix_workspaces_parent_id", table_name="workspaces", schema=schema)
    op.drop_table("workspaces")
