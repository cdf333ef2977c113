"""Capturing the SQL a migration sends, and replaying it in another schema (PostgreSQL).

The capture runs Alembic in a scratch schema with a random name inside a transaction that is
rolled back, recording every statement sent to the server. The scratch name is 12+ random hex
digits, so substituting another schema's name for it cannot hit anything else; that also covers
statements Alembic renders with an explicit schema (``ALTER TABLE``), which
``schema_translate_map`` never reaches.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["READS", "Rollback", "rename", "run_script", "script_batches"]

#: Statements that change nothing: never replayed.
READS = ("select", "show", "pragma", "savepoint", "release", "rollback")


class Rollback(Exception):
    """Ends a capture transaction: the scratch schema must not survive its build."""


def script_batches(statements: Sequence[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """Join consecutive parameterless statements into scripts, keeping the execution order."""
    batches: list[tuple[str, Any]] = []
    script: list[str] = []
    for statement, parameters in statements:
        if parameters:
            if script:
                batches.append((";\n".join(script), None))
                script = []
            batches.append((statement, parameters))
        else:
            script.append(statement.strip().rstrip(";"))
    if script:
        batches.append((";\n".join(script), None))
    return tuple(batches)


def rename(batches: Sequence[tuple[str, Any]], scratch: str, schema: str) -> list[tuple[str, Any]]:
    """``batches`` with every mention of the ``scratch`` schema replaced by ``schema``."""
    pattern = re.compile(rf"\b{re.escape(scratch)}\b")
    return [(pattern.sub(schema, sql), parameters) for sql, parameters in batches]


async def run_script(conn: AsyncConnection, batches: Sequence[tuple[str, Any]]) -> None:
    """Run ``batches`` on ``conn``, inside the transaction the caller has already started.

    The driver connection runs a multi-statement script in one round trip (SQLAlchemy's asyncpg
    adapter prepares every statement, which allows one statement at a time). The caller must have
    executed a statement through SQLAlchemy first, so that its transaction is open.
    """
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    for sql, parameters in batches:
        if parameters is None:
            await driver.execute(sql)
        else:
            await conn.exec_driver_sql(sql, parameters)
