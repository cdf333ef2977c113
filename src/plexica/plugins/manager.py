"""The plugin manager: pluggy plus manifests, load order and failure-isolating calls."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, final

import attrs
import pluggy

from plexica.plugins import calls
from plexica.plugins.author_checks import check_hook_names, check_migrations, check_roles_and_subscriptions
from plexica.plugins.discovery import PluginSource
from plexica.plugins.manifest import load_order, validate_manifest
from plexica_sdk import hookspecs
from plexica_sdk.errors import PlexicaError, PluginCallError, PluginLoadError
from plexica_sdk.markers import PROJECT_NAME
from plexica_sdk.types import (
    PERMISSION_KEY_RE,
    EventTypeDef,
    PermissionDef,
    PluginInfo,
    PluginManifest,
    RoleDef,
    StorageNamespace,
    Subscription,
)

__all__ = ["LoadedPlugin", "PluginManager"]

_NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")


@attrs.frozen
class LoadedPlugin:
    """A registered plugin and everything it contributed at start-up."""

    manifest: PluginManifest
    obj: object
    source: PluginSource
    permissions: tuple[PermissionDef, ...]
    event_types: tuple[EventTypeDef, ...]
    default_roles: tuple[RoleDef, ...]
    subscriptions: tuple[Subscription, ...]
    tenant_migrations: str | None
    #: Storage namespaces: the manifest's ``storage`` plus ``plexica_storage_namespaces()``.
    storage: tuple[StorageNamespace, ...] = ()

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def is_builtin(self) -> bool:
        return self.source.mode == "builtin"

    def info(self) -> PluginInfo:
        return PluginInfo(
            name=self.name,
            version=self.manifest.version,
            description=self.manifest.description,
            mode=self.source.mode,
            permissions=tuple(p.key for p in self.permissions),
            requires=dict(self.manifest.requires),
        )


def _namespaces(plugin: str, declared: Sequence[object]) -> tuple[StorageNamespace, ...]:
    """Check a plugin's storage namespaces: ``StorageNamespace`` values, valid names, no duplicates."""
    checked: dict[str, StorageNamespace] = {}
    for namespace in declared:
        if not isinstance(namespace, StorageNamespace) or _NAMESPACE_RE.match(namespace.name) is None:
            raise PluginLoadError(
                plugin, f"storage namespace {namespace!r} must be a StorageNamespace named like 'attachments'"
            )
        if namespace.name in checked:
            raise PluginLoadError(plugin, f"storage namespace {namespace.name!r} is declared twice")
        if namespace.max_bytes is not None and namespace.max_bytes < 1:
            raise PluginLoadError(plugin, f"storage namespace {namespace.name!r}: max_bytes must be positive")
        checked[namespace.name] = namespace
    return tuple(checked.values())


def _manifest_of(source: PluginSource) -> PluginManifest:
    impl = getattr(source.obj, "plexica_manifest", None)
    if impl is None:
        raise PluginLoadError(source.origin, "does not implement plexica_manifest()")
    try:
        manifest = impl()
    except Exception as exc:
        raise PluginLoadError(source.origin, f"plexica_manifest() raised {type(exc).__name__}: {exc}") from exc
    return validate_manifest(manifest, origin=source.origin)


