"""Gateway mode: trust identity headers only when a trusted gateway signed them for this request.

A gateway in front of Plexica (Kong, Traefik + forward auth; see ``docs/gateway.md``) validates
the caller's JWT and sends::

    X-Tenant-ID: acme                 (empty or absent: a platform-level caller)
    X-User-ID: 4f1c...
    X-User-Roles: member,editor       (comma-separated, may be empty)
    X-Gateway-Timestamp: 1767225600   (Unix seconds)
    X-Gateway-Nonce: 9b0e6a...        (16-64 of [A-Za-z0-9_-], unique per request)
    X-Gateway-Signature: hex(HMAC-SHA256(key, canonical))

where ``canonical`` is the lines ``v1``, method, raw path, raw query string, tenant, user, roles,
timestamp, nonce joined with ``\\n``. Binding the method, path and query means a captured header
set cannot be moved to another request; the timestamp bounds replay to ``max_skew_seconds``, and
the host remembers every signature it accepted for twice that window (see
:class:`plexica.http.gateway.GatewayMiddleware`), so a replay inside the window is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import typing
from collections.abc import Callable, Iterable, Mapping

import attrs

from plexica.errors import AuthenticationError, ConfigurationError, ValidationError

__all__ = [
    "GATEWAY_MAX_SKEW_SECONDS",
    "NONCE_HEADER",
    "ROLES_HEADER",
    "SIGNATURE_HEADER",
    "TENANT_HEADER",
    "TIMESTAMP_HEADER",
    "USER_HEADER",
    "GatewayAssertion",
    "GatewaySigner",
    "canonical_request",
    "verify_gateway_headers",
]

TENANT_HEADER = "X-Tenant-ID"
USER_HEADER = "X-User-ID"
ROLES_HEADER = "X-User-Roles"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
NONCE_HEADER = "X-Gateway-Nonce"
SIGNATURE_HEADER = "X-Gateway-Signature"
GATEWAY_MAX_SKEW_SECONDS = 60
_VERSION = "v1"
_MAX_VALUE_LENGTH = 255  # a user id is stored as the token's ``sub`` is: at most 255 characters
_MAX_ROLES_LENGTH = 4096
_NONCE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_ROLE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


@attrs.frozen(kw_only=True)
class GatewayAssertion:
    """What a verified gateway signature vouches for.

    Attributes:
        tenant_slug: the tenant the gateway admitted the caller to; ``None`` for a platform caller.
        user_id: the caller's id (the JWT ``sub`` the gateway validated).
        roles: the caller's roles, in the order the gateway sent them.
        timestamp: when the gateway signed (Unix seconds).
        signature: the hex signature, the key of the replay cache.
    """

    tenant_slug: str | None
    user_id: str
    roles: tuple[str, ...]
    timestamp: int
    signature: str = attrs.field(repr=False)


def _check_key(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    if not raw:
        raise ConfigurationError("the gateway key must not be empty (auth.gateway_key)")
    return raw


def _valid_value(value: str, limit: int = _MAX_VALUE_LENGTH) -> bool:
    # A newline would let one request's fields sign as another's; headers cannot carry one anyway.
    return 0 < len(value) <= limit and value.isascii() and value.isprintable()


def canonical_request(
    method: str, path: str, query: str, tenant_slug: str, user_id: str, roles: str, timestamp: str, nonce: str
) -> bytes:
    """The bytes a gateway signs: see the module docstring. ``path`` and ``query`` as sent on the wire."""
    return "\n".join((_VERSION, method.upper(), path, query, tenant_slug, user_id, roles, timestamp, nonce)).encode()


def _signature(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _roles_text(roles: Iterable[str]) -> str:
    listed = tuple(roles)
    if not all(_ROLE_RE.fullmatch(role) for role in listed):
        raise ValidationError("roles must be 1-128 characters of [A-Za-z0-9_.:-]", field="roles")
    text = ",".join(listed)
    if len(text) > _MAX_ROLES_LENGTH:
        raise ValidationError("roles must fit in 4096 characters", field="roles")
    return text


@typing.final
class GatewaySigner:
    """Signs requests the way a gateway must: for tests, forward-auth services and scripts.

    ::

        signer = GatewaySigner(key)
        headers = signer.headers("GET", "/api/plugins/notes/notes", tenant="acme", user="alice", roles=["member"])

    Args:
        key: the shared secret (``auth.gateway_key`` of the host).
        clock: seconds since the epoch; injectable for tests.
    """

    def __init__(self, key: str | bytes, *, clock: Callable[[], float] = time.time) -> None:
        self._key = _check_key(key)
        self._clock = clock

    def headers(
        self,
        method: str,
        path: str,
        *,
        tenant: str | None,
        user: str,
        roles: Iterable[str] = (),
        query: str = "",
        nonce: str | None = None,
    ) -> dict[str, str]:
        """The six headers for one request.

        Args:
            method: the HTTP method.
            path: the path the host receives, percent-encoded as on the wire (no query).
            tenant: the tenant slug, or ``None`` for a platform caller.
            user: the caller's id.
            roles: the caller's roles.
            query: the raw query string, without ``?``.
            nonce: a unique value; default: 128 random bits.

        Raises:
            ValidationError: (a ``ValueError``) a value is empty, too long, not printable ASCII, or a role has a comma.
        """
        tenant_text = tenant or ""
        if (tenant is not None and not _valid_value(tenant_text)) or not _valid_value(user):
            raise ValidationError("tenant and user must be 1-255 printable ASCII characters", field="user")
        roles_text = _roles_text(roles)
        nonce = nonce or secrets.token_urlsafe(16)
        if not _NONCE_RE.fullmatch(nonce):
            raise ValidationError("the nonce must be 16-64 characters of [A-Za-z0-9_-]", field="nonce")
        timestamp = str(int(self._clock()))
        message = canonical_request(method, path, query, tenant_text, user, roles_text, timestamp, nonce)
        headers = {
            USER_HEADER: user,
            ROLES_HEADER: roles_text,
            TIMESTAMP_HEADER: timestamp,
            NONCE_HEADER: nonce,
            SIGNATURE_HEADER: _signature(self._key, message),
        }
        if tenant_text:
            headers[TENANT_HEADER] = tenant_text
        return headers


def verify_gateway_headers(
    headers: Mapping[str, str],
    key: str | bytes,
    *,
    method: str,
    path: str,
    query: str,
    now: float,
    max_skew_seconds: float = GATEWAY_MAX_SKEW_SECONDS,
) -> GatewayAssertion:
    """Check the gateway signature of one request (header names matched case-insensitively).

    This checks the signature and the time window only; refusing a replay within the window is
    the caller's job (it needs shared state), keyed by :attr:`GatewayAssertion.signature`.

    Raises:
        AuthenticationError: a header is missing or malformed, the timestamp is more than
            ``max_skew_seconds`` away from ``now``, or the signature does not match.
        ConfigurationError: (a ``ValueError``) the key is empty (a configuration error, not the caller's).
    """
    raw_key = _check_key(key)
    lowered = {name.lower(): value for name, value in headers.items()}
    tenant_slug = lowered.get(TENANT_HEADER.lower(), "")
    user_id = lowered.get(USER_HEADER.lower(), "")
    roles = lowered.get(ROLES_HEADER.lower(), "")
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    nonce = lowered.get(NONCE_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not (signature and timestamp):
        raise AuthenticationError("gateway headers are not signed")
    if not (_valid_value(user_id) and (not tenant_slug or _valid_value(tenant_slug))):
        raise AuthenticationError("malformed gateway headers")
    role_list = tuple(roles.split(",")) if roles else ()
    if len(roles) > _MAX_ROLES_LENGTH or not all(_ROLE_RE.fullmatch(role) for role in role_list):
        raise AuthenticationError("malformed gateway roles")
    if not _NONCE_RE.fullmatch(nonce):
        raise AuthenticationError("malformed gateway nonce")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise AuthenticationError("malformed gateway timestamp")
    if abs(now - int(timestamp)) > max_skew_seconds:
        raise AuthenticationError("gateway signature is stale")
    message = canonical_request(method, path, query, tenant_slug, user_id, roles, timestamp, nonce)
    expected = _signature(raw_key, message)
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("ascii", "replace")):
        raise AuthenticationError("invalid gateway signature")
    return GatewayAssertion(
        tenant_slug=tenant_slug or None, user_id=user_id, roles=role_list, timestamp=int(timestamp), signature=expected
    )
