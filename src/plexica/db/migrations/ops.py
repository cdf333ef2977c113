"""Helpers for writing tenant and plugin revisions (schema-less tables, bound per run)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plexica_sdk.migrations import tenant_schema

__all__ = ["create_outbox", "drop_outbox", "tenant_schema"]


def create_outbox(*, table_schema: str | None, index_schema: str | None) -> None:
    """Create an ``outbox`` table and its indexes: ``core.outbox``, or a SQLite tenant file's own.

    The three revisions that create one (``core_0004`` on PostgreSQL, ``core_0005`` and
    ``tenant_0005`` on SQLite) share this shape, so a relay reads every lane alike. ``seq`` is a
    BIGINT on PostgreSQL and SQLite's INTEGER rowid alias (the only autoincrementing key) there.
    A tenant revision names its table without a schema (the translate map binds it) but must
    name the schema for its indexes (``tenant_schema()``).
    """
    seq = sa.Integer() if op.get_bind().dialect.name == "sqlite" else sa.BigInteger()
    op.create_table(
        "outbox",
        sa.Column("seq", seq, primary_key=True, autoincrement=True),
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
        schema=table_schema,
    )
    pending = sa.text("sent_at IS NULL")
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["shard", "seq"],
        schema=index_schema,
        postgresql_where=pending,
        sqlite_where=pending,
    )
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"], schema=index_schema)


def drop_outbox(*, table_schema: str | None, index_schema: str | None) -> None:
    """Drop what :func:`create_outbox` created."""
    op.drop_index("ix_outbox_sent_at", "outbox", schema=index_schema)
    op.drop_index("ix_outbox_pending", "outbox", schema=index_schema)
    op.drop_table("outbox", schema=table_schema)
