"""Per-tenant plugin configuration: schema checks at load, defaults, validation, the cache, on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from plexica.platform import Platform
from plexica.plugins.manifest import validate_manifest
from plexica.tenancy.models import tenant_plugins
from plexica.tenancy.naming import cache_prefix
from plexica.tenancy.plugin_config import CONFIG_TTL_SECONDS, config_key, merge_patch
from plexica.tenancy.service import tenant_context_of
from plexica_sdk import PluginManifest, hookimpl
from plexica_sdk.errors import NotFoundError, PluginLoadError, TenantNotFoundError, ValidationError
from tests.fixtures.sql import recorded_statements
from tests.plexica.db.support import MakePlatform

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "retention_days": {"type": "integer", "minimum": 1, "default": 30},
        "title": {"type": "string", "maxLength": 20},
        "tags": {"type": "array", "items": {"type": "string"}, "default": []},
        "limits": {
            "type": "object",
            "properties": {"per_user": {"type": "integer"}, "burst": {"type": "integer"}},
            "required": ["per_user"],
        },
    },
    "additionalProperties": False,
}


class ConfiguredPlugin:
    def __init__(self, name: str = "archive", schema: Any = SCHEMA) -> None:
        self.name, self.schema = name, schema

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name=self.name, version="1.0.0", config_schema=self.schema)


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine sends while the test runs."""
    with recorded_statements() as seen:
        yield seen


async def platform_with_tenant(make_platform: MakePlatform, *plugins: object) -> Platform:
    platform = await make_platform(ConfiguredPlugin(), *plugins)
    await platform.tenants.provision("acme")
    return platform


async def stored(platform: Platform, slug: str = "acme", plugin: str = "archive") -> Any:
    tenant = await platform.tenants.get(slug)
    async with platform.db.core_connection() as conn:
        return await conn.scalar(
            sa.select(tenant_plugins.c.config).where(
                tenant_plugins.c.tenant_id == tenant.id, tenant_plugins.c.plugin == plugin
            )
        )


# ----------------------------------------------------------------- load time


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "objekt"}, "not a valid JSON Schema"),
        ({"properties": {"n": {"minimum": "one"}}}, "not a valid JSON Schema at properties/n/minimum"),
        ({"type": "string"}, "must describe an object"),
        ({"properties": {"n": {"type": "integer", "default": "ten"}}}, "default of 'n' is invalid"),
        (["not", "a", "mapping"], "must be a JSON Schema object"),
    ],
)
def test_an_invalid_config_schema_fails_loading_naming_the_plugin(schema: Any, problem: str) -> None:
    with pytest.raises(PluginLoadError, match=problem) as raised:
        validate_manifest(ConfiguredPlugin("broken", schema).plexica_manifest(), origin="somewhere")
    assert raised.value.plugin == "broken"


def test_a_valid_config_schema_loads() -> None:
    assert validate_manifest(ConfiguredPlugin().plexica_manifest(), origin="x").config_schema == SCHEMA


