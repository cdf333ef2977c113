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

from alembic import op

from plexica.db.migrations.ops import create_outbox, drop_outbox

revision = "core_0005"
down_revision = "core_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        create_outbox(table_schema="core", index_schema="core")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        drop_outbox(table_schema="core", index_schema="core")
