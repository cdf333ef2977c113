"""The transactional outbox of PostgreSQL deployments, and its claim shards.

Every tenant's outbox rows go to ``core.outbox`` on PostgreSQL: a tenant transaction writes there
without contention, and one table serves every relay however many tenants there are. Relays claim
``core.outbox_shards`` rows with ``FOR UPDATE SKIP LOCKED``; a row's shard is a hash of its key,
so one relay at a time publishes a given key. On SQLite nothing is created here: each tenant file
holds its own outbox (``tenant_0005``), since a ``core`` table would make every tenant transaction
take ``core.db``'s write lock.

Revision ID: core_0004
Revises: core_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0004"
down_revision = "core_0003"
branch_labels = None
depends_on = None

SHARDS = 32  # plexica.events.models.SHARDS at the time of this revision


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=True),
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
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table("outbox", *_columns(), schema="core")
    op.create_index(
        "ix_outbox_pending", "outbox", ["shard", "seq"], schema="core", postgresql_where=sa.text("sent_at IS NULL")
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"], schema="core")
    shards = op.create_table("outbox_shards", sa.Column("shard", sa.SmallInteger(), primary_key=True), schema="core")
    op.bulk_insert(shards, [{"shard": shard} for shard in range(SHARDS)])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_table("outbox_shards", schema="core")
    op.drop_table("outbox", schema="core")
