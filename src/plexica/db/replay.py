"""Fleet migrations by replay (PostgreSQL): Alembic runs a transition once, tenants replay its SQL.

Tenants at the same revisions of the same streams need the same statements to reach the same
targets. Running Alembic per tenant costs a dozen round trips and milliseconds of Python each (and
Alembic's module-level proxies allow one run at a time per process); replaying the captured SQL
costs one script. The transition is captured in a scratch schema first brought to the tenants'
starting revisions, inside a transaction that is rolled back (:mod:`plexica.db.capture`).

Two guards keep replay honest, and either sends the tenant back to Alembic:

* a transition whose revisions *read* tenant tables (a data migration deciding in Python what to
  write) is not replayable: its captured writes reflect the empty scratch schema;
* each replay starts by checking, in the same transaction, that the tenant's version tables hold
  the revisions the ledger promised; a stale ledger raises and the tenant falls back to Alembic.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import Any, final

import attrs
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from plexica.db.capture import READS, Rollback, rename, run_script, script_batches
from plexica.db.engine import Database
from plexica.db.migrations import MigrationStream, Transition, alembic_turn, apply
from plexica.tenancy.naming import quote_identifier

__all__ = ["Replay", "StaleLedgerError", "capture_transition", "replay"]

#: A tenant's streams: (stream, revision per the ledger, target revision).
State = Sequence[tuple[MigrationStream, str | None, str | None]]

_GUARD = "plexica-replay-guard"
_REVISION = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_CHECK = (
    "v := NULL; IF to_regclass('{table}') IS NOT NULL THEN "
    "EXECUTE 'SELECT max(version_num) FROM {table}' INTO v; END IF; "
    "IF v IS DISTINCT FROM {expected} THEN RAISE EXCEPTION '{guard}'; END IF;"
)


class StaleLedgerError(Exception):
    """The tenant is not where the ledger said: migrate it with Alembic instead."""


@final
@attrs.frozen
class Replay:
    """The SQL of one transition, captured in schema ``scratch``."""

    scratch: str
    guard: str
    batches: tuple[tuple[str, Any], ...]
    moves: dict[str, Transition]
    #: False: the transition read tenant data, so only Alembic can run it.
    replayable: bool


def _literal(revision: str | None) -> str:
    if revision is None:
        return "NULL"
    if not _REVISION.match(revision):
        raise ValueError(f"revision id {revision!r} is not quoted into SQL")
    return f"'{revision}'"


def _guard(scratch: str, state: State) -> str:
    """A DO block raising unless every version table holds the expected revision.

    Raises:
        ValueError: a table name or revision id is not safe to quote (the tenant then uses Alembic).
    """
    checks = []
    for stream, before, _ in state:
        table = f"{quote_identifier(scratch)}.{quote_identifier(stream.version_table)}"
        # Identifiers pass check_identifier and revision ids match _REVISION: safe to quote.
        checks.append(_CHECK.format(table=table, expected=_literal(before), guard=_GUARD))
    return "DO $plexica$ DECLARE v text; BEGIN " + " ".join(checks) + " END $plexica$"


async def capture_transition(db: Database, state: State) -> Replay:
    """Run ``state``'s transition once in a scratch schema and capture it (nothing is kept)."""
    scratch = f"plexica_replay_{secrets.token_hex(6)}"
    captured: list[tuple[str, Any]] = []
    reads_data = False
    try:
        guard, replayable = _guard(scratch, state), True
    except ValueError:
        guard, replayable = "", False

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        nonlocal reads_data
        if not statement.lstrip().lower().startswith(READS):
            captured.append((statement, parameters))
        elif scratch in statement and "alembic_version" not in statement:
            reads_data = True  # a revision looked at tenant rows

    moves: dict[str, Transition] = {}
    try:
        async with db.tenant_connection(scratch) as conn, alembic_turn():
            await conn.execute(text(f"CREATE SCHEMA {quote_identifier(scratch)}"))
            for stream, before, _ in state:
                if before is not None:
                    await conn.run_sync(apply, stream, scratch, before)
            event.listen(conn.sync_connection, "before_cursor_execute", capture)
            try:
                for stream, before, target in state:
                    if target != before:
                        moves[stream.name] = await conn.run_sync(apply, stream, scratch, target or "base")
            finally:
                event.remove(conn.sync_connection, "before_cursor_execute", capture)
            raise Rollback
    except Rollback:
        pass
    return Replay(scratch, guard, script_batches(captured), moves, replayable and not reads_data)


async def replay(conn: Any, captured: Replay, schema: str) -> None:
    """Replay ``captured`` in ``schema`` on ``conn`` (a transaction the caller commits).

    Raises:
        StaleLedgerError: the schema's version tables are not at the transition's start.
    """
    ((guard, _),) = rename([(captured.guard, None)], captured.scratch, schema)
    try:
        await conn.execute(text(guard))  # also opens SQLAlchemy's transaction for the script
    except DBAPIError as exc:
        if _GUARD in str(exc):
            raise StaleLedgerError(schema) from exc
        raise
    await run_script(conn, rename(captured.batches, captured.scratch, schema))