def test_merge_patch_follows_rfc_7396() -> None:
    target = {"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}
    assert merge_patch(target, {"a": None, "b": {"c": None, "x": 9}, "e": [2]}) == {"b": {"d": 3, "x": 9}, "e": [2]}
    assert target == {"a": 1, "b": {"c": 2, "d": 3}, "e": [1]}  # untouched


def test_the_cache_key_is_built_on_the_tenant_prefix() -> None:
    assert config_key("acme", "archive") == f"{cache_prefix('acme')}plugin:archive:config"
    assert CONFIG_TTL_SECONDS == 600


# ------------------------------------------------------------- the service


@pytest.mark.anyio
async def test_defaults_fill_missing_top_level_properties(make_platform: MakePlatform) -> None:
    platform = await platform_with_tenant(make_platform)
    service = platform.plugin_config

    assert await service.get("acme", "archive") == {"retention_days": 30, "tags": []}
    saved = await service.set("acme", "archive", {"title": "Ledger"})
    assert saved == {"retention_days": 30, "tags": [], "title": "Ledger"}
    assert await stored(platform) == {"title": "Ledger"}  # defaults are not frozen into the row


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"retention_days": 0}, "retention_days"),
        ({"retention_days": "7"}, "retention_days"),
        ({"title": "x" * 21}, "title"),
        ({"tags": ["ok", 3]}, "tags.1"),
        ({"limits": {"burst": 2}}, "limits.per_user"),
        ({"limits": {"per_user": "many"}}, "limits.per_user"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_an_invalid_config_names_the_field_and_changes_nothing(
    make_platform: MakePlatform, config: dict[str, Any], field: str
) -> None:
    platform = await platform_with_tenant(make_platform)
    service = platform.plugin_config
    await service.set("acme", "archive", {"retention_days": 7})

    with pytest.raises(ValidationError) as raised:
        await service.set("acme", "archive", config)
    assert raised.value.field == field
    with pytest.raises(ValidationError) as merged:
        await service.update("acme", "archive", config)
    assert merged.value.field == field

    assert await stored(platform) == {"retention_days": 7}
    assert (await service.get("acme", "archive"))["retention_days"] == 7


@pytest.mark.anyio
async def test_update_merges_and_null_resets_to_the_default(make_platform: MakePlatform) -> None:
    platform = await platform_with_tenant(make_platform)
    service = platform.plugin_config
    await service.set("acme", "archive", {"retention_days": 7, "limits": {"per_user": 1, "burst": 5}})

    merged = await service.update("acme", "archive", {"title": "T", "limits": {"burst": None}})
    assert merged == {"retention_days": 7, "title": "T", "limits": {"per_user": 1}, "tags": []}
    reset = await service.update("acme", "archive", {"retention_days": None})
    assert reset["retention_days"] == 30
    assert await stored(platform) == {"title": "T", "limits": {"per_user": 1}}


@pytest.mark.anyio
async def test_unknown_builtin_or_uninstalled_plugins_and_tenants_are_not_found(make_platform: MakePlatform) -> None:
    platform = await platform_with_tenant(make_platform)
    service = platform.plugin_config
    for plugin in ("nope", "core"):
        with pytest.raises(NotFoundError):
            await service.get("acme", plugin)
        with pytest.raises(NotFoundError):
            await service.set("acme", plugin, {})
    with pytest.raises(TenantNotFoundError):
        await service.set("globex", "archive", {})

    await platform.tenants.uninstall_plugin("acme", "archive", keep_data=True)
    with pytest.raises(NotFoundError, match="not installed"):
        await service.set("acme", "archive", {"retention_days": 2})


@pytest.mark.anyio
async def test_a_plugin_without_a_schema_only_accepts_an_empty_config(make_platform: MakePlatform) -> None:
    platform = await platform_with_tenant(make_platform, ConfiguredPlugin("plain", None))
    assert await platform.plugin_config.get("acme", "plain") == {}
    with pytest.raises(ValidationError) as raised:
        await platform.plugin_config.set("acme", "plain", {"anything": 1})
    assert raised.value.field == "anything"


@pytest.mark.anyio
async def test_reads_go_through_the_cache_and_a_write_is_seen_at_once(
    make_platform: MakePlatform, statements: list[str]
) -> None:
    platform = await platform_with_tenant(make_platform)
    ctx = tenant_context_of(await platform.tenants.get("acme"))
    host = platform.host_for("archive", ctx)
    key = config_key("acme", "archive")

    assert await platform.cache.get(key) is None
    statements.clear()
    assert (await host.config())["retention_days"] == 30
    assert statements, "the cold read loads the row"
    assert json.loads(await platform.cache.get(key) or b"null") == {}

    statements.clear()
    assert (await host.config())["retention_days"] == 30
    assert statements == []  # warm: the cache answered, no database statement

    await platform.plugin_config.set("acme", "archive", {"retention_days": 90})
    assert await platform.cache.get(key) is None  # the write dropped the cached copy
    assert (await host.config())["retention_days"] == 90
    config = await host.config()
    config["retention_days"] = 1  # type: ignore[index]  # a caller mutating its copy changes nothing
    assert (await host.config())["retention_days"] == 90
