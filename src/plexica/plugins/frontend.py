"""The web front ends a caller may load: module-federation remotes of the tenant's enabled plugins.

A shell asks ``GET /api/core/v1/frontend`` which remotes to register. :class:`FrontendCatalog`
answers for one tenant context: the enabled plugins that declare a ``frontend``, each with a URL the
browser can fetch, and only the modules the caller's permissions allow (checked with the same
authorizer as every route, so a workspace's roles count when the context names a workspace).

URLs: an ``objects:{namespace}/{key}`` entry becomes a presigned GET of the plugin's own object
(valid :data:`PRESIGN_SECONDS`); ``https://`` passes through; a path gets ``?v={version}``.
Presigned URLs change on every call, so :meth:`FrontendCatalog.etag` hashes what they stand
for plus the current :data:`ETAG_WINDOW_SECONDS` window: a client revalidating with ``If-None-Match``
keeps a body whose URLs still have at least ``PRESIGN_SECONDS - ETAG_WINDOW_SECONDS`` to live.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import quote

import attrs

from plexica_sdk.converter import unstructure
from plexica_sdk.types import FrontendDef, FrontendModule

if TYPE_CHECKING:
    from plexica.plugins.manager import LoadedPlugin
    from plexica_sdk.protocols import PluginObjects
    from plexica_sdk.types import Decision, TenantContext, TenantInfo

__all__ = [
    "ETAG_WINDOW_SECONDS",
    "PRESIGN_SECONDS",
    "FrontendCatalog",
    "FrontendManifest",
    "FrontendRemote",
    "entry_url",
]

log = logging.getLogger(__name__)

#: How long a presigned remote entry stays valid.
PRESIGN_SECONDS = 3600
#: How long one ETag of a response holding presigned URLs stays current.
ETAG_WINDOW_SECONDS = 300

OBJECTS_SCHEME = "objects:"


@attrs.frozen(kw_only=True)
class FrontendRemote:
    """One plugin's remote as the shell registers it (module federation's ``name`` and ``entry``).

    Attributes:
        plugin: the plugin's name.
        version: the version of the plugin serving it.
        scope: the container's name.
        remote_entry: the URL the browser fetches.
        remote_type: ``module`` (an ES module) or ``script`` (a classic ``var`` container).
        modules: the exposed modules this caller may use, in the manifest's order.
    """

    plugin: str
    version: str
    scope: str
    remote_entry: str
    remote_type: Literal["module", "script"]
    modules: tuple[FrontendModule, ...]


@attrs.frozen(kw_only=True)
class FrontendManifest:
    """The body of ``GET /api/core/v1/frontend``: the caller's tenant, workspace and remotes."""

    tenant: str
    workspace: str | None
    remotes: tuple[FrontendRemote, ...]


#: A store of one plugin's objects in one tenant (``Platform.plugin_objects``).
ObjectsFor = Callable[[str, "TenantContext"], "PluginObjects"]
Authorize = Callable[["TenantContext", str], Awaitable["Decision"]]


class Installs(Protocol):
    """The tenant directory's view of installs (``TenantService`` implements it)."""

    async def get_by_id(self, tenant_id: str) -> TenantInfo: ...

    async def installed_plugins(self, tenant: TenantInfo) -> dict[str, tuple[str, str]]: ...


async def entry_url(plugin: str, version: str, entry: str, objects: PluginObjects | None) -> str | None:
    """The URL a browser fetches for ``plugin``'s ``remote_entry``, or ``None`` if it names none.

    ``objects`` is the plugin's store in the caller's tenant (needed for ``objects:`` entries).

    Raises:
        ValidationError: an ``objects:`` key outside the plugin's namespaces (the store refuses it).
    """
    if entry.startswith(OBJECTS_SCHEME):
        if objects is None:
            return None
        return await objects.presigned_url(entry.removeprefix(OBJECTS_SCHEME), expires_in=PRESIGN_SECONDS)
    if entry.startswith("https://"):
        return entry
    if not entry or ":" in entry.split("/", 1)[0] or entry.startswith("//") or "\\" in entry:
        return None  # http:, javascript:, protocol-relative: never handed to a browser
    path = entry if entry.startswith("/") else f"/api/plugins/{plugin}/{entry}"
    return f"{path}{'&' if '?' in path else '?'}v={quote(version, safe='')}"


@attrs.frozen
class FrontendCatalog:
    """Builds a caller's :class:`FrontendManifest` from the loaded plugins and the tenant's installs.

    Args:
        plugins: the loaded plugins (``PluginManager.plugins``), in load order.
        installs: each tenant's installed plugins and their status (only ``enabled`` ones count).
        objects_for: a plugin's confined object store in a tenant context.
        authorize: the authorizer's decision for the context's user.
    """

    plugins: Callable[[], Mapping[str, LoadedPlugin]]
    installs: Installs
    objects_for: ObjectsFor
    authorize: Authorize

    async def manifest(self, ctx: TenantContext) -> FrontendManifest:
        """The remotes ``ctx``'s user may load: enabled plugins with a front end, modules they may use.

        A plugin whose ``frontend.permission`` the user lacks is left out, as is every module whose
        ``permission`` they lack, and a plugin with no module left. A remote entry that yields no
        URL (an unsafe scheme) is logged with the plugin's name and left out.
        """
        found = await self.installs.installed_plugins(await self.installs.get_by_id(ctx.tenant_id))
        enabled = {name for name, (_version, status) in found.items() if status == "enabled"}
        decisions: dict[str, bool] = {}

        async def allowed(permission: str | None) -> bool:
            if permission is None:
                return True
            if permission not in decisions:
                decisions[permission] = (await self.authorize(ctx, permission)).allowed
            return decisions[permission]

        remotes: list[FrontendRemote] = []
        for name, loaded in self.plugins().items():
            frontend: FrontendDef | None = loaded.manifest.frontend
            if frontend is None or not (loaded.is_builtin or name in enabled):
                continue
            if not await allowed(frontend.permission):
                continue
            modules = tuple([m for m in frontend.all_modules() if await allowed(m.permission)])
            if not modules:
                continue
            version = loaded.manifest.version
            objects = self.objects_for(name, ctx) if frontend.remote_entry.startswith(OBJECTS_SCHEME) else None
            url = await entry_url(name, version, frontend.remote_entry, objects)
            if url is None:
                log.warning("plugin %r: frontend remote_entry %r is not a usable URL", name, frontend.remote_entry)
                continue
            remotes.append(
                FrontendRemote(
                    plugin=name,
                    version=version,
                    scope=frontend.scope or name,
                    remote_entry=url,
                    remote_type=frontend.remote_type,
                    modules=modules,
                )
            )
        return FrontendManifest(tenant=ctx.slug, workspace=ctx.workspace_id, remotes=tuple(remotes))

    def etag(self, manifest: FrontendManifest, *, now: float | None = None) -> str:
        """A weak ETag of ``manifest`` that ignores presigned signatures (see the module docstring)."""
        plugins = self.plugins()
        stable = []
        presigned = False
        for remote in manifest.remotes:
            entry = plugins[remote.plugin].manifest.frontend
            declared = entry.remote_entry if entry is not None else remote.remote_entry
            presigned = presigned or declared.startswith(OBJECTS_SCHEME)
            stable.append({**unstructure(remote), "remote_entry": declared})
        window = int((time.time() if now is None else now) // ETAG_WINDOW_SECONDS) if presigned else None
        body = json.dumps([manifest.tenant, manifest.workspace, stable, window], sort_keys=True)
        return f'W/"{hashlib.sha256(body.encode()).hexdigest()[:32]}"'
