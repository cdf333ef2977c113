"""Create the file metadata table.

Revision ID: files_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plexica_sdk.migrations import tenant_schema

revision = "files_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("key", name="uq_files_key"),
    )
    op.create_index("ix_files_workspace_created", "files", ["workspace_id", "created_at"], schema=tenant_schema())


def downgrade() -> None:
    op.drop_table("files")
