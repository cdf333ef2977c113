"""Observability tests that need a host run on SQLite files and on a fresh PostgreSQL database each."""

from __future__ import annotations

from tests.plexica.db.support import database_url, make_platform

__all__ = ["database_url", "make_platform"]
