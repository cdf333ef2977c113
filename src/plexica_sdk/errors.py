"""The Plexica error tree, shared by the host and plugins.

Every error a plugin may raise or catch lives here, so that the remote adapter can carry it by
name and ``plexica.http.problems`` can map it to an RFC 9457 response::

    PlexicaError
    ├── SettingsError (also ValueError)                 path, problems
    ├── ValidationError (also ValueError)               field, problems
    │   └── InvalidTenantSlugError (also TenantError)   tenant_slug
    ├── PayloadTooLargeError (also ValueError)          limit (bytes)
    ├── UnsupportedMediaTypeError (also ValueError)     content_type, expected
    ├── NotFoundError (also LookupError)                resource
    │   └── TenantNotFoundError (also TenantError)      tenant_slug
    ├── ConflictError                                   resource
    ├── TenantError                                     tenant_slug
    │   ├── TenantSuspendedError
    │   └── TenantContextMissingError
    ├── AuthenticationError                             reason (never the token)
    ├── PermissionDeniedError                           permission, explanation (logged, never sent)
    ├── PluginError                                     plugin
    │   ├── PluginLoadError
    │   ├── PluginCallError                             hook
    │   │   ├── PluginAnswerError                       a remote plugin answered badly (502)
    │   │   ├── PluginUnavailableError                  a remote plugin is down or its breaker open (503)
    │   │   └── PluginTimeoutError                      seconds; a remote plugin did not answer in time (504)
    │   └── PluginContractError (also EventError)       event_type; logged, never sent
    ├── EventError                                      event_type
    ├── RateLimitedError                                retry_after, policy
    ├── BackendUnavailableError                         backend
    └── MissingDependencyError (also ImportError)       extra, e.g. "redis"

Messages name identifiers, never secrets, tokens or personal data.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AuthenticationError",
    "BackendUnavailableError",
    "ConflictError",
    "EventError",
    "InvalidTenantSlugError",
    "MissingDependencyError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PlexicaError",
    "PluginAnswerError",
    "PluginCallError",
    "PluginContractError",
    "PluginError",
    "PluginLoadError",
    "PluginTimeoutError",
    "PluginUnavailableError",
    "RateLimitedError",
    "SettingsError",
    "TenantContextMissingError",
    "TenantError",
    "TenantNotFoundError",
    "TenantSuspendedError",
    "UnsupportedMediaTypeError",
    "ValidationError",
]


class PlexicaError(Exception):
    """Root of every error Plexica raises on purpose."""


class SettingsError(PlexicaError, ValueError):
    """The settings could not be loaded; ``problems`` holds one line per bad key."""

    def __init__(self, problems: Sequence[str], path: str | None = None) -> None:
        self.problems = list(problems)
        self.path = path
        where = f" in {path}" if path else ""
        super().__init__(f"invalid settings{where}: " + "; ".join(self.problems))


class ValidationError(PlexicaError, ValueError):
    """Input failed validation; ``field`` names the first offending field (a path: ``members[2].role``).

    ``fields`` names each problem's field, line for line (the first is ``field`` when omitted).
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        problems: Sequence[str] = (),
        fields: Sequence[str | None] = (),
    ) -> None:
        super().__init__(message)
        self.field = field
        self.problems = list(problems) or [message]
        self.fields = list(fields) or [field] * len(self.problems)


