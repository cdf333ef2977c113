"""Gateway mode: trust ``X-Tenant-ID`` / ``X-User-ID`` only when a trusted gateway signed them.

A gateway in front of Plexica that has already authenticated the caller sends::

    X-Tenant-ID: acme
    X-User-ID: 4f1c...
    X-Gateway-Timestamp: 1767225600
    X-Gateway-Signature: hex(HMAC-SHA256(key, "acme\\n4f1c...\\n1767225600"))

The timestamp bounds replay to ``max_skew_seconds``; within that window a captured header set
can be replayed, so the gateway link must be TLS or a private network.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from plexica_sdk.errors import AuthenticationError

__all__ = [
    "GATEWAY_MAX_SKEW_SECONDS",
    "SIGNATURE_HEADER",
    "TENANT_HEADER",
    "TIMESTAMP_HEADER",
    "USER_HEADER",
    "sign_gateway_headers",
    "verify_gateway_headers",
]

TENANT_HEADER = "X-Tenant-ID"
USER_HEADER = "X-User-ID"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"
SIGNATURE_HEADER = "X-Gateway-Signature"
GATEWAY_MAX_SKEW_SECONDS = 60
_MAX_VALUE_LENGTH = 256


def _check_key(key: str | bytes) -> bytes:
    raw = key.encode() if isinstance(key, str) else key
    if not raw:
        raise ValueError("the gateway key must not be empty")
    return raw


def _signature(key: bytes, tenant_slug: str, user_id: str, timestamp: str) -> str:
    message = f"{tenant_slug}\n{user_id}\n{timestamp}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _valid_value(value: str) -> bool:
    # A newline would let one (tenant, user) pair sign as another; headers cannot carry one anyway.
    return 0 < len(value) <= _MAX_VALUE_LENGTH and value.isascii() and value.isprintable()


def sign_gateway_headers(tenant_slug: str, user_id: str, *, key: str | bytes, now: float) -> dict[str, str]:
    """The four headers a gateway sends for ``tenant_slug`` / ``user_id`` at time ``now``.

    Raises:
        ValueError: an empty key, or a value that is empty, too long or not printable ASCII.
    """
    if not (_valid_value(tenant_slug) and _valid_value(user_id)):
        raise ValueError("tenant and user must be 1-256 printable ASCII characters")
    timestamp = str(int(now))
    return {
        TENANT_HEADER: tenant_slug,
        USER_HEADER: user_id,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: _signature(_check_key(key), tenant_slug, user_id, timestamp),
    }


def verify_gateway_headers(
    headers: Mapping[str, str],
    key: str | bytes,
    now: float,
    *,
    max_skew_seconds: float = GATEWAY_MAX_SKEW_SECONDS,
) -> tuple[str, str]:
    """``(tenant_slug, user_id)`` from gateway-signed headers (names matched case-insensitively).

    Raises:
        AuthenticationError: a header is missing or malformed, the timestamp is more than
            ``max_skew_seconds`` away from ``now``, or the signature does not match.
        ValueError: the key is empty (a configuration error, not the caller's).
    """
    raw_key = _check_key(key)
    lowered = {name.lower(): value for name, value in headers.items()}
    tenant_slug = lowered.get(TENANT_HEADER.lower(), "")
    user_id = lowered.get(USER_HEADER.lower(), "")
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not (signature and timestamp):
        raise AuthenticationError("gateway headers are not signed")
    if not (_valid_value(tenant_slug) and _valid_value(user_id)):
        raise AuthenticationError("malformed gateway headers")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise AuthenticationError("malformed gateway timestamp")
    if abs(now - int(timestamp)) > max_skew_seconds:
        raise AuthenticationError("gateway signature is stale")
    expected = _signature(raw_key, tenant_slug, user_id, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.lower().encode("ascii", "replace")):
        raise AuthenticationError("invalid gateway signature")
    return tenant_slug, user_id
