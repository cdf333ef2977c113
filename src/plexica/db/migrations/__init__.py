"""Alembic migration streams: ``core``, the tenant base, and one per plugin.

No ``env.py`` is needed: :mod:`plexica.db.migrations.runner` drives Alembic's environment
itself, binding each run to one connection and one schema.
"""

from __future__ import annotations

from plexica.db.migrations.runner import (
    CORE_STREAM,
    TENANT_STREAM,
    MigrationStream,
    Transition,
    alembic_turn,
    apply,
    current_revision,
    downgrade,
    head_revision,
    plugin_stream,
    upgrade,
)

__all__ = [
    "CORE_STREAM",
    "TENANT_STREAM",
    "MigrationStream",
    "Transition",
    "alembic_turn",
    "apply",
    "current_revision",
    "downgrade",
    "head_revision",
    "plugin_stream",
    "upgrade",
]
