"""The migration ledger (``core.migration_ledger``): per schema and stream, what is applied.

A row says which revision a schema is at for one stream, when it got there and how the last
attempt went. ``plexica migrate`` reads the whole ledger in one query and compares it with each
stream's head, so a fleet with nothing to do costs one query instead of one Alembic run per
tenant. On PostgreSQL a success is recorded in the migration's own transaction; on SQLite (where
``core`` is another file) right after it commits, so the ledger can lag a schema (a crash in
between) but never run ahead of it, and a lagging row only costs a re-check. Failures are
recorded after the rollback.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Collection
from typing import Any, Literal

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.db.metadata import core_metadata

__all__ = ["LedgerEntry", "Outcome", "forget", "migration_ledger", "read_ledger", "record_failure", "record_success"]

Outcome = Literal["ok", "failed"]

#: Longest error text kept; the first lines of a database error say what went wrong.
MAX_ERROR = 1000

migration_ledger = sa.Table(
    "migration_ledger",
    core_metadata,
    sa.Column("schema_name", sa.String(63), primary_key=True),
    sa.Column("stream", sa.String(100), primary_key=True),
    sa.Column("tenant_id", sa.String(36), nullable=True),
    sa.Column("revision", sa.String(64), nullable=True),
    sa.Column("target", sa.String(64), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("duration_ms", sa.Integer(), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


@attrs.frozen
class LedgerEntry:
    """One schema's state for one stream. ``revision`` None: nothing of the stream is applied."""

    schema: str
    stream: str
    tenant_id: str | None
    revision: str | None
    target: str | None
    outcome: Outcome
    error: str | None
    duration_ms: int
    applied_at: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _entry(row: sa.Row[Any]) -> LedgerEntry:
    applied = row.applied_at if row.applied_at.tzinfo else row.applied_at.replace(tzinfo=dt.UTC)
    return LedgerEntry(
        schema=row.schema_name,
        stream=row.stream,
        tenant_id=row.tenant_id,
        revision=row.revision,
        target=row.target,
        outcome=row.outcome,
        error=row.error,
        duration_ms=row.duration_ms,
        applied_at=applied,
    )


async def read_ledger(
    conn: AsyncConnection, schemas: Collection[str] | None = None
) -> dict[tuple[str, str], LedgerEntry]:
    """The ledger as ``{(schema, stream): entry}``, for every schema or only ``schemas``."""
    query = sa.select(migration_ledger)
    if schemas is not None:
        query = query.where(migration_ledger.c.schema_name.in_(list(schemas)))
    return {(e.schema, e.stream): e for e in map(_entry, (await conn.execute(query)).all())}


@functools.cache
def _upsert(dialect: str, update: tuple[str, ...]) -> Any:
    """One statement per dialect and column set, executed with a list of rows: compiled once, cached."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(migration_ledger)
    return statement.on_conflict_do_update(
        index_elements=[migration_ledger.c.schema_name, migration_ledger.c.stream],
        set_={name: statement.excluded[name] for name in update},
    )


_SUCCESS = ("tenant_id", "revision", "target", "outcome", "error", "duration_ms", "applied_at")
_FAILURE = ("target", "outcome", "error", "duration_ms", "applied_at")


async def record_success(
    conn: AsyncConnection,
    schema: str,
    revisions: dict[str, str | None],
    *,
    tenant_id: str | None,
    duration_ms: int,
) -> None:
    """Record that ``schema`` is at ``revisions`` (``{stream: revision}``), all in one statement."""
    if not revisions:
        return
    now = _now()
    rows = [
        {
            "schema_name": schema,
            "stream": stream,
            "tenant_id": tenant_id,
            "revision": revision,
            "target": revision,
            "outcome": "ok",
            "error": None,
            "duration_ms": duration_ms,
            "applied_at": now,
        }
        for stream, revision in revisions.items()
    ]
    await conn.execute(_upsert(conn.dialect.name, _SUCCESS), rows)


async def record_failure(
    conn: AsyncConnection,
    schema: str,
    stream: str,
    *,
    tenant_id: str | None,
    target: str | None,
    error: str,
    duration_ms: int,
) -> None:
    """Record a failed attempt; the revision in place is left as it was (the attempt rolled back)."""
    row = {
        "schema_name": schema,
        "stream": stream,
        "tenant_id": tenant_id,
        "revision": None,
        "target": target,
        "outcome": "failed",
        "error": error[:MAX_ERROR],
        "duration_ms": duration_ms,
        "applied_at": _now(),
    }
    await conn.execute(_upsert(conn.dialect.name, _FAILURE), [row])


async def forget(conn: AsyncConnection, schema: str, stream: str | None = None) -> None:
    """Drop ``schema``'s rows (one stream's, or all): before a downgrade, or when a schema goes."""
    query = migration_ledger.delete().where(migration_ledger.c.schema_name == schema)
    if stream is not None:
        query = query.where(migration_ledger.c.stream == stream)
    await conn.execute(query)
