"""Value types that cross the plugin boundary.

Hooks take and return only these (or builtins), so the remote adapter can carry every call as
JSON through :mod:`plexica_sdk.converter`. All are frozen attrs classes.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from plexica_sdk.protocols import Host

__all__ = [
    "PERMISSION_KEY_RE",
    "PLUGIN_NAME_RE",
    "Decision",
    "Event",
    "EventHandler",
    "EventTypeDef",
    "FrontendDef",
    "FrontendModule",
    "MenuItem",
    "ObjectInfo",
    "PermissionDef",
    "PluginInfo",
    "PluginManifest",
    "Policy",
    "Principal",
    "RoleDef",
    "RouteRateLimit",
    "StorageNamespace",
    "Subscription",
    "TenantContext",
    "TenantInfo",
]

PLUGIN_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,62}\Z")
#: ``{plugin}:{resource}:{action}``; ``*`` stands for one segment and everything after it.
PERMISSION_KEY_RE = re.compile(r"^[a-z][a-z0-9-]{1,62}(:([a-z][a-z0-9_-]*|\*)){2}\Z")

TenantStatus = Literal["provisioning", "active", "suspended", "deleting", "deleted"]


def _tuple_of_str(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _permission_defs(value: Iterable[PermissionDef]) -> tuple[PermissionDef, ...]:
    return tuple(value)


def _role_defs(value: Iterable[RoleDef]) -> tuple[RoleDef, ...]:
    return tuple(value)


def _event_type_defs(value: Iterable[EventTypeDef]) -> tuple[EventTypeDef, ...]:
    return tuple(value)


def _storage_namespaces(value: Iterable[StorageNamespace]) -> tuple[StorageNamespace, ...]:
    return tuple(value)


def _route_rate_limits(value: Iterable[RouteRateLimit]) -> tuple[RouteRateLimit, ...]:
    return tuple(value)


def _upper_methods(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v).upper() for v in value)


@attrs.frozen(kw_only=True)
class Principal:
    """The authenticated caller: who they are and the roles their token grants."""

    id: str
    tenant_slug: str | None = None
    username: str | None = None
    email: str | None = attrs.field(default=None, repr=False)  # PII: kept out of reprs and logs
    name: str | None = attrs.field(default=None, repr=False)
    roles: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    is_super_admin: bool = False
    issuer: str | None = None


@attrs.frozen(kw_only=True)
class TenantInfo:
    """A tenant as the registry knows it."""

    id: str
    slug: str
    name: str
    status: TenantStatus
    plan: str = "standard"
    schema: str
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class TenantContext:
    """Who and where a piece of work runs for: set by middleware or the event consumer.

    Read it with :func:`plexica_sdk.context.current`, which raises when none is set.
    """

    tenant_id: str
    slug: str
    schema: str
    plan: str = "standard"
    status: TenantStatus = "active"
    user: Principal | None = None
    workspace_id: str | None = None
    trace_id: str | None = None

    @property
    def cache_prefix(self) -> str:
        """Prefix of every cache key of this tenant: ``tenant:{<slug>}:``, the slug a Redis Cluster hash tag."""
        return "tenant:{" + self.slug + "}:"

    @property
    def bucket(self) -> str:
        """This tenant's object-storage bucket (``tenant-{slug}``)."""
        return f"tenant-{self.slug}"


@attrs.frozen(kw_only=True)
class PermissionDef:
    """A permission a plugin contributes, ``{plugin}:{resource}:{action}``."""

    key: str
    description: str = ""

    @property
    def plugin(self) -> str:
        return self.key.split(":", 1)[0]


@attrs.frozen(kw_only=True)
class RoleDef:
    """A role and the permission keys (wildcards allowed) it grants."""

    name: str
    permissions: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    description: str = ""


@attrs.frozen(kw_only=True)
class Policy:
    """An ABAC policy as data: an effect, a target permission pattern and a condition tree.

    The condition is JSON: ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}`` or a leaf
    ``{"attribute": "resource.owner", "operator": "equals", "value": "..."}``.
    """

    id: str
    effect: Literal["allow", "deny"]
    target: str
    condition: Mapping[str, Any] | None = None
    description: str = ""


