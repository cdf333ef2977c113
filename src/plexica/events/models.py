"""Tables of the transactional outbox and of processed-event ids.

The outbox lives where a tenant's own transaction can write it without touching anyone else's
locks (see ``docs/events.md``): on PostgreSQL one ``core.outbox`` table for every tenant (migration
``core_0004``), claimed in shards (``core.outbox_shards``) so several relays keep per-key order; on
SQLite an ``outbox`` table inside each tenant's file (``tenant_0005``), because attaching
``core.db`` to tenant connections would make every tenant transaction take core's write lock.
Both have the same columns. ``processed_events`` is a tenant table on both (``tenant_0005``).
"""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa

from plexica.db.metadata import core_metadata, tenant_metadata

__all__ = ["SHARDS", "core_outbox", "outbox_columns", "outbox_shards", "processed_events", "tenant_outbox"]

#: Claim units of ``core.outbox``: a relay holds a shard while it publishes its rows, and every row
#: with the same key falls in the same shard. Fixed by migration ``core_0004``.
SHARDS: Final = 32


def outbox_columns() -> list[sa.Column[object]]:
    """The outbox's columns, shared by both placements (and by the migrations)."""
    return [
        #: The order rows are published in (per shard): monotonic, assigned at insert.
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(36), nullable=True),
        sa.Column("event_type", sa.String(150), nullable=False),
        sa.Column("key", sa.Text(), nullable=True),  # the record key; None: the event has no order to keep
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),  # the whole event as JSON, data included
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(2000), nullable=True),
        #: A relay's lease on the row while it publishes (SQLite, where rows cannot stay locked).
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
    ]


def _indexes(table: sa.Table) -> None:
    pending = table.c.sent_at.is_(None)
    sa.Index("ix_outbox_pending", table.c.shard, table.c.seq, postgresql_where=pending, sqlite_where=pending)
    sa.Index("ix_outbox_sent_at", table.c.sent_at)


core_outbox = sa.Table("outbox", core_metadata, *outbox_columns())
_indexes(core_outbox)

outbox_shards = sa.Table("outbox_shards", core_metadata, sa.Column("shard", sa.SmallInteger(), primary_key=True))

tenant_outbox = sa.Table("outbox", tenant_metadata, *outbox_columns())
_indexes(tenant_outbox)

processed_events = sa.Table(
    "processed_events",
    tenant_metadata,
    sa.Column("plugin", sa.String(63), primary_key=True),
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_processed_events_processed_at", "processed_at"),
)
