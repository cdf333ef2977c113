"""Super-admins: platform-realm users allowed to manage every tenant.

Revision ID: core_0002
Revises: core_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0002"
down_revision = "core_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "super_admins",
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("username", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema="core",
    )


def downgrade() -> None:
    op.drop_table("super_admins", schema="core")
