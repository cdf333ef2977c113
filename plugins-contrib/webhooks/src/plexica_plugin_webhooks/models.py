"""The webhooks tables, declared schema-less: the host binds them to each tenant's schema.

Secrets are stored as they are (HMAC signing needs the secret itself, so it cannot be hashed);
they live in the tenant's own schema and are never returned after creation or rotation.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

endpoints = sa.Table(
    "webhooks_endpoints",
    metadata,
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

#: One row per (event, endpoint): the unique key makes recording a redelivered event a no-op.
deliveries = sa.Table(
    "webhooks_deliveries",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("endpoint_id", sa.String(36), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(255), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    # pending (waiting for its next attempt), succeeded, failed (refused with a 4xx or by the SSRF
    # guard: never retried), dead (attempts exhausted, or its endpoint was disabled).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_status_code", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhooks_deliveries_endpoint_event"),
)