@final
class PluginManager:
    """Loads plugins once, in dependency order, and calls their hooks safely.

    Raises ``PluginLoadError`` from the constructor for a bad manifest, a duplicate name, a
    missing or out-of-range dependency, a cycle, an unknown hook or a bad hook signature.
    """

    def __init__(self, sources: Sequence[PluginSource], *, hook_timeout: float = 10.0) -> None:
        self.hook_timeout = hook_timeout
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        manifests = [(_manifest_of(source), source) for source in sources]
        builtin = [m.name for m, s in manifests if s.mode == "builtin"]
        self.order: tuple[str, ...] = tuple(load_order([m for m, _ in manifests], builtin=builtin))
        by_name = {m.name: (m, s) for m, s in manifests}
        for name in self.order:
            _manifest, source = by_name[name]
            check_hook_names(name, source.obj)  # before pluggy, which names the plugin by its repr
            try:
                self._pm.register(source.obj, name=name)
            except (pluggy.PluginValidationError, ValueError) as exc:
                raise PluginLoadError(name, str(exc)) from exc
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginLoadError(self._pm.get_name(exc.plugin) or "?", str(exc)) from exc
        self.plugins: dict[str, LoadedPlugin] = {name: self._contributions(*by_name[name]) for name in self.order}
        self._check_collisions()
        check_roles_and_subscriptions(self.plugins.values())

    # ------------------------------------------------------------------ loading

    def _contribution(self, name: str, hook: str, **kwargs: Any) -> Any:
        try:
            return calls.collect(self._pm, hook, [name], **kwargs).get(name)
        except (PluginCallError, PlexicaError) as exc:
            raise PluginLoadError(name, str(exc)) from exc

    def _contributions(self, manifest: PluginManifest, source: PluginSource) -> LoadedPlugin:
        name = manifest.name
        permissions = (*manifest.permissions, *(self._contribution(name, "plexica_permissions") or ()))
        for permission in permissions:
            if (
                not isinstance(permission, PermissionDef)
                or permission.plugin != name
                or not PERMISSION_KEY_RE.match(permission.key)
                or "*" in permission.key
            ):
                raise PluginLoadError(
                    name,
                    f"permission {permission!r} must be a PermissionDef starting '{name}:' "
                    f"(like '{name}:resource:action')",
                )
        event_types = (*manifest.event_types, *(self._contribution(name, "plexica_event_types") or ()))
        for event_type in event_types:
            if (
                not isinstance(event_type, EventTypeDef)
                or not event_type.type.startswith(f"{name}.")
                or event_type.type.count(".") < 2
            ):
                raise PluginLoadError(name, f"event type {event_type!r} must be an EventTypeDef starting '{name}.'")
        roles = (*manifest.default_roles, *(self._contribution(name, "plexica_default_roles") or ()))
        subscriptions = tuple(self._contribution(name, "plexica_subscriptions", plugins=self.order) or ())
        for subscription in subscriptions:
            if not isinstance(subscription, Subscription):
                raise PluginLoadError(name, f"subscription {subscription!r} is not a Subscription")
        storage = _namespaces(
            name, (*manifest.storage, *(self._contribution(name, "plexica_storage_namespaces") or ()))
        )
        migrations = self._contribution(name, "plexica_tenant_migrations")
        if migrations is not None and not isinstance(migrations, str):
            raise PluginLoadError(name, "plexica_tenant_migrations() must return a path string or None")
        if migrations is not None:
            check_migrations(name, migrations)
        return LoadedPlugin(
            manifest=manifest,
            obj=source.obj,
            source=source,
            permissions=tuple(dict.fromkeys(permissions)),
            event_types=tuple(event_types),
            default_roles=tuple(roles),
            subscriptions=subscriptions,
            tenant_migrations=migrations,
            storage=storage,
        )

    def _check_collisions(self) -> None:
        owners: dict[str, str] = {}
        for plugin in self.plugins.values():
            for event_type in plugin.event_types:
                owner = owners.setdefault(event_type.type, plugin.name)
                if owner != plugin.name:
                    raise PluginLoadError(plugin.name, f"event type {event_type.type!r} is already owned by {owner!r}")

    # ------------------------------------------------------------------ queries

    def get(self, name: str) -> LoadedPlugin | None:
        return self.plugins.get(name)

    def infos(self) -> list[PluginInfo]:
        return [plugin.info() for plugin in self.plugins.values()]

    @property
    def installable(self) -> tuple[str, ...]:
        """Names of the non-built-in plugins, in load order."""
        return tuple(name for name in self.order if not self.plugins[name].is_builtin)

    # ------------------------------------------------------------------ calling

    async def each(
        self,
        hook: str,
        *,
        only: Collection[str] | None = None,
        timeout: float | None = None,
        per_plugin: Callable[[str], Mapping[str, Any]] | None = None,
        **kwargs: Any,
    ) -> calls.HookResults:
        """Notification call in load order; see :func:`plexica.plugins.calls.call_each`."""
        return await calls.call_each(
            self._pm, hook, self.order, only=only, timeout=timeout or self.hook_timeout, per_plugin=per_plugin, **kwargs
        )

    async def first(
        self, hook: str, *, only: Collection[str] | None = None, timeout: float | None = None, **kwargs: Any
    ) -> Any:
        """Query call; see :func:`plexica.plugins.calls.call_first`."""
        return await calls.call_first(
            self._pm, hook, self.order, only=only, timeout=timeout or self.hook_timeout, **kwargs
        )

    def collect(self, hook: str, **kwargs: Any) -> dict[str, Any]:
        """Sync contribution call; see :func:`plexica.plugins.calls.collect`."""
        return calls.collect(self._pm, hook, self.order, **kwargs)

    def collect_reversed(self, hook: str) -> dict[str, Any]:
        """Sync contribution call in reverse load order: what provider hooks ask (plugins before built-ins)."""
        return calls.collect(self._pm, hook, list(reversed(self.order)))

    def provider(self, hook: str) -> Any:
        """The first non-``None`` object of a sync provider hook, plugins before built-ins."""
        return next((value for value in self.collect_reversed(hook).values() if value is not None), None)
