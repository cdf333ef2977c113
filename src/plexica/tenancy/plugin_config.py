"""Per-tenant plugin configuration: validated by the manifest's ``config_schema``, read through the cache.

A plugin's configuration for a tenant is the ``config`` of its ``core.tenant_plugins`` row. What
is stored is what the admin set; schema defaults are filled in on every read, so a plugin upgrade
that adds or changes a default applies to every tenant that did not choose a value. Reads go
through the cache key ``tenant:{slug}:plugin:{name}:config`` (10 min); every write deletes that
key after its commit, so the next read, in any process sharing the cache, loads the new row.

The module lives in ``tenancy`` rather than ``plugins``: it reads the tenant registry, and
``tenancy`` already depends on ``plugins`` (the reverse would be an import cycle).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, final

import jsonschema
import jsonschema.exceptions

from plexica.tenancy.naming import cache_prefix, validate_slug
from plexica.tenancy.repository import TenantRepository
from plexica_sdk.errors import NotFoundError, ValidationError
from plexica_sdk.types import TenantContext

if TYPE_CHECKING:
    from plexica.db.engine import Database
    from plexica.plugins.manager import PluginManager
    from plexica_sdk.protocols import Cache

__all__ = ["CONFIG_TTL_SECONDS", "PluginConfigService", "config_key", "merge_patch"]

logger = logging.getLogger(__name__)

#: How long a tenant's plugin configuration stays cached (the seed's cache table: 10 min).
CONFIG_TTL_SECONDS: Final = 600.0

#: A plugin without ``config_schema`` has no configuration: only ``{}`` is valid.
_NO_CONFIG: Final[Mapping[str, Any]] = {"type": "object", "additionalProperties": False}


def config_key(slug: str, plugin: str) -> str:
    """The cache key of ``plugin``'s configuration in tenant ``slug``."""
    return f"{cache_prefix(slug)}plugin:{plugin}:config"


