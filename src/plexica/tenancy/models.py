"""Tables of the tenant registry (schema ``core``); migrations ``core_0001`` and ``core_0003`` create them."""

from __future__ import annotations

import sqlalchemy as sa

from plexica.db.metadata import core_metadata

__all__ = ["tenant_plugins", "tenants"]

tenants = sa.Table(
    "tenants",
    core_metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("slug", sa.String(50), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("plan", sa.String(50), nullable=False),
    sa.Column("schema_name", sa.String(63), nullable=False),
    sa.Column("settings", sa.JSON(), nullable=False),
    sa.Column("steps", sa.JSON(), nullable=False),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

tenant_plugins = sa.Table(
    "tenant_plugins",
    core_metadata,
    sa.Column("tenant_id", sa.String(36), sa.ForeignKey("core.tenants.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("plugin", sa.String(63), primary_key=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("config", sa.JSON(), nullable=False),
    #: A revision of the plugin's schema this tenant is pinned to; NULL follows the head.
    sa.Column("target_revision", sa.String(64), nullable=True),
    sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
