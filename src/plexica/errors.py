"""The host's error tree and the one table from error class to HTTP status, problem type and title.

The tree is the SDK's (:mod:`plexica_sdk.errors`, re-exported here) plus host-only errors. The
table, :data:`PROBLEM_KINDS`, is the only place that decides how an error reaches a client;
``plexica.http.problems`` renders it as RFC 9457 problem+json. An error is looked up by its class,
then by each base class in method resolution order, so a subclass inherits its parent's row.
Anything without a row — a bare ``PlexicaError``, ``SettingsError`` raised mid-request, a
``KeyError`` — is a host bug: a 500 whose body holds only the trace id (``docs/errors.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import attrs

from plexica_sdk.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConflictError,
    EventError,
    InvalidTenantSlugError,
    MissingDependencyError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PlexicaError,
    PluginAnswerError,
    PluginCallError,
    PluginContractError,
    PluginError,
    PluginLoadError,
    PluginTimeoutError,
    PluginUnavailableError,
    RateLimitedError,
    SettingsError,
    TenantContextMissingError,
    TenantError,
    TenantNotFoundError,
    TenantSuspendedError,
    UnsupportedMediaTypeError,
    ValidationError,
)

__all__ = [
    "HTTP_STATUS_KINDS",
    "INTERNAL",
    "PROBLEM_KINDS",
    "PROBLEM_TYPE_BASE",
    "AuthenticationError",
    "BackendUnavailableError",
    "ConfigurationError",
    "ConflictError",
    "EventError",
    "IdentityAdminError",
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
    "PreconditionRequiredError",
    "ProblemKind",
    "RateLimitedError",
    "SettingsError",
    "TenantContextMissingError",
    "TenantError",
    "TenantNotFoundError",
    "TenantSuspendedError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "kind_for_status",
    "kind_of",
]

#: Every problem ``type`` is this base plus a stable slug; the URIs are documented, never renamed.
PROBLEM_TYPE_BASE: Final = "https://plexica.dev/problems/"


class PreconditionRequiredError(PlexicaError):
    """A conditional request header (``If-Match``) is required and missing: 428."""

    def __init__(self, header: str = "If-Match") -> None:
        super().__init__(f'send {header}: "<version>" (from the ETag), or {header}: *')
        self.header = header


class IdentityAdminError(PlexicaError):
    """The identity server refused an admin operation (not a connectivity problem): 502.

    Attributes:
        realm: the realm concerned, if any.
        status: the HTTP status the server answered.
    """

    def __init__(self, message: str, *, realm: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.realm = realm
        self.status = status


class ConfigurationError(SettingsError):
    """A component was configured wrongly in code or settings (a bad realm template, no audience).

    A ``SettingsError`` (also ``ValueError``), raised while the host is built, never per request.
    """

    def __init__(self, problem: str) -> None:
        super().__init__([problem])


@attrs.frozen
class ProblemKind:
    """How one class of error reaches a client.

    ``detail`` is either fixed text, or a ``str.format`` template over the error's attributes
    (``"{backend} is unavailable"``); with ``public_message`` the error's own message is the detail,
    for errors whose message is written for the caller (validation, conflicts).
    """

    status: int
    slug: str
    title: str
    detail: str | None = None
    public_message: bool = False

    @property
    def type(self) -> str:
        """The stable problem ``type`` URI."""
        return PROBLEM_TYPE_BASE + self.slug

    def detail_for(self, exc: BaseException) -> str | None:
        """The ``detail`` a client may see for ``exc``; never a stack trace or an internal message."""
        if self.public_message:
            return str(exc) or self.detail
        if self.detail is None:
            return None
        try:
            return self.detail.format_map(vars(exc))
        except (KeyError, AttributeError, ValueError, IndexError):
            return self.title


#: The answer to everything without a row: a host bug. Only the trace id goes with it.
INTERNAL: Final = ProblemKind(500, "internal", "Internal Server Error", "an unexpected error occurred")

#: The one table. Order does not matter: lookup follows each error's method resolution order.
PROBLEM_KINDS: Final[Mapping[type[BaseException], ProblemKind]] = {
    AuthenticationError: ProblemKind(401, "unauthorized", "Unauthorized", "{reason}"),
    TenantSuspendedError: ProblemKind(403, "tenant-suspended", "Forbidden", "this tenant is suspended"),
    PermissionDeniedError: ProblemKind(403, "forbidden", "Forbidden", "you are not allowed to do this"),
    NotFoundError: ProblemKind(404, "not-found", "Not Found", "the resource does not exist"),
    ConflictError: ProblemKind(409, "conflict", "Conflict", public_message=True),
    PayloadTooLargeError: ProblemKind(413, "payload-too-large", "Content Too Large", public_message=True),
    UnsupportedMediaTypeError: ProblemKind(
        415, "unsupported-media-type", "Unsupported Media Type", public_message=True
    ),
    ValidationError: ProblemKind(422, "validation", "Unprocessable Content", public_message=True),
    PreconditionRequiredError: ProblemKind(428, "precondition-required", "Precondition Required", public_message=True),
    RateLimitedError: ProblemKind(
        429,
        "rate-limited",
        "Too Many Requests",
        "the rate limit is exhausted; retry after the number of seconds in Retry-After",
    ),
    # A plugin's own bug (an undeclared event type, a payload failing its own schema): logged with
    # the plugin's name, answered like any host bug.
    PluginContractError: INTERNAL,
    PluginCallError: ProblemKind(502, "plugin-failed", "Bad Gateway", "plugin {plugin!r} failed"),
    # A remote plugin (docs/remote.md): answered badly, cannot be reached, or did not answer in time.
    PluginAnswerError: ProblemKind(502, "plugin-bad-answer", "Bad Gateway", "plugin {plugin!r} answered badly"),
    PluginUnavailableError: ProblemKind(
        503, "plugin-unavailable", "Service Unavailable", "plugin {plugin!r} is unavailable"
    ),
    PluginTimeoutError: ProblemKind(
        504, "plugin-timeout", "Gateway Timeout", "plugin {plugin!r} did not answer in time"
    ),
    IdentityAdminError: ProblemKind(502, "identity", "Bad Gateway", "the identity server refused the change"),
    BackendUnavailableError: ProblemKind(503, "unavailable", "Service Unavailable", "{backend} is unavailable"),
}

#: Problems the HTTP layer raises itself (Starlette's ``HTTPException``: routing, plugins), by status.
HTTP_STATUS_KINDS: Final[Mapping[int, ProblemKind]] = {
    400: ProblemKind(400, "bad-request", "Bad Request"),
    401: ProblemKind(401, "unauthorized", "Unauthorized"),
    403: ProblemKind(403, "forbidden", "Forbidden"),
    404: ProblemKind(404, "not-found", "Not Found", "the resource does not exist"),
    405: ProblemKind(405, "method-not-allowed", "Method Not Allowed", "the resource does not allow this method"),
    406: ProblemKind(406, "not-acceptable", "Not Acceptable"),
    409: ProblemKind(409, "conflict", "Conflict"),
    413: ProblemKind(413, "payload-too-large", "Content Too Large"),
    415: ProblemKind(415, "unsupported-media-type", "Unsupported Media Type"),
    422: ProblemKind(422, "validation", "Unprocessable Content"),
    429: ProblemKind(429, "rate-limited", "Too Many Requests"),
}


_resolved: dict[type[BaseException], ProblemKind] = {}


def kind_of(exc: BaseException) -> ProblemKind:
    """The row of ``exc``'s class (or its nearest base with one); :data:`INTERNAL` when none has a row."""
    cls = type(exc)
    kind = _resolved.get(cls)
    if kind is None:
        kind = next((PROBLEM_KINDS[base] for base in cls.__mro__ if base in PROBLEM_KINDS), INTERNAL)
        _resolved[cls] = kind  # one entry per class ever raised: bounded by the code, not the input
    return kind


def kind_for_status(status: int) -> ProblemKind:
    """The kind of a status raised by the HTTP layer itself; statuses without a row get ``http-<status>``."""
    kind = HTTP_STATUS_KINDS.get(status)
    if kind is not None:
        return kind
    if status >= 500:
        return INTERNAL if status == 500 else ProblemKind(status, f"http-{status}", _phrase(status))
    return ProblemKind(status, f"http-{status}", _phrase(status))


def _phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
