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

from plexica.db.migrations.ops import create_outbox, drop_outbox

revision = "core_0004"
down_revision = "core_0003"
branch_labels = None
depends_on = None

SHARDS = 32  # plexica.events.models.SHARDS at the time of this revision


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    create_outbox(table_schema="core", index_schema="core")
    shards = op.create_table("outbox_shards", sa.Column("shard", sa.SmallInteger(), primary_key=True), schema="core")
    op.bulk_insert(shards, [{"shard": shard} for shard in range(SHARDS)])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_table("outbox_shards", schema="core")
    drop_outbox(table_schema="core", index_schema="core")
