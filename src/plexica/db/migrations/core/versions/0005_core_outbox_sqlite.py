"""SQLite's ``core.outbox``: the outbox of events written in a ``core.db`` transaction.

Core events about tenants themselves (``core.tenant.*``) commit with the registry change that
causes them, in a ``core`` transaction: a tenant being provisioned may have no schema yet, and a
deleted one has none left, so their rows cannot live in a tenant file. On PostgreSQL they go to
the ``core.outbox`` every tenant already shares (``core_0004``); on SQLite this revision creates the
same table in ``core.db``, relayed as its own lane (``plexica.events._outbox_store.CORE_LANE``).

Revision ID: core_0005
Revises: core_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "core_0005"
down_revision = "core_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
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
        schema="core",
    )
    op.create_index(
        "ix_outbox_pending", "outbox", ["shard", "seq"], schema="core", sqlite_where=sa.text("sent_at IS NULL")
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"], schema="core")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_outbox_sent_at", "outbox", schema="core")
    op.drop_index("ix_outbox_pending", "outbox", schema="core")
    op.drop_table("outbox", schema="core")