@attrs.frozen(kw_only=True)
class Decision:
    """The answer of an authorization check, with the role or policy that decided it."""

    allowed: bool
    reason: str
    decided_by: str | None = None


@attrs.frozen(kw_only=True)
class EventTypeDef:
    """An event type a plugin publishes, ``{plugin}.{entity}.{verb}``, with its payload schema."""

    type: str
    description: str = ""
    schema: Mapping[str, Any] | None = None  # JSON Schema of ``data``
    version: int = 1


def _new_event_id() -> str:
    return str(uuid.uuid4())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.frozen(kw_only=True)
class Event:
    """A CloudEvents 1.0 event plus the Plexica extension attributes."""

    type: str
    source: str
    data: Any = None
    id: str = attrs.field(factory=_new_event_id)
    specversion: str = "1.0"
    time: dt.datetime = attrs.field(factory=_now)
    subject: str | None = None
    datacontenttype: str = "application/json"
    tenantid: str | None = None
    workspaceid: str | None = None
    userid: str | None = None
    traceid: str | None = None
    schemaversion: int = 1
    #: W3C ``traceparent`` of the span that published the event (the CloudEvents distributed-tracing
    #: extension): stored with outbox rows and sent as ``ce_traceparent``, so handlers join the trace.
    traceparent: str | None = None


#: ``async def handler(event, host)``: runs in the event's tenant context with the plugin's host handle.
EventHandler = Callable[[Event, "Host"], Awaitable[None] | None]


@attrs.frozen(kw_only=True)
class Subscription:
    """A plugin's wish to receive events of a type (``*`` allowed as the last segment).

    ``handler`` is a callable in the plugin's own process; across the remote boundary only its
    ``name`` travels, and the plugin's RPC server looks the handler up by that name.
    """

    event_type: str
    handler: EventHandler = attrs.field(eq=False, repr=False)
    name: str = attrs.field()
    #: Handler attempts before the event is dead-lettered; ``None``: the host's ``events.max_attempts``.
    max_attempts: int | None = None

    @name.default
    def _default_name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))


def _frontend_modules(value: Iterable[FrontendModule]) -> tuple[FrontendModule, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class MenuItem:
    """An entry of the shell's navigation menu that opens a module's route.

    Attributes:
        label: what the menu shows.
        icon: an icon name from the shell's icon set; ``None``: no icon.
        order: where the entry goes among the others (lower first).
    """

    label: str
    icon: str | None = None
    order: int = 0


@attrs.frozen(kw_only=True)
class FrontendModule:
    """One module a plugin's remote entry exposes, and where the shell shows it.

    Attributes:
        name: the exposed key, as the remote container names it (``"./NotesList"``).
        route: the shell path the module renders at (``"/notes"``); ``None``: no page of its own.
        slot: a named extension point of the shell it fills (``"dashboard.widgets"``).
        menu: the navigation entry opening ``route``.
        permission: the permission a caller needs to be offered the module at all.
    """

    name: str
    route: str | None = None
    slot: str | None = None
    menu: MenuItem | None = None
    permission: str | None = None


@attrs.frozen(kw_only=True)
class FrontendDef:
    """Module-federation entry of a plugin's web front end (served by ``GET /api/core/v1/frontend``).

    ``remote_entry`` is ``objects:{namespace}/{key}`` (an object of the plugin's own storage, served
    through a presigned URL), an absolute ``https://`` URL (passed through), or a path: one starting
    with ``/`` is on the host, any other is under the plugin's mount (``/api/plugins/{name}/``);
    paths get ``?v={plugin version}`` so browsers refetch after an upgrade.

    Attributes:
        remote_entry: where the remote container is, as above.
        exposed_modules: exposed keys without shell metadata (kept for older manifests).
        modules: exposed modules with their route, slot, menu entry and permission.
        scope: the container's name (module federation's ``name``); ``None``: the plugin's name.
        remote_type: how the shell loads the entry: an ES module, or a classic script (``var``).
        permission: the permission a caller needs to be offered any of the plugin's front end.
    """

    remote_entry: str
    exposed_modules: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    modules: tuple[FrontendModule, ...] = attrs.field(default=(), converter=_frontend_modules)
    scope: str | None = None
    remote_type: Literal["module", "script"] = "module"
    permission: str | None = None

    def all_modules(self) -> tuple[FrontendModule, ...]:
        """``modules``, then each name of ``exposed_modules`` no module already declares."""
        named = {module.name for module in self.modules}
        plain = tuple(FrontendModule(name=name) for name in self.exposed_modules if name not in named)
        return (*self.modules, *plain)


@attrs.frozen(kw_only=True)
class StorageNamespace:
    """A top-level folder of a plugin's objects in each tenant (``host.objects`` keys start with it).

    A plugin's keys are ``{namespace}/{rest}``; a key outside every declared namespace is refused.

    Attributes:
        name: the folder, ``^[a-z][a-z0-9_-]{0,62}$``.
        max_bytes: the largest object accepted (``None``: the host's ``storage.max_object_bytes``).
        content_types: accepted content types (``image/*`` allowed); empty: any.
    """

    name: str
    max_bytes: int | None = None
    content_types: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)


