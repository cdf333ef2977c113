"""The host callback API, v1: how a remote plugin calls back into its host (docs/remote.md).

Both ends import this module, so the paths, headers and bodies cannot drift: the host's routes
(``plexica.http.routes.host_callbacks``) structure the bodies below with the one cattrs converter,
and :class:`plexica_sdk.remote.host.RemoteHost` sends them. Every call names the plugin
(``Plexica-Plugin``) and authenticates with one of:

* ``Plexica-Context``: the host-signed context token of the call being served. It may be reused
  for several callbacks within its lifetime, by that plugin, for that tenant only.
* ``Plexica-Credential``: the plugin's service credential (``plexica remote credentials create``),
  for work outside a host call, with ``Plexica-Tenant`` naming the tenant to act in.

The database objects a remote session uses are named here too (:func:`outbox_function`,
:func:`processed_function`): the host creates them in each tenant schema where the plugin is
installed (``plexica.remote.db_roles``), and the plugin calls them in its own transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from plexica_sdk.types import Event, ObjectInfo, TenantStatus

__all__ = [
    "CALLBACK_PREFIX",
    "CREDENTIAL_HEADER",
    "PLUGIN_HEADER",
    "TENANT_HEADER",
    "AuthorizeRequest",
    "CacheCount",
    "CacheIncr",
    "CacheKey",
    "CacheKeys",
    "CacheNumber",
    "CachePrefix",
    "CacheSet",
    "CacheValue",
    "CallbackTenant",
    "ConfigAnswer",
    "ObjectKey",
    "ObjectList",
    "ObjectListing",
    "OutboxRow",
    "PreparedEvent",
    "PresignRequest",
    "PresignedUrl",
    "ProcessedAnswer",
    "ProcessedRequest",
    "PublishRequest",
    "bounded_identifier",
    "outbox_function",
    "processed_function",
]

#: Where the host serves the callback API.
CALLBACK_PREFIX: Final = "/.plexica/host/v1"
#: The plugin a callback is for (the token's audience, or the credential's plugin).
PLUGIN_HEADER: Final = "Plexica-Plugin"
#: A plugin's service credential, ``pxc1.<key id>.<secret>``.
CREDENTIAL_HEADER: Final = "Plexica-Credential"
#: The tenant a credential-authenticated callback acts in (a token names its own).
TENANT_HEADER: Final = "Plexica-Tenant"

_KEY: Any = attrs.validators.and_(attrs.validators.min_len(1), attrs.validators.max_len(1024))
_NAME: Any = attrs.validators.and_(attrs.validators.min_len(1), attrs.validators.max_len(255))
_TTL: Any = attrs.validators.optional(attrs.validators.and_(attrs.validators.gt(0), attrs.validators.le(31_536_000)))


@attrs.frozen(kw_only=True)
class CallbackTenant:
    """The tenant a callback acts in, as the host knows it."""

    id: str
    slug: str
    schema: str
    plan: str = "standard"
    status: TenantStatus = "active"


@attrs.frozen(kw_only=True)
class AuthorizeRequest:
    """``POST /authorize``: decide ``permission`` (on ``resource``) for the context's user."""

    permission: str = attrs.field(validator=_NAME)
    resource: Mapping[str, Any] | None = None


@attrs.frozen(kw_only=True)
class PublishRequest:
    """``POST /events`` (to the bus now) and ``POST /events/prepare`` (for the plugin's outbox write)."""

    type: str = attrs.field(validator=_NAME)
    data: Any = None
    subject: str | None = attrs.field(default=None, validator=attrs.validators.optional(_KEY))


@attrs.frozen(kw_only=True)
class OutboxRow:
    """One outbox row, built and validated by the host, written by the plugin in its transaction.

    The fields are the arguments of :func:`outbox_function`, in this order.
    """

    event_id: str
    event_type: str
    key: str | None
    shard: int
    envelope: str


@attrs.frozen(kw_only=True)
class PreparedEvent:
    """``POST /events/prepare``'s answer: the event as published, and its outbox row."""

    event: Event
    row: OutboxRow


@attrs.frozen(kw_only=True)
class ProcessedRequest:
    """``POST /events/processed``: record ``event`` as handled, in the host's own transaction."""

    event: Event


@attrs.frozen(kw_only=True)
class ProcessedAnswer:
    first: bool


@attrs.frozen(kw_only=True)
class CacheKey:
    """``POST /cache/get``: a key of the plugin's cache, as the plugin names it."""

    key: str = attrs.field(validator=_KEY)


@attrs.frozen(kw_only=True)
class CacheValue:
    """A cached value, base64 (None: absent)."""

    value: str | None


@attrs.frozen(kw_only=True)
class CacheSet:
    """``POST /cache/set``: ``value`` is base64."""

    key: str = attrs.field(validator=_KEY)
    value: str
    ttl: float | None = attrs.field(default=None, validator=_TTL)


@attrs.frozen(kw_only=True)
class CacheKeys:
    """``POST /cache/delete``."""

    keys: tuple[str, ...] = attrs.field(
        validator=attrs.validators.and_(attrs.validators.max_len(1000), attrs.validators.deep_iterable(_KEY))
    )


@attrs.frozen(kw_only=True)
class CacheIncr:
    """``POST /cache/incr``."""

    key: str = attrs.field(validator=_KEY)
    amount: int = 1
    ttl: float | None = attrs.field(default=None, validator=_TTL)


@attrs.frozen(kw_only=True)
class CachePrefix:
    """``POST /cache/delete-prefix``."""

    prefix: str = attrs.field(validator=attrs.validators.max_len(1024))


@attrs.frozen(kw_only=True)
class CacheCount:
    count: int


@attrs.frozen(kw_only=True)
class CacheNumber:
    value: int


@attrs.frozen(kw_only=True)
class ObjectKey:
    """``POST /objects/head`` and ``/objects/delete``: a key in the plugin's namespaces."""

    key: str = attrs.field(validator=_KEY)


@attrs.frozen(kw_only=True)
class ObjectList:
    """``POST /objects/list``."""

    prefix: str = attrs.field(default="", validator=attrs.validators.max_len(1024))


@attrs.frozen(kw_only=True)
class ObjectListing:
    objects: tuple[ObjectInfo, ...]


@attrs.frozen(kw_only=True)
class PresignRequest:
    """``POST /objects/presign``: a URL to GET or PUT one object until it expires (at most 7 days)."""

    key: str = attrs.field(validator=_KEY)
    expires_in: int = attrs.field(
        default=3600, validator=attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(604_800))
    )
    method: Literal["GET", "PUT"] = "GET"


@attrs.frozen(kw_only=True)
class PresignedUrl:
    url: str


@attrs.frozen(kw_only=True)
class ConfigAnswer:
    """``GET /config``: the plugin's validated configuration in the tenant."""

    config: Mapping[str, Any]


def bounded_identifier(prefix: str, name: str) -> str:
    """``prefix + name`` as a PostgreSQL identifier of at most 63 bytes, unique per ``name``.

    A name too long is cut and given a digest of the whole, so two long names never collide.
    """
    whole = prefix + name
    if len(whole.encode()) <= 63:
        return whole
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{prefix}{name[: 63 - len(prefix) - 17]}_{digest}"


def outbox_function(plugin: str) -> str:
    """The function in each tenant schema through which ``plugin``'s remote sessions write the outbox."""
    return bounded_identifier("plexica_outbox_", plugin.replace("-", "_"))


def processed_function(plugin: str) -> str:
    """The function in each tenant schema through which ``plugin``'s remote sessions mark events processed."""
    return bounded_identifier("plexica_processed_", plugin.replace("-", "_"))
