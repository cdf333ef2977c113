"""Wire protocol v1 between a host and a remote plugin: paths, headers, hook calls and errors.

Both sides import this module, so a value or an error looks the same on either end of the wire:

* hook calls: ``POST /.plexica/rpc`` with ``{"hook": name, "args": {...}}``; arguments and the
  ``{"result": ...}`` are JSON made by the one cattrs converter, typed by the hook's spec in
  :mod:`plexica_sdk.hookspecs`. ``tenant`` and ``host`` are never sent: the plugin takes the tenant
  from the signed context token and builds its own host handle.
* errors: RFC 9457 problem+json carrying the SDK error class (``error``) and its attributes
  (``attributes``); :func:`decode_problem` re-creates the same exception class host-side.
* start-up contributions (``GET /.plexica/contributions``) and the migrations bundle
  (``GET /.plexica/migrations``, named by :func:`bundle_digest`), which the host reads before it
  serves the JWKS that would verify a token; and event delivery (``POST /.plexica/events``).
"""

from __future__ import annotations

import hashlib
import inspect
import types
import typing
from collections.abc import Awaitable, Mapping
from typing import Any, Final, Union, get_args, get_origin

from plexica_sdk import errors as sdk_errors
from plexica_sdk import hookspecs
from plexica_sdk.converter import structure
from plexica_sdk.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PlexicaError,
    PluginAnswerError,
    PluginCallError,
    PluginTimeoutError,
    PluginUnavailableError,
    RateLimitedError,
    TenantSuspendedError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from plexica_sdk.protocols import Cache, Host, ObjectStore

__all__ = [
    "BOOT_HEADER",
    "CONTEXT_HEADER",
    "CONTRIBUTIONS_PATH",
    "CONTRIBUTION_KEYS",
    "EVENTS_PATH",
    "EVENT_BATCH_PATH",
    "HEALTH_PATH",
    "JWKS_PATH",
    "MANIFEST_PATH",
    "MAX_EVENT_BATCH",
    "MAX_EVENT_BATCH_BYTES",
    "MIGRATIONS_PATH",
    "PROBLEM_JSON",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "RPC_HOOKS",
    "RPC_PATH",
    "bundle_digest",
    "decode_problem",
    "decode_result",
    "encode_problem",
    "hook_argument_types",
]

PROTOCOL_VERSION: Final = 1
#: Sent on every response of a remote plugin, and on every host call: the wire protocol version.
PROTOCOL_HEADER: Final = "Plexica-Protocol"
#: Sent on every response of a remote plugin: its process's boot id, new at every start, so the
#: host can tell a restarted process (which never got ``plexica_host_started``) from the one it
#: announced itself to. Optional: an answer without it (an older SDK) is never re-announced to.
BOOT_HEADER: Final = "Plexica-Boot"
#: Carries the host-signed context token (``Authorization: Bearer`` is accepted too).
CONTEXT_HEADER: Final = "Plexica-Context"
MANIFEST_PATH: Final = "/.plexica/manifest"
HEALTH_PATH: Final = "/.plexica/health"
#: Where the host publishes the public keys of its context tokens (a JWK set).
JWKS_PATH: Final = "/.well-known/plexica/jwks.json"
RPC_PATH: Final = "/.plexica/rpc"
#: The plugin's start-up contributions (no token: they hold nothing of any tenant).
CONTRIBUTIONS_PATH: Final = "/.plexica/contributions"
#: The plugin's Alembic scripts for its tenant tables, with their digest (no token, like the manifest).
MIGRATIONS_PATH: Final = "/.plexica/migrations"
#: One event for one of the plugin's subscriptions, run in the event's tenant context.
EVENTS_PATH: Final = "/.plexica/events"
#: Several events of one tenant under one context token, one result each (``event_batches`` in
#: the contributions says a plugin serves it; a host sends single events to one that does not).
EVENT_BATCH_PATH: Final = "/.plexica/events/batch"
#: The most deliveries one batch carries, and the most bytes its body may take.
MAX_EVENT_BATCH: Final = 64
MAX_EVENT_BATCH_BYTES: Final = 1_048_576
#: Each start-up contribution hook and its key in the contributions document.
CONTRIBUTION_KEYS: Final[Mapping[str, str]] = {
    "plexica_permissions": "permissions",
    "plexica_default_roles": "default_roles",
    "plexica_policies": "policies",
    "plexica_event_types": "event_types",
    "plexica_storage_namespaces": "storage_namespaces",
    "plexica_subscriptions": "subscriptions",
}
PROBLEM_JSON: Final = "application/problem+json"
PROBLEM_TYPE_BASE: Final = "https://plexica.dev/problems/remote/"

#: Arguments the host never sends: the plugin derives them from the verified context.
LOCAL_ARGUMENTS: Final = frozenset({"tenant", "host"})
#: Hooks that cannot cross a process boundary: routes are served natively, providers return live
#: objects, and a migrations path names a directory on the plugin's own disk.
_NOT_REMOTE: Final = frozenset(
    {"plexica_routes", "plexica_cache_backend", "plexica_object_store_backend", "plexica_tenant_migrations"}
)
_SPECS: Final = {
    name: fn
    for name, fn in vars(hookspecs).items()
    if name.startswith("plexica_") and inspect.isfunction(fn) and fn.__module__ == hookspecs.__name__
}
#: The hooks a host may call over ``POST /.plexica/rpc``.
RPC_HOOKS: Final = frozenset(_SPECS) - _NOT_REMOTE

_LOCALNS: Final = {"Host": Host, "Cache": Cache, "ObjectStore": ObjectStore}

