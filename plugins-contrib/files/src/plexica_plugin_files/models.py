"""The file metadata table, declared schema-less: the host binds it to each tenant's schema."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

#: One row per attachment. ``status`` is ``pending`` until the object is uploaded and checked.
files = sa.Table(
    "files",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(64), nullable=False),
    sa.Column("owner_id", sa.String(255), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("key", sa.String(1024), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=True),
)
