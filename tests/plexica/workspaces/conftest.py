"""Workspace tests run on SQLite files and on a fresh PostgreSQL database each."""

from __future__ import annotations

from tests.plexica.identity.support import world

__all__ = ["world"]