# The HTTP status of each SDK error, by nearest class in the method resolution order.
_STATUS: Final[Mapping[type[PlexicaError], int]] = {
    AuthenticationError: 401,
    TenantSuspendedError: 403,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    ValidationError: 422,
    RateLimitedError: 429,
    PluginUnavailableError: 503,
    PluginTimeoutError: 504,
    BackendUnavailableError: 503,
}
#: Every SDK error class, by name: the only classes :func:`decode_problem` creates.
_ERRORS: Final[Mapping[str, type[PlexicaError]]] = {
    name: cls
    for name in sdk_errors.__all__
    if isinstance(cls := getattr(sdk_errors, name), type) and issubclass(cls, PlexicaError)
}
_SCALARS: Final = (str, int, float, bool, type(None))


def _hints(hook: str) -> Mapping[str, Any]:
    spec = _SPECS.get(hook)
    if spec is None or hook not in RPC_HOOKS:
        raise NotFoundError(f"no remote hook {hook[:80]!r}", resource="hook")
    hints = _RESOLVED.get(hook)
    if hints is None:  # resolving string annotations compiles each one: once per hook, not per call
        hints = _RESOLVED[hook] = types.MappingProxyType(typing.get_type_hints(spec, localns=_LOCALNS))
    return hints


_RESOLVED: dict[str, Mapping[str, Any]] = {}


def hook_argument_types(hook: str) -> dict[str, Any]:
    """The wire arguments of ``hook`` and their types (``tenant`` and ``host`` excluded).

    Raises:
        NotFoundError: ``hook`` is not a hook that may be called remotely.
    """
    return {name: kind for name, kind in _hints(hook).items() if name != "return" and name not in LOCAL_ARGUMENTS}


def _without_awaitable(kind: Any) -> Any:
    """``Awaitable[X] | X | None`` → ``X | None``: what a result is once awaited."""
    if get_origin(kind) in (Union, types.UnionType):
        members = [arg for arg in get_args(kind) if get_origin(arg) is not Awaitable]
        result: Any = members[0]
        for member in members[1:]:
            result = result | member
        return result
    return kind


def decode_result(hook: str, data: Any) -> Any:
    """Structure the JSON ``result`` of ``hook`` into its spec's type.

    Raises:
        NotFoundError: not a remote hook.
        ValidationError: the result does not match the hook's return type.
    """
    kind = _without_awaitable(_hints(hook)["return"])
    if kind is type(None):
        if data is not None:
            raise ValidationError(f"{hook} returns nothing, got {type(data).__name__}", field="result")
        return None
    return structure(data, kind)


def _attributes(exc: PlexicaError) -> dict[str, Any]:
    """The exception's public attributes that JSON can carry (scalars and lists of scalars)."""
    carried: dict[str, Any] = {}
    for name, value in vars(exc).items():
        if name.startswith("_"):
            continue
        if isinstance(value, _SCALARS) or (
            isinstance(value, list | tuple) and all(isinstance(item, _SCALARS) for item in value)
        ):
            carried[name] = list(value) if isinstance(value, tuple) else value
    return carried


def _status(exc: PlexicaError) -> int:
    for cls in type(exc).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


def encode_problem(exc: BaseException, *, plugin: str, hook: str | None = None) -> tuple[int, dict[str, Any]]:
    """The status and problem+json body that carry ``exc`` back to the host.

    An SDK error travels as its class name and attributes; a plugin's own subclass of one (say
    ``AddressRefusedError(ValidationError)``) as its nearest SDK class, so the host answers what
    it answers embedded. Anything else is the plugin's bug: it travels as a
    :class:`PluginCallError` naming only the exception class, never its message (which may hold
    data of the tenant's).
    """
    sdk_class = next((cls for cls in type(exc).__mro__ if _ERRORS.get(cls.__name__) is cls), None)
    if not isinstance(exc, PlexicaError) or sdk_class is None:
        exc, sdk_class = PluginCallError(plugin, hook or "a route", f"raised {type(exc).__name__}"), PluginCallError
    status = _status(exc)
    name = sdk_class.__name__
    body = {
        "type": PROBLEM_TYPE_BASE + name,
        "title": name,
        "status": status,
        "detail": str(exc),
        "error": name,
        "attributes": _attributes(exc),
        "protocol": PROTOCOL_VERSION,
    }
    return status, body


def decode_problem(status: int, body: Any, *, plugin: str) -> PlexicaError:
    """The SDK exception a remote plugin's problem response stands for, to raise host-side.

    The same class with the same message and attributes when the body names an SDK error class;
    otherwise (another class name, a body that is no problem) a :class:`PluginCallError` saying
    the plugin answered badly (:class:`PluginAnswerError`, a ``PluginCallError``). Never an
    arbitrary class: only :mod:`plexica_sdk.errors` ones.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("error"), str):
        return PluginAnswerError(plugin, "a remote call", f"answered HTTP {status} without a Plexica problem")
    cls = _ERRORS.get(body["error"])
    if cls is None:
        return PluginAnswerError(plugin, "a remote call", f"answered an unknown error {body['error'][:80]!r}")
    detail = body.get("detail")
    attributes = body.get("attributes")
    exc = cls.__new__(cls)
    Exception.__init__(exc, detail if isinstance(detail, str) else cls.__name__)
    if isinstance(attributes, Mapping):
        for name, value in attributes.items():
            if isinstance(name, str) and not name.startswith("_"):
                setattr(exc, name, value)
    return exc


def bundle_digest(files: Mapping[str, str]) -> str:
    """The SHA-256 naming a migrations bundle (relative path → text), independent of the order given."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path].encode() + b"\0")
    return digest.hexdigest()
