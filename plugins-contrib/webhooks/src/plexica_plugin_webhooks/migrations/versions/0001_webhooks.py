"""Create the endpoints and deliveries tables.

Revision ID: webhooks_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plexica_sdk.migrations import tenant_schema

revision = "webhooks_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhooks_endpoints",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("event_types", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("previous_secret", sa.String(200), nullable=True),
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(500), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "webhooks_deliveries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhooks_deliveries_endpoint_event"),
    )
    # The worker's query: due pending deliveries, oldest first.
    op.create_index(
        "ix_webhooks_deliveries_due", "webhooks_deliveries", ["status", "next_attempt_at"], schema=tenant_schema()
    )
    op.create_index(
        "ix_webhooks_deliveries_endpoint", "webhooks_deliveries", ["endpoint_id", "created_at"], schema=tenant_schema()
    )


def downgrade() -> None:
    op.drop_index("ix_webhooks_deliveries_endpoint", table_name="webhooks_deliveries", schema=tenant_schema())
    op.drop_index("ix_webhooks_deliveries_due", table_name="webhooks_deliveries", schema=tenant_schema())
    op.drop_table("webhooks_deliveries")
    op.drop_table("webhooks_endpoints")
