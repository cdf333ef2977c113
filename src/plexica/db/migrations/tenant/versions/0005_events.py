"""Events: processed-event ids per plugin (idempotent handlers), and the SQLite outbox.

``processed_events`` backs ``Host.mark_processed``. ``outbox`` is created on SQLite only: there a
tenant transaction can write only its own file, so each tenant holds its own outbox; on PostgreSQL
every tenant's rows go to ``core.outbox`` (``core_0004``).

Revision ID: tenant_0005
Revises: tenant_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plexica.db.migrations.ops import tenant_schema

revision = "tenant_0005"
down_revision = "tenant_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = tenant_schema()
    op.create_table(
        "processed_events",
        sa.Column("plugin", sa.String(63), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"], schema=schema)
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "outbox",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=True),
        sa.Column("event_type", sa.String(150), nullable=False),
        sa.Column("key", sa.Text(), nullable=True),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(2000), nullable=True),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_outbox_pending", "outbox", ["shard", "seq"], schema=schema, sqlite_where=sa.text("sent_at IS NULL")
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"], schema=schema)


def downgrade() -> None:
    schema = tenant_schema()
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_outbox_sent_at", "outbox", schema=schema)
        op.drop_index("ix_outbox_pending", "outbox", schema=schema)
        op.drop_table("outbox")
    op.drop_index("ix_processed_events_processed_at", "processed_events", schema=schema)
    op.drop_table("processed_events")
