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

from plexica.db.migrations.ops import create_outbox, drop_outbox, tenant_schema

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
    if op.get_bind().dialect.name == "sqlite":
        create_outbox(table_schema=None, index_schema=schema)


def downgrade() -> None:
    schema = tenant_schema()
    if op.get_bind().dialect.name == "sqlite":
        drop_outbox(table_schema=None, index_schema=schema)
    op.drop_index("ix_processed_events_processed_at", "processed_events", schema=schema)
    op.drop_table("processed_events")
