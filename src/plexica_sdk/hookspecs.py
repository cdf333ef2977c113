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
    PermissionDef,
    PluginManifest,
    Policy,
    RoleDef,
    Subscription,
    TenantContext,
)

if TYPE_CHECKING:
    from plexica_sdk.protocols import Cache, Host, ObjectStore

# ---------------------------------------------------------------- identity


@hookspec
def plexica_manifest() -> PluginManifest:
    """Describe the plugin: name, version, dependencies, permissions, event types.

    Called once when the host is built. Sync. Failure or an invalid manifest stops start-up with
    ``PluginLoadError`` naming the plugin. Every plugin must implement it.
    """


@hookspec
def plexica_host_started(host: Host) -> Awaitable[None] | None:
    """The host finished starting (outside any tenant); ``host`` is the plugin's handle.

    May be async. Failure: logged with the plugin's name; the host keeps running.
    """


@hookspec
def plexica_host_stopping(host: Host) -> Awaitable[None] | None:
    """The host is shutting down. May be async. Failure: logged; shutdown continues."""


# ----------------------------------------------------------------- tenants


@hookspec
def plexica_tenant_provisioned(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """A tenant finished provisioning and is about to become active.

    Called once per tenant, inside that tenant's context, after its schema, bucket and default
    roles exist. May be async. Failure: logged with the plugin's name; the tenant stays
    ``provisioning`` and a retry calls this hook again, so implementations must be idempotent.
    """


@hookspec
def plexica_tenant_suspended(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """A tenant was suspended. In that tenant's context. May be async. Failure: logged."""


@hookspec
def plexica_tenant_resumed(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """A suspended tenant became active again. In that tenant's context. Failure: logged."""


@hookspec
def plexica_tenant_deleting(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """A tenant is being deleted; its data still exists. In that tenant's context.

    Failure: the deletion stops (status ``deleting``) and a retry calls the hook again.
    """


@hookspec
def plexica_plugin_installed(tenant: TenantContext, version: str, host: Host) -> Awaitable[None] | None:
    """This plugin was installed for a tenant, after its migrations ran. Failure: install fails."""


@hookspec
def plexica_plugin_upgraded(
    tenant: TenantContext, from_version: str, to_version: str, host: Host
) -> Awaitable[None] | None:
    """This plugin was upgraded for a tenant, after the pending migrations ran."""


@hookspec
def plexica_plugin_uninstalled(tenant: TenantContext, host: Host) -> Awaitable[None] | None:
    """This plugin is being uninstalled for a tenant, before its tables are dropped."""


@hookspec
def plexica_tenant_migrations() -> str | None:
    """Return the path of the plugin's Alembic script directory for tables in each tenant's schema.

    Tables there are declared schema-less; the host binds each run to one tenant's schema and
    keeps the plugin's own version table inside it. Sync contribution.
    """


# ------------------------------------------------------------- permissions


@hookspec
def plexica_permissions() -> Sequence[PermissionDef]:
    """Permissions the plugin defines, ``{plugin}:{resource}:{action}``. Sync contribution."""


@hookspec
def plexica_default_roles() -> Sequence[RoleDef]:
    """Permission grants to the system roles (``tenant_admin``, ``member``) or new roles. Sync."""


@hookspec
def plexica_policies() -> Sequence[Policy]:
    """ABAC policies the plugin contributes. Sync contribution."""


@hookspec
def plexica_resource_attributes(
    resource_type: str, resource_id: str, tenant: TenantContext
) -> Awaitable[Mapping[str, Any] | None] | Mapping[str, Any] | None:
    """Attributes of one of the plugin's resources, for ABAC. Query: first non-``None`` wins."""


# ------------------------------------------------------------------ events


@hookspec
def plexica_subscriptions() -> Sequence[Subscription]:
    """Events the plugin wants; handlers run in the event's tenant context. Sync contribution."""


@hookspec
def plexica_event_types() -> Sequence[EventTypeDef]:
    """Event types the plugin publishes (with payload schemas). Sync contribution."""


# ----------------------------------------------------------------- storage


@hookspec
def plexica_storage_buckets() -> Sequence[str]:
    """Key prefixes the plugin uses inside each tenant bucket. Sync contribution."""


@hookspec
def plexica_object_uploaded(tenant: TenantContext, bucket: str, key: str, host: Host) -> Awaitable[None] | None:
    """An object was stored through the host. In the tenant's context. Failure: logged."""


@hookspec(firstresult=True)
def plexica_cache_backend() -> Cache | None:
    """Provide the cache backend (provider: the first object wins). Sync."""


@hookspec(firstresult=True)
def plexica_object_store_backend() -> ObjectStore | None:
    """Provide the object-store backend (provider: the first object wins). Sync."""


# -------------------------------------------------------------------- http


@hookspec
def plexica_routes() -> Sequence[Any]:
    """Starlette routes mounted under ``/api/plugins/{name}/``. Sync contribution.

    Handlers find the plugin's :class:`~plexica_sdk.protocols.Host` with
    :func:`plexica_sdk.http.host`. Routes run after authentication and tenant resolution.
    """
