"""Verifying the host's signed context tokens inside a remote plugin process.

A token is accepted only when all of these hold, checked in this order so that nothing about an
unauthenticated token reaches a key or a cache: the header says ``alg`` = ``Ed25519`` and
``typ`` = ``plexica-context+jwt`` with a ``kid`` (so ``none``, ``HS256`` with the public key as
secret, ``RS256``… are refused before any key is looked up); the ``kid`` is in the host's JWKS
(fetched from the host, cached, refetched on an unknown ``kid`` at most every
``refresh_min_seconds``); the signature verifies; ``aud`` is this plugin; ``exp - iat`` is at most
60 s and the token has not expired (``leeway_seconds`` for clock skew); and its ``jti`` was not
seen before within its lifetime (a replayed token is refused).
"""

from __future__ import annotations

import asyncio
import binascii
import json
import logging
import time
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import httpx2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey

from plexica_sdk.errors import AuthenticationError, BackendUnavailableError
from plexica_sdk.remote.claims import (
    ALGORITHM,
    MAX_TTL_SECONDS,
    TOKEN_TYPE,
    RemoteContext,
    b64url_decode,
    remote_context_from_claims,
)

__all__ = ["ContextVerifier", "ReplayGuard"]

logger = logging.getLogger(__name__)

_MAX_TOKEN_BYTES = 8192
_MAX_JWKS_BYTES = 64 * 1024

JwksSource = Callable[[], Awaitable[Mapping[str, Any]]]


