"""Helpers for a plugin's Alembic revisions, so they are written against the SDK alone.

A plugin's revisions run inside the host (``plexica migrate``, ``plexica plugins install``), which
binds each run to one tenant schema through the connection's ``schema_translate_map``: a revision
names its tables without a schema. Importing this module needs Alembic, which the host has; a
remote plugin's own process never runs migrations.
"""

from __future__ import annotations

__all__ = ["tenant_schema"]


def tenant_schema() -> str | None:
    """The schema this revision runs in, for operations that name their table by string.

    Alembic's index and column operations build their statements from table *names*, out of
    reach of the connection's ``schema_translate_map``; pass ``schema=tenant_schema()`` to them.
    ``None`` on SQLite, where each tenant is its own database file.
    """
    from alembic import op

    translate = op.get_bind().get_execution_options().get("schema_translate_map") or {}
    schema: str | None = translate.get(None)
    return schema
