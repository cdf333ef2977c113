"""The plugin manager: validated manifests, dependency order, contributions and safe calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from plexica.plugins.builtin.core import CorePlugin
from plexica.plugins.discovery import PluginSource
from plexica.plugins.manager import PluginManager
from plexica_sdk.errors import PluginCallError, PluginLoadError
from plexica_sdk.markers import hookimpl
from plexica_sdk.types import (
    Event,
    EventTypeDef,
    PermissionDef,
    PluginManifest,
    RoleDef,
    Subscription,
    TenantContext,
)
from tests.plexica.plugins.helpers import TENANT, ManifestPlugin, manager_of

pytestmark = pytest.mark.anyio

READ = PermissionDef(key="notes:note:read")
WRITE = PermissionDef(key="notes:note:write")


# ------------------------------------------------------------- test plugins


class UnknownHook(ManifestPlugin):
    @hookimpl
    def plexica_nonexistent(self) -> None:
        """Not a Plexica hook."""


class ExtraArgument(ManifestPlugin):
    @hookimpl
    def plexica_tenant_provisioned(self, tenant: TenantContext, host: object, extra: object) -> None:
        """Declares an argument the hook does not have."""


class NoManifest:
    @hookimpl
    def plexica_permissions(self) -> Sequence[PermissionDef]:
        return []


class RaisingManifest:
    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        raise RuntimeError("manifest exploded")


class DictManifest:
    @hookimpl
    def plexica_manifest(self) -> Any:
        return {"name": "notes", "version": "1.0.0"}


class Contributing(ManifestPlugin):
    """Answers each contribution hook with what the test gives it (``None`` when not given)."""

    def __init__(self, name: str = "notes", *, contributions: Mapping[str, Any] | None = None, **manifest: Any) -> None:
        super().__init__(name, **manifest)
        self.contributions = contributions or {}

    @hookimpl
    def plexica_permissions(self) -> Any:
        return self.contributions.get("permissions")

    @hookimpl
    def plexica_event_types(self) -> Any:
        return self.contributions.get("event_types")

    @hookimpl
    def plexica_default_roles(self) -> Any:
        return self.contributions.get("default_roles")

    @hookimpl
    def plexica_subscriptions(self) -> Any:
        return self.contributions.get("subscriptions")

    @hookimpl
    def plexica_tenant_migrations(self) -> Any:
        return self.contributions.get("tenant_migrations")


class AsyncPermissions(ManifestPlugin):
    @hookimpl
    async def plexica_permissions(self) -> Sequence[PermissionDef]:
        return [READ]


class RaisingPermissions(ManifestPlugin):
    @hookimpl
    def plexica_permissions(self) -> Sequence[PermissionDef]:
        raise ValueError("no permissions today")


class Notified(ManifestPlugin):
    def __init__(self, name: str, log: list[str], *, is_async: bool = False, delay: float = 0.0, **manifest: Any):
        super().__init__(name, **manifest)
        self.log, self.is_async, self.delay = log, is_async, delay

    @hookimpl
    def plexica_tenant_provisioned(self, tenant: TenantContext) -> Any:
        if not self.is_async:
            self.log.append(self.manifest.name)
            return None
        return self._later()

    async def _later(self) -> None:
        await asyncio.sleep(self.delay)
        self.log.append(self.manifest.name)


class Attributes(ManifestPlugin):
    def __init__(self, name: str, answer: Mapping[str, Any] | None, **manifest: Any) -> None:
        super().__init__(name, **manifest)
        self.answer = answer

    @hookimpl
    async def plexica_resource_attributes(self, resource_id: str) -> Mapping[str, Any] | None:
        return self.answer


class CacheProvider(ManifestPlugin):
    def __init__(self, name: str, cache: object | None) -> None:
        super().__init__(name)
        self.cache = cache

    @hookimpl
    def plexica_cache_backend(self) -> Any:
        return self.cache


async def on_note_created(event: Event, host: Any) -> None:
    """A subscription handler for the tests."""


# ---------------------------------------------------------------- load errors

LOAD_ERRORS: dict[str, tuple[Callable[[], list[object]], str, str]] = {
    # id: (plugins, the plugin the error names, a fragment of the reason)
    "invalid-name": (lambda: [ManifestPlugin("Bad_Name")], "object:ManifestPlugin", "'Bad_Name'"),
    "non-semver-version": (lambda: [ManifestPlugin("notes", "1.0")], "notes", "not a semantic version"),
    "permission-of-another-plugin": (
        lambda: [ManifestPlugin("notes", permissions=[PermissionDef(key="billing:invoice:read")])],
        "notes",
        "must start with 'notes:'",
    ),
    "event-type-of-another-plugin": (
        lambda: [ManifestPlugin("notes", event_types=[EventTypeDef(type="billing.invoice.paid")])],
        "notes",
        "billing.invoice.paid",
    ),
    "missing-dependency": (
        lambda: [ManifestPlugin("notes", requires={"billing": ">=1"})],
        "notes",
        "'billing', which is not installed",
    ),
    "version-out-of-range": (
        lambda: [ManifestPlugin("billing", "1.5.0"), ManifestPlugin("notes", requires={"billing": ">=2"})],
        "notes",
        "requires billing >=2, but version 1.5.0 is installed",
    ),
    "core-version-out-of-range": (
        lambda: [ManifestPlugin("notes", requires={"core": ">=99"})],
        "notes",
        "requires core >=99",
    ),
    "cycle": (
        lambda: [
            ManifestPlugin("notes", requires={"tasks": ">=1"}),
            ManifestPlugin("tasks", requires={"notes": ">=1"}),
        ],
        "notes",
        "dependency cycle: notes -> tasks -> notes",
    ),
    "duplicate-name": (lambda: [ManifestPlugin("notes"), ManifestPlugin("notes", "2.0.0")], "notes", "same name"),
    "takes-the-core-name": (lambda: [ManifestPlugin("core")], "core", "same name"),
    "unknown-hook": (lambda: [UnknownHook("notes")], "notes", "plexica_nonexistent"),
    "argument-the-spec-lacks": (lambda: [ExtraArgument("notes")], "notes", "extra"),
    "no-manifest-hook": (lambda: [NoManifest()], "object:NoManifest", "does not implement plexica_manifest()"),
    "manifest-raises": (lambda: [RaisingManifest()], "object:RaisingManifest", "RuntimeError: manifest exploded"),
    "manifest-is-not-a-manifest": (lambda: [DictManifest()], "object:DictManifest", "not PluginManifest"),
}


@pytest.mark.parametrize(("plugins", "plugin", "reason"), LOAD_ERRORS.values(), ids=LOAD_ERRORS.keys())
def test_a_bad_plugin_stops_loading_with_an_error_naming_it(
    plugins: Callable[[], list[object]], plugin: str, reason: str
) -> None:
    with pytest.raises(PluginLoadError) as excinfo:
        manager_of(*plugins())
    assert excinfo.value.plugin == plugin
    assert reason in str(excinfo.value)


# ---------------------------------------------------------------- load order


def test_plugins_load_after_the_plugins_they_require_with_core_first() -> None:
    manager = manager_of(
        ManifestPlugin("reports", requires={"tasks": ">=1", "notes": ">=1"}),
        ManifestPlugin("tasks", requires={"notes": ">=1,<2"}),
        ManifestPlugin("notes", requires={"core": ">=0.1"}),
    )
    assert manager.order == ("core", "notes", "tasks", "reports")


def test_the_core_plugin_comes_first_even_when_its_source_comes_last() -> None:
    sources = [
        PluginSource(ManifestPlugin("notes"), "object:notes"),
        PluginSource(CorePlugin(), "builtin:core", "builtin"),
    ]
    assert PluginManager(sources).order == ("core", "notes")


def test_plugins_are_registered_under_their_manifest_name() -> None:
    plugin = ManifestPlugin("notes")
    manager = manager_of(plugin)
    loaded = manager.get("notes")
    assert loaded is not None
    assert loaded.obj is plugin
    assert loaded.name == "notes"
    assert manager.get("missing") is None


def test_infos_describe_every_plugin_in_load_order() -> None:
    manager = manager_of(ManifestPlugin("notes", "1.2.0", description="Notes", requires={"core": ">=0.1"}))
    core, notes = manager.infos()
    assert (core.name, core.mode) == ("core", "builtin")
    assert "core:tenant:read" in core.permissions
    assert (notes.name, notes.version, notes.description, notes.mode) == ("notes", "1.2.0", "Notes", "embedded")
    assert notes.requires == {"core": ">=0.1"}


def test_only_non_built_in_plugins_are_installable() -> None:
    manager = manager_of(ManifestPlugin("notes"), ManifestPlugin("tasks"))
    assert manager.installable == ("notes", "tasks")
    core = manager.get("core")
    assert core is not None
    assert core.is_builtin


# ------------------------------------------------------------- contributions


def test_permissions_from_the_manifest_and_the_hook_are_merged_without_duplicates() -> None:
    manager = manager_of(Contributing(permissions=[READ], contributions={"permissions": [READ, WRITE]}))
    notes = manager.get("notes")
    assert notes is not None
    assert notes.permissions == (READ, WRITE)
    assert notes.info().permissions == ("notes:note:read", "notes:note:write")


def test_event_types_and_roles_from_the_manifest_and_the_hook_are_merged() -> None:
    created, deleted = EventTypeDef(type="notes.note.created"), EventTypeDef(type="notes.note.deleted")
    member, editor = RoleDef(name="member", permissions=["notes:note:read"]), RoleDef(name="editor")
    manager = manager_of(
        Contributing(
            permissions=[READ],  # a default role may grant only permissions that exist
            event_types=[created],
            default_roles=[member],
            contributions={"event_types": [deleted], "default_roles": [editor]},
        )
    )
    notes = manager.get("notes")
    assert notes is not None
    assert notes.event_types == (created, deleted)
    assert notes.default_roles == (member, editor)


def test_subscriptions_and_tenant_migrations_are_collected(tmp_path: Path) -> None:
    subscription = Subscription(event_type="core.tenant.*", handler=on_note_created)
    (tmp_path / "versions").mkdir()
    manager = manager_of(
        Contributing(contributions={"subscriptions": [subscription], "tenant_migrations": str(tmp_path)})
    )
    notes = manager.get("notes")
    assert notes is not None
    assert notes.subscriptions == (subscription,)
    assert notes.tenant_migrations == str(tmp_path)


def test_a_plugin_contributing_nothing_has_empty_contributions() -> None:
    notes = manager_of(Contributing()).get("notes")
    assert notes is not None
    assert (notes.permissions, notes.event_types, notes.subscriptions, notes.tenant_migrations) == ((), (), (), None)


BAD_CONTRIBUTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "permission-of-another-plugin": ({"permissions": [PermissionDef(key="billing:invoice:read")]}, "starting 'notes:'"),
    "permission-not-a-permission-def": ({"permissions": ["notes:note:read"]}, "must be a PermissionDef"),
    "event-type-of-another-plugin": ({"event_types": [EventTypeDef(type="billing.x.y")]}, "starting 'notes.'"),
    "event-type-not-an-event-type-def": ({"event_types": ["notes.note.created"]}, "must be an EventTypeDef"),
    "subscription-not-a-subscription": ({"subscriptions": [{"event_type": "x"}]}, "is not a Subscription"),
    "migrations-not-a-path": ({"tenant_migrations": 42}, "must return a path string or None"),
}


@pytest.mark.parametrize(("contributions", "reason"), BAD_CONTRIBUTIONS.values(), ids=BAD_CONTRIBUTIONS.keys())
def test_a_bad_contribution_stops_loading_naming_the_plugin(contributions: dict[str, Any], reason: str) -> None:
    with pytest.raises(PluginLoadError, match=reason) as excinfo:
        manager_of(Contributing(contributions=contributions))
    assert excinfo.value.plugin == "notes"


@pytest.mark.parametrize(
    ("plugin", "reason"),
    [
        (AsyncPermissions("notes"), "contribution hooks must be synchronous"),
        (RaisingPermissions("notes"), "ValueError: no permissions today"),
    ],
    ids=["async", "raises"],
)
def test_a_failing_contribution_hook_stops_loading_naming_the_plugin(plugin: object, reason: str) -> None:
    with pytest.raises(PluginLoadError, match=reason) as excinfo:
        manager_of(plugin)
    assert excinfo.value.plugin == "notes"


# ------------------------------------------------------------------- calling


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_each_calls_plugins_in_load_order_dependencies_first(is_async: bool) -> None:
    log: list[str] = []
    manager = manager_of(
        Notified("reports", log, is_async=is_async, requires={"tasks": ">=1"}),
        Notified("tasks", log, is_async=is_async, delay=0.01, requires={"notes": ">=1"}),
        Notified("notes", log, is_async=is_async, delay=0.02),
    )
    results = await manager.each("plexica_tenant_provisioned", tenant=TENANT)
    assert log == ["notes", "tasks", "reports"]
    assert results.errors == ()


async def test_each_can_be_limited_to_some_plugins() -> None:
    log: list[str] = []
    manager = manager_of(Notified("notes", log), Notified("tasks", log))
    await manager.each("plexica_tenant_provisioned", only={"tasks"}, tenant=TENANT)
    assert log == ["tasks"]


async def test_each_applies_the_managers_hook_timeout_by_default() -> None:
    log: list[str] = []
    manager = manager_of(Notified("slow", log, is_async=True, delay=10), Notified("fast", log), hook_timeout=0.01)
    results = await manager.each("plexica_tenant_provisioned", tenant=TENANT)
    [error] = results.errors
    assert isinstance(error, PluginCallError)
    assert (error.plugin, error.reason) == ("slow", "timed out")
    assert log == ["fast"]


async def test_first_returns_the_first_answer_in_load_order() -> None:
    manager = manager_of(
        Attributes("tasks", {"owner": "tasks"}, requires={"notes": ">=1"}),
        Attributes("notes", None),
        Attributes("reports", {"owner": "reports"}),
    )
    answer = await manager.first("plexica_resource_attributes", resource_type="note", resource_id="n-1", tenant=TENANT)
    assert answer == {"owner": "tasks"}


def test_collect_returns_contributions_in_load_order(tmp_path: Path) -> None:
    tasks, notes = tmp_path / "tasks", tmp_path / "notes"
    (tasks / "versions").mkdir(parents=True)
    (notes / "versions").mkdir(parents=True)
    manager = manager_of(
        Contributing("tasks", contributions={"tenant_migrations": str(tasks)}, requires={"notes": ">=1"}),
        Contributing("notes", contributions={"tenant_migrations": str(notes)}),
    )
    collected = list(manager.collect("plexica_tenant_migrations").items())
    assert collected == [("notes", str(notes)), ("tasks", str(tasks))]


def test_provider_prefers_a_plugins_object_over_a_built_ins() -> None:
    builtin_cache, plugin_cache = object(), object()
    sources = [
        PluginSource(CorePlugin(), "builtin:core", "builtin"),
        PluginSource(CacheProvider("memory-cache", builtin_cache), "builtin:memory-cache", "builtin"),
        PluginSource(CacheProvider("redis-cache", plugin_cache), "object:CacheProvider"),
    ]
    assert PluginManager(sources).provider("plexica_cache_backend") is plugin_cache


def test_provider_falls_back_past_plugins_that_provide_none() -> None:
    builtin_cache = object()
    sources = [
        PluginSource(CacheProvider("memory-cache", builtin_cache), "builtin:memory-cache", "builtin"),
        PluginSource(CacheProvider("redis-cache", None), "object:CacheProvider"),
    ]
    assert PluginManager(sources).provider("plexica_cache_backend") is builtin_cache


def test_provider_is_none_when_nobody_provides() -> None:
    assert manager_of(ManifestPlugin("notes")).provider("plexica_cache_backend") is None