def merge_patch(target: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Apply a JSON Merge Patch (RFC 7396): objects merge recursively, ``null`` removes a key."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping):
            current = merged.get(key)
            merged[key] = merge_patch(current if isinstance(current, Mapping) else {}, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _field(error: jsonschema.exceptions.ValidationError) -> str:
    """The dotted path of the offending field; for ``required``/``additionalProperties``, the key itself."""
    path = [str(part) for part in error.absolute_path]
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [key for key in required if key not in instance]
        path += missing[:1]
    elif error.validator == "additionalProperties" and isinstance(instance, Mapping):
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        known = schema.get("properties", {})
        extra = sorted(key for key in instance if key not in known)
        path += extra[:1]
    return ".".join(path) or "config"


@final
class PluginConfigService:
    """Reads and edits every plugin's per-tenant configuration.

    Args:
        db: the host database (the tenant registry lives in ``core``).
        cache: the shared cache configurations are read through.
        plugins: the loaded plugins, whose manifests carry the schemas.
    """

    def __init__(self, db: Database, cache: Cache, plugins: PluginManager) -> None:
        self.db = db
        self.cache = cache
        self.plugins = plugins
        self.repo = TenantRepository()
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    # ------------------------------------------------------------------ reads

    async def get(self, tenant: TenantContext | str, plugin: str) -> dict[str, Any]:
        """``plugin``'s configuration in ``tenant`` (a context, or a slug), schema defaults filled in.

        A warm read costs one cache GET and no database statement.

        Raises:
            NotFoundError: the plugin is not loaded, is built in, or is not enabled for the tenant.
            TenantNotFoundError: no such tenant.
        """
        schema = self.schema(plugin)
        slug = tenant.slug if isinstance(tenant, TenantContext) else validate_slug(tenant)
        key = config_key(slug, plugin)
        raw = await self.cache.get(key)
        if raw is not None:
            stored: dict[str, Any] = json.loads(raw)
        else:
            stored = await self._load(tenant, plugin)
            self._warn_if_invalid(slug, plugin, stored)
            await self.cache.set(key, _dumps(stored), ttl=CONFIG_TTL_SECONDS)
        return _with_defaults(schema, stored)

    async def _load(self, tenant: TenantContext | str, plugin: str) -> dict[str, Any]:
        async with self.db.core_connection() as conn:
            if isinstance(tenant, TenantContext):
                tenant_id, slug = tenant.tenant_id, tenant.slug
            else:
                found = await self.repo.get(conn, tenant)
                tenant_id, slug = found.id, found.slug
            install = await self.repo.plugin_of(conn, tenant_id, plugin)
        if install is None or install.status != "enabled":
            raise _not_installed(plugin, slug)
        return install.config

    def _warn_if_invalid(self, slug: str, plugin: str, stored: Mapping[str, Any]) -> None:
        """A plugin upgrade may tighten the schema under a stored config: say so, and serve it as is."""
        error = self._first_error(plugin, stored)
        if error is not None:
            logger.warning(
                "stored plugin configuration no longer matches its schema",
                extra={"tenant": slug, "plugin": plugin, "field": error.field, "problem": str(error)},
            )

    # ----------------------------------------------------------------- writes

    async def set(self, slug: str, plugin: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Replace ``plugin``'s configuration in tenant ``slug``; return it with defaults filled in.

        Raises:
            ValidationError: ``config`` fails the schema; ``field`` names the first bad field.
                Nothing is written.
            NotFoundError: the plugin is not loaded, is built in, or is not enabled for the tenant.
            TenantNotFoundError: no such tenant.
        """
        return await self._write(slug, plugin, lambda _stored: dict(config))

    async def update(self, slug: str, plugin: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the stored configuration (RFC 7396: ``None`` removes a key), then validate.

        The read and the write share one transaction holding the row lock (PostgreSQL), so two
        concurrent updates of different keys both land.

        Raises:
            ValidationError, NotFoundError, TenantNotFoundError: as :meth:`set`.
        """
        return await self._write(slug, plugin, lambda stored: merge_patch(stored, changes))

    async def _write(self, slug: str, plugin: str, change: Any) -> dict[str, Any]:
        schema = self.schema(plugin)
        validate_slug(slug)
        async with self.db.core_connection() as conn:
            tenant = await self.repo.get(conn, slug)
            install = await self.repo.plugin_of(conn, tenant.id, plugin, for_update=True)
            if install is None or install.status != "enabled":
                raise _not_installed(plugin, slug)
            config: dict[str, Any] = change(install.config)
            error = self._first_error(plugin, config)
            if error is not None:
                raise error  # raised inside the transaction: it rolls back, nothing changes
            await self.repo.set_plugin_config(conn, tenant.id, plugin, json.loads(_dumps(config)))
        await self.cache.delete(config_key(slug, plugin))  # after the commit: the next read loads the new row
        logger.info("plugin configuration changed", extra={"tenant": slug, "plugin": plugin})
        return _with_defaults(schema, config)

    # -------------------------------------------------------------- validation

    def validate(self, plugin: str, config: object) -> None:
        """Raise ``ValidationError`` (naming the first bad field) unless ``config`` fits ``plugin``'s schema."""
        error = self._first_error(plugin, config)
        if error is not None:
            raise error

    def _first_error(self, plugin: str, config: object) -> ValidationError | None:
        if not isinstance(config, Mapping):
            return ValidationError("the configuration must be a JSON object", field="config")
        try:
            _dumps(config)
        except (TypeError, ValueError):
            return ValidationError("the configuration must be JSON (objects, arrays, strings, numbers)", field="config")
        validator = self._validator(plugin)
        errors = sorted(validator.iter_errors(dict(config)), key=lambda e: (list(map(str, e.absolute_path)), e.message))
        if not errors:
            return None
        first = errors[0]
        field = _field(first)
        return ValidationError(f"invalid configuration of plugin {plugin!r}: {field}: {first.message}", field=field)

    def schema(self, plugin: str) -> Mapping[str, Any]:
        """``plugin``'s ``config_schema`` (``{}`` only, if it declares none). Raises ``NotFoundError``."""
        loaded = self.plugins.get(plugin)
        if loaded is None or loaded.is_builtin:
            raise NotFoundError(f"no plugin {plugin!r} to configure", resource="plugin")
        return loaded.manifest.config_schema or _NO_CONFIG

    def _validator(self, plugin: str) -> jsonschema.Draft202012Validator:
        validator = self._validators.get(plugin)
        if validator is None:  # the schema passed check_schema when the plugin was loaded
            validator = jsonschema.Draft202012Validator(
                dict(self.schema(plugin)), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
            )
            self._validators[plugin] = validator
        return validator


def _not_installed(plugin: str, slug: str) -> NotFoundError:
    return NotFoundError(f"plugin {plugin!r} is not installed for tenant {slug!r}", resource="plugin")


def _dumps(config: Mapping[str, Any]) -> bytes:
    return json.dumps(config, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


def _with_defaults(schema: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    effective = copy.deepcopy(dict(stored))
    properties = schema.get("properties", {})
    for key, sub in properties.items() if isinstance(properties, Mapping) else ():
        if key not in effective and isinstance(sub, Mapping) and "default" in sub:
            effective[key] = copy.deepcopy(sub["default"])
    return effective
