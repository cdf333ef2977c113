# mypy: disable-error-code="empty-body"
"""Every hook a plugin may implement, grouped by family.

The shape of a name tells how the host calls it:

* contribution ``plexica_<things>``: sync; every result is collected at start-up or install;
* notification ``plexica_<subject>_<past tense>``: sync or async; awaited in order, results ignored;
* provider ``plexica_<thing>_backend``: sync, ``firstresult``: the first object wins;
* query ``plexica_<noun>``: sync or async; awaited in order, the first non-``None`` wins.

Arguments and results are :mod:`plexica_sdk.types` values or builtins; ``host`` arguments are the
plugin's :class:`~plexica_sdk.protocols.Host` handle. Implementations may accept any subset of a
hook's arguments. A failing implementation is reported with the plugin's name and hook; for
notifications the other plugins still run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plexica_sdk.markers import hookspec
from plexica_sdk.types import (
    EventTypeDef,
    ObjectInfo,
    PermissionDef,
    PluginManifest,
    Policy,
    RoleDef,
    StorageNamespace,
    Subscription,
    TenantContext,
)

if TYPE_CHECKING:
    from plexica_sdk.protocols import Cache, Host, ObjectStore

# ---------------------------------------------------------------- identity


@hookspec
def plexica_manifest() -> PluginManifest:
    """Describe the plugin: name, version, dependencies, permissions, event types, storage, config schema.

    Called once per plugin when the host is built (``create_app``, every CLI command), outside any
    tenant, before any other hook. Sync; every plugin must implement it. Result: a
    ``PluginManifest``. Failure (an exception or an invalid manifest): start-up stops with
    ``PluginLoadError`` naming the plugin.
    """


@hookspec
def plexica_host_started(host: Host) -> Awaitable[None] | None:
    """The host finished starting; ``host`` is the plugin's handle (outside any tenant).

    Called once per process after the database, cache, object store and event bus are open and
    ``core`` is migrated, in load order, outside any tenant context (the handle's tenant-scoped
    calls raise ``TenantContextMissingError`` unless the hook enters one). May be async; bounded by
    ``http.plugin_timeout_seconds``. Result ignored. Failure: logged with the plugin's name and
    hook; the other plugins still run and the host keeps starting.
    """


@hookspec
def plexica_host_stopping(host: Host) -> Awaitable[None] | None:
    """The host is shutting down; its resources are still open.

    Called once per process at the start of shutdown, in load order, outside any tenant. May be
    async. Result ignored. Failure: logged with the plugin's name; shutdown continues.
    """


# ----------------------------------------------------------------- tenants


@hookspec
def plexica_tenant_provisioned(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """A tenant finished provisioning and is about to become active.

    Called once per tenant by ``TenantService.provision`` (the ``hooks`` step), inside that
    tenant's context, after its schema, plugin tables, default roles and bucket exist and before
    ``core.tenant.created`` is published. May be async. Result ignored. Failure: the provisioning
    fails and is undone (``plexica_tenant_deleting`` is called so plugins can clean up, then the
    bucket, schema and registry row are removed) and the error reaches the caller; provisioning
    the slug again starts over. A crash of the process instead leaves the tenant
    ``provisioning``, and the next ``provision`` resumes at this step, so implementations must be
    idempotent.
    """


@hookspec
def plexica_tenant_suspended(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """A tenant was suspended (its users are already refused).

    Called after the status change (and its ``core.tenant.suspended`` event, which the outbox relay
    publishes independently of this hook) committed, once per suspension, inside the tenant's
    context. May be async. Result ignored. Failure: logged with the plugin's name; the tenant stays
    suspended and the other plugins still run.
    """


@hookspec
def plexica_tenant_resumed(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """A suspended tenant became active again.

    Called after the status change (and its ``core.tenant.resumed`` event, published by the outbox
    relay independently of this hook) committed, inside the tenant's context. May be async. Result
    ignored. Failure: logged; the tenant stays active and the other plugins still run.
    """


@hookspec
def plexica_tenant_deleting(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """A tenant is being deleted; its schema, objects and cache still exist.

    Called by ``TenantService.delete`` inside the tenant's context, before its bucket, cache keys
    and schema are removed, so a plugin can export or clean up outside the database; also called
    when a failed provisioning is undone. May be async. Result ignored. Failure: the deletion
    stops with the tenant left ``deleting`` and the error reaches the caller; deleting again calls
    the hook again, so implementations must be idempotent.
    """


@hookspec
def plexica_plugin_installed(tenant: TenantContext, version: str, host: Host) -> Awaitable[None] | None:
    """This plugin was installed for a tenant, after its migrations ran.

    Called only on the plugin being installed (at provisioning, or by ``plexica plugins install``
    / the install API), inside the tenant's context, after its tables, permissions and default
    grants exist. ``version`` is the installed manifest version. May be async. Failure: the
    install fails and its migrations are undone; the error reaches the caller.
    """


@hookspec
def plexica_plugin_upgraded(
    tenant: TenantContext, from_version: str, to_version: str, host: Host
) -> Awaitable[None] | None:
    """This plugin was upgraded for a tenant, after the pending migrations ran.

    Called only on the upgraded plugin, inside the tenant's context, after the new version is
    recorded and its new permissions registered: by ``plexica plugins upgrade`` (or the upgrade
    API), and by ``plexica migrate`` in each tenant where the plugin's tables moved or its recorded
    version is not the loaded one. May be async. Failure: reported to the caller (``migrate``
    reports the tenant failed); the migrations and the recorded version stay (``plugins upgrade``
    calls the hook again; a re-run of ``migrate`` does not).
    """


@hookspec
def plexica_plugin_uninstalled(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """This plugin is being uninstalled for a tenant; its tables still exist.

    Called only on the plugin being uninstalled, inside the tenant's context, before its
    permissions are removed and its tables dropped. May be async. Failure: the uninstall stops
    before anything is removed, and the error reaches the caller.
    """


@hookspec
def plexica_tenant_migrations() -> str | None:
    """The path of the plugin's Alembic script directory for its tables in each tenant's schema.

    Called once per plugin when the host is built. Sync contribution; ``None``: the plugin has no
    tables. Tables there are declared schema-less; the host binds each run to one tenant's schema
    and keeps the plugin's own version table inside it. Failure: start-up stops with
    ``PluginLoadError`` naming the plugin.
    """


# ------------------------------------------------------------- permissions


@hookspec
def plexica_permissions() -> Sequence[PermissionDef]:
    """Permissions the plugin defines, ``{plugin}:{resource}:{action}``, merged with the manifest's.

    Called once per plugin when the host is built. Sync contribution. Failure (an exception, a
    key of another plugin or a wildcard): start-up stops with ``PluginLoadError``.
    """


@hookspec
def plexica_default_roles() -> Sequence[RoleDef]:
    """Grants to the system roles (``tenant_admin``, ``member``) or new roles, merged with the manifest's.

    Called once per plugin when the host is built; the grants are registered in a tenant when the
    plugin is installed there. Sync contribution. Failure: start-up stops with ``PluginLoadError``.
    """


@hookspec
def plexica_policies() -> Sequence[Policy]:
    """ABAC policies the plugin contributes.

    Called once when the permission engine is built; the policies take effect in a tenant when
    the plugin is installed there. Sync contribution. Failure: start-up stops with
    ``PluginLoadError`` naming the plugin.
    """


@hookspec
def plexica_resource_attributes(
    resource_type: str, resource_id: str, tenant: TenantContext
) -> Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None:
    """Attributes of one of the plugin's resources, for ABAC.

    Called by the permission engine during a check whose resource is ``{"type", "id"}`` and
    whose applicable policies read ``resource.*``, inside the tenant's context. Query: plugins
    are asked in load order and the first non-``None`` mapping wins (merged under the caller's
    own resource fields). Failure: logged and that plugin skipped; with no attributes the
    policy's ``resource.*`` leaves are false.
    """


# ------------------------------------------------------------------ events


@hookspec
def plexica_subscriptions(plugins: Sequence[str]) -> Sequence[Subscription]:
    """Events the plugin wants; each handler runs in the event's tenant context.

    Called once per plugin when the host is built; the bus subscribes every subscription when the
    host starts. ``plugins`` names every loaded plugin in load order (built-ins included), so a
    plugin that must see every event (an audit log) subscribes to ``core.*`` and each
    ``{name}.*``; take the argument only if you need it. Sync contribution. Failure: start-up
    stops with ``PluginLoadError``. (A failing *handler* is retried with backoff, then
    dead-lettered: see ``docs/events.md``.)
    """


@hookspec
def plexica_event_types() -> Sequence[EventTypeDef]:
    """Event types the plugin publishes (with payload schemas), merged with the manifest's.

    Called once per plugin when the host is built. Sync contribution. Failure (an exception, a
    type not starting ``{plugin}.`` or owned by another plugin): start-up stops with
    ``PluginLoadError``.
    """


# ----------------------------------------------------------------- storage


@hookspec
def plexica_storage_namespaces() -> Sequence[StorageNamespace]:
    """Storage namespaces the plugin uses in each tenant, merged with the manifest's ``storage``.

    Called once per plugin when the host is built. Sync contribution. ``host.objects`` keys are
    ``{namespace}/{rest}``; a key outside every declared namespace is refused, and each
    namespace's ``max_bytes`` and ``content_types`` apply to uploads. Failure (an exception, a
    value that is not a ``StorageNamespace``, an invalid or duplicate name): start-up stops with
    ``PluginLoadError`` naming the plugin.
    """


@hookspec
def plexica_object_uploaded(tenant: TenantContext, key: str, info: ObjectInfo, host: Host) -> Awaitable[None] | None:
    """One of this plugin's objects was stored in a tenant.

    Called only on the plugin that owns the object, inside the tenant's context, after every
    successful ``host.objects.put`` and after the host served a local presigned PUT URL of that
    plugin (uploads straight to S3 through a presigned URL do not pass through the host and are
    not reported). ``key`` is the key as the plugin names it (``{namespace}/{rest}``), ``info``
    its metadata. May be async; bounded by ``http.plugin_timeout_seconds``. Result ignored.
    Failure: logged with the plugin's name; the upload stands and ``put`` returns normally.
    A put made from inside this hook calls it again: guard against loops.
    """


@hookspec(firstresult=True)
def plexica_cache_backend() -> Cache | None:
    """Provide the host's cache backend instead of the one ``cache.redis_url`` selects.

    Called once when the host is built, plugins before built-ins; the first non-``None`` result
    wins and serves everything (tenant and plugin caches, permissions). Sync provider. The host
    enters it on its lifespan if it is an async context manager. Failure: a result that is not a
    ``Cache`` stops start-up with ``PluginLoadError`` naming the plugin.
    """


@hookspec(firstresult=True)
def plexica_object_store_backend() -> ObjectStore | None:
    """Provide the host's object store instead of the one ``storage.backend`` selects.

    Called once when the host is built, plugins before built-ins; the first non-``None`` result
    wins and holds every tenant's objects. Sync provider. The host enters it on its lifespan if it
    is an async context manager. Failure: a result that is not an ``ObjectStore`` stops start-up
    with ``PluginLoadError`` naming the plugin.
    """


# -------------------------------------------------------------------- http


@hookspec
def plexica_routes() -> Sequence[Any]:
    """Starlette routes mounted under ``/api/plugins/{name}/``.

    Called once per plugin when the app is built. Sync contribution. The routes run after
    authentication and tenant resolution, only for tenants where the plugin is installed and
    enabled (others get 404); handlers find the plugin's :class:`~plexica_sdk.protocols.Host`
    with :func:`plexica_sdk.http.host`. Failure (an exception or a non-route): start-up stops with
    ``PluginLoadError`` naming the plugin.
    """
