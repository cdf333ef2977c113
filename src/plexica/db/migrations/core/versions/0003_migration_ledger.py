"""The migration ledger, warm spare schemas, and pinned plugin revisions per tenant.

``migration_ledger`` holds, per schema and stream, the revision in place, when it was applied and
how the last attempt went; ``plexica migrate`` compares it with each stream's head instead of
opening every tenant schema. ``schema_spares`` lists tenant schemas cloned ahead of time for fast
sign-up (PostgreSQL). ``tenant_plugins.target_revision`` pins a tenant to a revision of a plugin's
schema (NULL: follow the head).

Revision ID: core_0003
Revises: core_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0003"
down_revision = "core_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "migration_ledger",
        sa.Column("schema_name", sa.String(63), nullable=False),
        sa.Column("stream", sa.String(100), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=True),
        sa.Column("revision", sa.String(64), nullable=True),
        sa.Column("target", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("schema_name", "stream", name="pk_migration_ledger"),
        schema="core",
    )
    op.create_table(
        "schema_spares",
        sa.Column("schema_name", sa.String(63), primary_key=True),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema="core",
    )
    op.add_column("tenant_plugins", sa.Column("target_revision", sa.String(64), nullable=True), schema="core")


def downgrade() -> None:
    op.drop_column("tenant_plugins", "target_revision", schema="core")
    op.drop_table("schema_spares", schema="core")
    op.drop_table("migration_ledger", schema="core")
