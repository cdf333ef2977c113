"""The audit table, declared schema-less: the host binds it to each tenant's schema."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: One row per event, never changed. ``seq`` orders the trail and is the paging cursor.
entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False, unique=True),
    sa.Column("type", sa.String(255), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("actor", sa.String(255), nullable=True),
    sa.Column("subject", sa.String(255), nullable=True),
    sa.Column("workspace_id", sa.String(64), nullable=True),
    sa.Column("trace_id", sa.String(64), nullable=True),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", sa.JSON(), nullable=True),
)
