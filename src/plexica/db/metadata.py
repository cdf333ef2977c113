"""The two metadata collections: ``core`` registries, and schema-less tenant tables.

Tenant tables carry no schema; a tenant-scoped connection maps ``None`` to the tenant's schema with
``schema_translate_map``, so the very same statements run on SQLite (attached files) and on
PostgreSQL (schemas), and no ``search_path`` ever lingers on a pooled connection.
"""

from __future__ import annotations

from sqlalchemy import MetaData

__all__ = ["CORE_SCHEMA", "NAMING_CONVENTION", "core_metadata", "tenant_metadata"]

CORE_SCHEMA = "core"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

core_metadata = MetaData(schema=CORE_SCHEMA, naming_convention=NAMING_CONVENTION)
tenant_metadata = MetaData(naming_convention=NAMING_CONVENTION)