class PayloadTooLargeError(PlexicaError, ValueError):
    """A request body is larger than ``limit`` bytes (HTTP 413); nothing past the limit was read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body exceeds {limit} bytes")
        self.limit = limit


class UnsupportedMediaTypeError(PlexicaError, ValueError):
    """A request body is not of the media type the route reads (HTTP 415)."""

    def __init__(self, content_type: str, *, expected: str = "application/json") -> None:
        super().__init__(f"send the body as {expected}, not {content_type[:80]!r}")
        self.content_type = content_type
        self.expected = expected


class NotFoundError(PlexicaError, LookupError):
    """A resource does not exist, or the caller may not know that it does."""

    def __init__(self, message: str, *, resource: str | None = None) -> None:
        super().__init__(message)
        self.resource = resource


class ConflictError(PlexicaError):
    """The request conflicts with the current state (a duplicate, a stale version)."""

    def __init__(self, message: str, *, resource: str | None = None) -> None:
        super().__init__(message)
        self.resource = resource


class TenantError(PlexicaError):
    """Something is wrong with a tenant; ``tenant_slug`` names it when known."""

    def __init__(self, message: str, *, tenant_slug: str | None = None) -> None:
        super().__init__(message)
        self.tenant_slug = tenant_slug


class TenantNotFoundError(NotFoundError, TenantError):
    """No tenant with that slug exists (deleted tenants are not found either)."""

    def __init__(self, tenant_slug: str) -> None:
        PlexicaError.__init__(self, f"no tenant with slug {tenant_slug!r}")
        self.tenant_slug = tenant_slug
        self.resource = "tenant"


class InvalidTenantSlugError(ValidationError, TenantError):
    """A slug does not match ``^[a-z][a-z0-9-]{1,48}[a-z0-9]$``."""

    def __init__(self, tenant_slug: str) -> None:
        message = (
            f"invalid tenant slug {tenant_slug[:64]!r}: use 3-50 lowercase letters, digits and dashes, "
            "starting with a letter and not ending with a dash"
        )
        PlexicaError.__init__(self, message)
        self.tenant_slug = tenant_slug
        self.field = "slug"
        self.problems = [message]


class TenantSuspendedError(TenantError):
    """The tenant exists but is suspended: its users are refused until it is resumed."""

    def __init__(self, tenant_slug: str) -> None:
        super().__init__(f"tenant {tenant_slug!r} is suspended", tenant_slug=tenant_slug)


class TenantContextMissingError(TenantError):
    """Tenant-scoped code ran outside a tenant context."""

    def __init__(self, what: str = "this operation") -> None:
        super().__init__(f"{what} needs a tenant context and none is set")


class AuthenticationError(PlexicaError):
    """The caller could not be authenticated. ``reason`` is safe to log; it never holds the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PermissionDeniedError(PlexicaError):
    """The caller lacks a permission. ``permission`` is logged, never sent to the caller."""

    def __init__(self, permission: str, explanation: str = "") -> None:
        super().__init__(f"permission {permission!r} denied" + (f": {explanation}" if explanation else ""))
        self.permission = permission
        self.explanation = explanation


class PluginError(PlexicaError):
    """Something is wrong with a plugin; ``plugin`` names it."""

    def __init__(self, message: str, *, plugin: str) -> None:
        super().__init__(message)
        self.plugin = plugin


class PluginLoadError(PluginError):
    """A plugin could not be loaded: a bad manifest, a missing dependency, a cycle, an unknown hook."""

    def __init__(self, plugin: str, reason: str) -> None:
        super().__init__(f"plugin {plugin!r} cannot be loaded: {reason}", plugin=plugin)
        self.reason = reason


class PluginCallError(PluginError):
    """A plugin's hook implementation raised or timed out."""

    def __init__(self, plugin: str, hook: str, reason: str) -> None:
        super().__init__(f"plugin {plugin!r} failed in {hook}: {reason}", plugin=plugin)
        self.hook = hook
        self.reason = reason


class PluginAnswerError(PluginCallError):
    """A remote plugin answered, but not as wire protocol v1 says: malformed JSON, no protocol header,
    an unknown error class, a result of the wrong type (HTTP 502 to callers)."""


class PluginUnavailableError(PluginCallError):
    """A remote plugin could not be reached: connection refused, its breaker open, its pool full (HTTP 503)."""


class PluginTimeoutError(PluginCallError):
    """A remote plugin did not answer within ``seconds`` (HTTP 504)."""

    def __init__(self, plugin: str, hook: str, seconds: float) -> None:
        super().__init__(plugin, hook, f"no answer within {seconds:g} s")
        self.seconds = seconds


class EventError(PlexicaError):
    """An event could not be published: unknown type, bad payload, or another plugin's type."""

    def __init__(self, message: str, *, event_type: str | None = None) -> None:
        super().__init__(message)
        self.event_type = event_type


class PluginContractError(PluginError, EventError):
    """A plugin broke its own contract at run time: an undeclared event type, a payload failing its own schema.

    The plugin's bug, not the caller's: the HTTP edge answers 500 with only a trace id and logs
    the message with the plugin's name. ``event_type`` names the type concerned, when there is one.
    """

    def __init__(self, plugin: str, message: str, *, event_type: str | None = None) -> None:
        super().__init__(message, plugin=plugin)
        self.event_type = event_type


class RateLimitedError(PlexicaError):
    """A rate limit refused the call: too many requests in its window (HTTP 429).

    ``retry_after`` is the number of seconds until the call would be admitted; ``policy`` names the
    limit that refused it (``"user"``, ``"tenant"``, ``"anonymous"``), never who the caller is.
    """

    def __init__(self, retry_after: float, *, policy: str | None = None) -> None:
        super().__init__(f"rate limit {policy or 'exceeded'}: retry after {retry_after:.3g} s")
        self.retry_after = retry_after
        self.policy = policy


class BackendUnavailableError(PlexicaError):
    """A backend service (database, cache, broker, object store, identity) did not answer."""

    def __init__(self, backend: str, reason: str = "") -> None:
        super().__init__(f"{backend} is unavailable" + (f": {reason}" if reason else ""))
        self.backend = backend


class MissingDependencyError(PlexicaError, ImportError):
    """An optional dependency is not installed; ``extra`` names the extra that provides it."""

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(f"{module} is not installed: pip install 'plexica[{extra}]'")
        self.extra = extra
        self.module = module
