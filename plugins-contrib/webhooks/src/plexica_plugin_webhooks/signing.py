"""Delivery signatures: HMAC-SHA256 over ``{timestamp}.{body}``, and their check for receivers.

Standard library only, so a receiver can copy this file or import it without the host. The
header is ``Plexica-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]``: one ``v1`` per secret
that is valid (two during a rotation's grace period). The timestamp is signed too, so a captured
delivery cannot be replayed after ``tolerance_seconds``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from typing import Final

__all__ = ["SIGNATURE_HEADER", "InvalidSignatureError", "new_secret", "sign", "signature_header", "verify_signature"]

SIGNATURE_HEADER: Final = "Plexica-Signature"
_SECRET_PREFIX: Final = "whsec_"  # noqa: S105  (a prefix that marks secrets, not a secret)


class InvalidSignatureError(ValueError):
    """A delivery's signature header is missing, malformed, stale or matches no secret."""


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` and 32 random bytes, URL-safe base64."""
    return _SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``{timestamp}.{body}`` under ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secrets_: Iterable[str], timestamp: int, body: bytes) -> str:
    """The ``Plexica-Signature`` value for ``body`` signed at ``timestamp`` with each secret."""
    return ",".join([f"t={timestamp}", *(f"v1={sign(secret, timestamp, body)}" for secret in secrets_)])


def verify_signature(
    secret: str, header: str | None, body: bytes, *, tolerance_seconds: float = 300.0, now: float | None = None
) -> int:
    """Check a delivery as a receiver: call it with the raw body, before parsing it.

    Args:
        secret: the endpoint's secret, as shown when it was created or rotated.
        header: the ``Plexica-Signature`` header's value.
        body: the request body exactly as received.
        tolerance_seconds: how old (or how far in the future) the timestamp may be.
        now: the current Unix time (default: ``time.time()``).

    Returns:
        The signed timestamp.

    Raises:
        InvalidSignatureError: no or malformed header, a timestamp outside the tolerance, or no
            ``v1`` signature that matches.
    """
    if not header:
        raise InvalidSignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise InvalidSignatureError(f"malformed {SIGNATURE_HEADER} header: it needs t= and v1=")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise InvalidSignatureError("the signature's timestamp is outside the tolerance")
    expected = sign(secret, timestamp, body)
    # Compare against every candidate: the time taken does not tell which one matched.
    matched = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    if not any(matched):
        raise InvalidSignatureError("no signature matches the secret")
    return timestamp
