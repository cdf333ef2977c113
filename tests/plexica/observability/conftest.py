"""Observability tests that need a host run on SQLite files and on a fresh PostgreSQL database each;
those of the event bus use the event tests' buses."""

from __future__ import annotations

from tests.plexica.db.support import database_url, make_platform
from tests.plexica.events.conftest import delivery, make_bus

__all__ = ["database_url", "delivery", "make_bus", "make_platform"]
