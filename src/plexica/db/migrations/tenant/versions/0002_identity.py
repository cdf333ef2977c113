"""Identity: removal marks on user profiles, teams and their members.

Revision ID: tenant_0002
Revises: tenant_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from plexica.db.migrations.ops import tenant_schema

revision = "tenant_0002"
down_revision = "tenant_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = tenant_schema()
    op.add_column("users", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True), schema=schema)
    op.add_column("users", sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True), schema=schema)

    op.create_table(
        "teams",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(2000), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Names are unique regardless of case: an index on lower(name), on both dialects.
    op.create_index("uq_teams_name_lower", "teams", [sa.text("lower(name)")], unique=True, schema=schema)
    op.create_table(
        "team_members",
        sa.Column(
            "team_id",
            sa.String(36),
            sa.ForeignKey("teams.id", ondelete="CASCADE", name="fk_team_members_team_id_teams"),
            primary_key=True,
        ),
        sa.Column(
            "user_id",
            sa.String(255),
            sa.ForeignKey("users.id", ondelete="CASCADE", name="fk_team_members_user_id_users"),
            primary_key=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_team_members_user_id", "team_members", ["user_id"], schema=schema)


def downgrade() -> None:
    schema = tenant_schema()
    op.drop_index("ix_team_members_user_id", table_name="team_members", schema=schema)
    op.drop_table("team_members")
    op.drop_index("uq_teams_name_lower", table_name="teams", schema=schema)
    op.drop_table("teams")
    op.drop_column("users", "removed_at", schema=schema)
    op.drop_column("users", "updated_at", schema=schema)