@attrs.frozen(kw_only=True)
class RouteRateLimit:
    """How the host's rate limiter counts requests to some of a plugin's routes.

    The first rule whose ``path`` and ``methods`` match a request applies; a route no rule matches
    costs 1. See ``docs/rate-limits.md``.

    Attributes:
        path: a shell-style pattern of the path under the plugin's mount (``/reports/*/export``;
            ``*`` also matches ``/``), starting with ``/``.
        methods: the HTTP methods the rule applies to; empty: every method.
        cost: how many requests of the caller's quota one such request uses (an export may cost 10).
        exempt: such requests are not limited (nor counted) at all, e.g. a webhook receiver.
    """

    path: str
    methods: tuple[str, ...] = attrs.field(default=(), converter=_upper_methods)
    cost: int = 1
    exempt: bool = False


@attrs.frozen(kw_only=True)
class PluginManifest:
    """What a plugin is: name, version, dependencies and what it contributes.

    ``requires`` maps plugin names to PEP 440 version ranges (``{"notes": ">=1.0,<2"}``).
    """

    name: str
    version: str
    description: str = ""
    requires: Mapping[str, str] = attrs.field(factory=dict)
    permissions: tuple[PermissionDef, ...] = attrs.field(default=(), converter=_permission_defs)
    default_roles: tuple[RoleDef, ...] = attrs.field(default=(), converter=_role_defs)
    event_types: tuple[EventTypeDef, ...] = attrs.field(default=(), converter=_event_type_defs)
    storage: tuple[StorageNamespace, ...] = attrs.field(default=(), converter=_storage_namespaces)
    #: JSON Schema (draft 2020-12) of the per-tenant configuration (``host.config()``).
    config_schema: Mapping[str, Any] | None = None
    frontend: FrontendDef | None = None
    #: Per-route costs and exemptions for the host's rate limiter; none: every route costs 1.
    rate_limits: tuple[RouteRateLimit, ...] = attrs.field(default=(), converter=_route_rate_limits)
    #: The largest request body the plugin's routes accept; None: the host's ``[http] max_body_bytes``.
    max_body_bytes: int | None = None


@attrs.frozen(kw_only=True)
class PluginInfo:
    """A loaded plugin as the host reports it."""

    name: str
    version: str
    description: str = ""
    mode: Literal["builtin", "embedded", "remote"] = "embedded"
    permissions: tuple[str, ...] = attrs.field(default=(), converter=_tuple_of_str)
    requires: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ObjectInfo:
    """Metadata of a stored object."""

    key: str
    size: int
    etag: str | None = None
    content_type: str | None = None
    last_modified: dt.datetime | None = None