def _json_object(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


@typing.final
class ReplayGuard:
    """The ``jti`` values seen within their tokens' lifetimes (in memory, per process).

    Memory is bounded by the call rate times the 60 s window: an entry is dropped once its token
    has expired, since an expired token is refused anyway.
    """

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._next_purge = float("-inf")

    def first_use(self, jti: str, expires_at: float, now: float) -> bool:
        """Record ``jti``; False when it was already recorded and has not expired."""
        if now >= self._next_purge:
            self._seen = {key: exp for key, exp in self._seen.items() if exp > now}
            self._next_purge = now + 1.0
        previous = self._seen.get(jti)
        if previous is not None and previous > now:
            return False
        self._seen[jti] = expires_at
        return True

    def __len__(self) -> int:
        return len(self._seen)


@typing.final
class ContextVerifier:
    """Verifies context tokens addressed to one plugin.

    Args:
        audience: this plugin's name; tokens for any other plugin are refused.
        jwks: the host's JWKS URL (``{host}/.well-known/plexica/jwks.json``), or a coroutine
            function returning the JWKS document (for hosts in the same process, and tests).
        issuer: when set, ``iss`` must equal it.
        client: the HTTP client for a URL; default: one of its own, closed by :meth:`aclose`.
        leeway_seconds: clock skew tolerated on ``exp`` and ``iat``.
        refresh_min_seconds: an unknown ``kid`` refetches the JWKS at most this often, so a flood
            of forged ``kid`` values cannot turn the plugin into a load generator against the host.
        max_age_seconds: the cached JWKS is refetched when older, so a key the host removed stops
            verifying.
        clock: seconds since the epoch; injectable for tests.
        single_use: refuse a ``jti`` seen before (a replay). False only for the host's callback
            API, where a plugin authenticates several callbacks with the token of the one call it serves.
    """

    def __init__(
        self,
        audience: str,
        jwks: str | JwksSource,
        *,
        issuer: str | None = None,
        client: httpx2.AsyncClient | None = None,
        leeway_seconds: float = 5.0,
        refresh_min_seconds: float = 10.0,
        max_age_seconds: float = 300.0,
        clock: Callable[[], float] = time.time,
        single_use: bool = True,
    ) -> None:
        self.audience = audience
        self._single_use = single_use
        self.issuer = issuer
        self._jwks = jwks
        self._client = client
        self._own_client = client is None and isinstance(jwks, str)
        self._leeway = leeway_seconds
        self._refresh_min = refresh_min_seconds
        self._max_age = max_age_seconds
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._loaded_at = float("-inf")
        self._attempted_at = float("-inf")
        self._lock = asyncio.Lock()
        self.replays = ReplayGuard()
        #: How many times the JWKS was fetched (successfully or not); for tests and metrics.
        self.fetches = 0

    async def aclose(self) -> None:
        """Close the HTTP client this verifier created, if any."""
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def verify(self, token: str) -> RemoteContext:
        """Verify ``token`` and return the context the host signed.

        Raises:
            AuthenticationError: the token is malformed, forged, expired, for another plugin,
                longer-lived than 60 s, or replayed. ``reason`` says which, never the token.
            BackendUnavailableError: the host's JWKS could not be fetched to look up a new ``kid``.
        """
        # One pass over the compact JWS: header checks, then the key, the signature, the claims.
        if len(token) > _MAX_TOKEN_BYTES:
            raise AuthenticationError("context token is too large")
        try:
            head, payload, signature = token.split(".")
            header = _json_object(b64url_decode(head))
        except (ValueError, UnicodeError, binascii.Error) as exc:
            raise AuthenticationError("context token is malformed") from exc
        if header.get("alg") != ALGORITHM:  # before any key: no algorithm confusion, no "none"
            raise AuthenticationError(f"context token algorithm must be {ALGORITHM}")
        if header.get("typ") != TOKEN_TYPE:
            raise AuthenticationError("not a context token")
        if "crit" in header:  # no extension is understood, so none may be required (RFC 7515 §4.1.11)
            raise AuthenticationError("context token is malformed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationError("context token has no key id")
        key = await self._key(kid)
        try:
            key.verify(b64url_decode(signature), f"{head}.{payload}".encode("ascii"))
        except (InvalidSignature, ValueError, UnicodeError, binascii.Error) as exc:
            raise AuthenticationError("context token signature is invalid") from exc
        try:
            claims = _json_object(b64url_decode(payload))
        except (ValueError, UnicodeError, binascii.Error) as exc:
            raise AuthenticationError("context token is malformed") from exc
        context = remote_context_from_claims(claims)
        now = self._clock()
        if context.audience != self.audience:
            raise AuthenticationError("context token is for another plugin")
        if self.issuer is not None and context.issuer != self.issuer:
            raise AuthenticationError("context token is from another host")
        if context.expires_at - context.issued_at > MAX_TTL_SECONDS:
            raise AuthenticationError(f"context token lives longer than {MAX_TTL_SECONDS} s")
        if context.expires_at + self._leeway <= now:
            raise AuthenticationError("context token has expired")
        if context.issued_at - self._leeway > now:
            raise AuthenticationError("context token is issued in the future")
        if self._single_use and not self.replays.first_use(context.jti, context.expires_at + self._leeway, now):
            raise AuthenticationError("context token was already used")
        return attrs.evolve(context, token=token)

    async def _key(self, kid: str) -> Ed25519PublicKey:
        now = self._clock()
        key = self._keys.get(kid) if now - self._loaded_at < self._max_age else None
        if key is not None:
            return key
        async with self._lock:
            now = self._clock()
            stale = now - self._loaded_at >= self._max_age
            if (stale or kid not in self._keys) and now - self._attempted_at >= self._refresh_min:
                self._attempted_at = now
                try:
                    await self._refresh()
                except BackendUnavailableError:
                    # A failed fetch does not count: a host not serving yet (a call made while it
                    # starts) is asked again by the next call, not after the whole interval. One
                    # fetch in flight at a time (the lock) still bounds what a flood can cost.
                    self._attempted_at = float("-inf")
                    raise
            elif stale:
                self._keys = {}  # refresh rate-limited and the keys too old to trust: fail closed
        key = self._keys.get(kid)
        if key is None:
            raise AuthenticationError("context token is signed by an unknown key")
        return key

    async def _refresh(self) -> None:
        self.fetches += 1
        document = await self._fetch()
        try:
            key_set = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise BackendUnavailableError("host jwks", "not a JWK set") from exc
        keys = {  # the loaded key objects, so a call verifies without parsing a JWK
            key.kid: key.public_key
            for key in key_set
            if isinstance(key, OKPKey) and key.kid and isinstance(key.public_key, Ed25519PublicKey)
        }
        self._keys = keys
        self._loaded_at = self._clock()

    async def _fetch(self) -> Mapping[str, Any]:
        if not isinstance(self._jwks, str):
            return await self._jwks()
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=5.0)
        try:
            response = await self._client.get(self._jwks, headers={"Accept": "application/json"})
        except httpx2.HTTPError as exc:
            raise BackendUnavailableError("host jwks", type(exc).__name__) from exc
        if response.status_code != 200 or len(response.content) > _MAX_JWKS_BYTES:
            raise BackendUnavailableError("host jwks", f"HTTP {response.status_code}")
        try:
            document = json.loads(response.content)
        except ValueError as exc:
            raise BackendUnavailableError("host jwks", "not JSON") from exc
        if not isinstance(document, dict):
            raise BackendUnavailableError("host jwks", "not a JSON object")
        return document
