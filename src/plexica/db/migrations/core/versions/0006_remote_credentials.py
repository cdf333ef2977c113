"""Remote plugins' service credentials: one hashed secret per plugin (``plexica.remote.credentials``).

Revision ID: core_0006
Revises: core_0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0006"
down_revision = "core_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "remote_credentials",
        sa.Column("plugin", sa.String(63), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("key_id", name="uq_remote_credentials_key_id"),
        schema="core",
    )


def downgrade() -> None:
    op.drop_table("remote_credentials", schema="core")
