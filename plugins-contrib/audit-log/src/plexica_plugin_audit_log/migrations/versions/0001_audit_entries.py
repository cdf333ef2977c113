"""Create the append-only audit table.

Revision ID: audit_log_0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plexica_sdk.migrations import tenant_schema

revision = "audit_log_0001"
down_revision = None
branch_labels = None
depends_on = None

#: PostgreSQL: UPDATE and TRUNCATE always fail; DELETE only inside a purge transaction, which sets
#: ``audit_log.purge`` locally. A guard against every other code path, not against the DB owner.
_PG_FUNCTION = """
CREATE FUNCTION {q}audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('audit_log.purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def _prefix(schema: str | None) -> str:
    return f'"{schema}".' if schema else ""


def upgrade() -> None:
    schema = tenant_schema()
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("type", sa.String(255), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("trace_id", sa.String(64), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.UniqueConstraint("event_id", name="uq_audit_entries_event_id"),
    )
    op.create_index("ix_audit_entries_type", "audit_entries", ["type"], schema=schema)
    op.create_index("ix_audit_entries_actor", "audit_entries", ["actor"], schema=schema)
    op.create_index("ix_audit_entries_occurred_at", "audit_entries", ["occurred_at"], schema=schema)
    q = _prefix(schema)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION.format(q=q))
        op.execute(
            f"CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON {q}audit_entries "
            f"FOR EACH ROW EXECUTE FUNCTION {q}audit_entries_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON {q}audit_entries "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {q}audit_entries_append_only()"
        )
    else:  # SQLite has no session settings: UPDATE is refused here, DELETE is left to the repository.
        op.execute(
            f"CREATE TRIGGER {q}audit_entries_no_update BEFORE UPDATE ON audit_entries "
            "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only: UPDATE refused'); END"
        )


def downgrade() -> None:
    schema = tenant_schema()
    op.drop_table("audit_entries")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {_prefix(schema)}audit_entries_append_only()")
