"""Helpers for writing tenant and plugin revisions (schema-less tables, bound per run)."""

from __future__ import annotations

from alembic import op

__all__ = ["tenant_schema"]


def tenant_schema() -> str | None:
    """The schema this revision runs in, for operations that name their table by string.

    Alembic's index and column operations build their statements from table *names*, out of
    reach of the connection's ``schema_translate_map``; pass ``schema=tenant_schema()`` to them.
    """
    translate = op.get_bind().get_execution_options().get("schema_translate_map") or {}
    schema: str | None = translate.get(None)
    return schema
