"""Create the notes table.

Revision ID: notes_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plexica_sdk.migrations import tenant_schema

revision = "notes_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notes",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("author_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Index operations name their table by string: give them the tenant's schema explicitly.
    op.create_index("ix_notes_created_at", "notes", ["created_at"], schema=tenant_schema())


def downgrade() -> None:
    op.drop_index("ix_notes_created_at", table_name="notes", schema=tenant_schema())
    op.drop_table("notes")
