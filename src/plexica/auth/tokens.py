"""Bearer token verification: from a compact JWT to a :class:`Principal` and its tenant.

The order of checks is the defence: size, then structure, then the (unverified) issuer only to
refuse unknown issuers and pick keys, then the algorithm pinned for that issuer, then the
signature, and only then the claims. Error reasons are fixed strings: never the token, never a
claim value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import types
import typing
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from typing import Any

import attrs
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError

from plexica.auth.issuers import IssuerMatch, IssuerStrategy
from plexica.auth.jwks import KeySource
from plexica.errors import AuthenticationError, ConfigurationError
from plexica_sdk.types import Principal

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "SUPER_ADMIN_ROLE",
    "TokenVerifier",
    "VerifiedToken",
    "principal_from_claims",
]

#: Tokens longer than this are refused before any parsing (Keycloak tokens are ~1-2 KB).
MAX_TOKEN_BYTES = 8 * 1024
#: The only algorithms that may ever be pinned: no ``none``, no HMAC (whose "secret" would be a
#: public key anyone can download).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "ES256K", "EdDSA", "Ed25519"}
)
#: The platform-realm role that makes a super-admin.
SUPER_ADMIN_ROLE = "super_admin"
_FAR_FUTURE = 2**53  # any larger integer "exp" would overflow float()
_ACCESS_TOKEN_TYPES = ("Bearer",)  # Keycloak's payload "typ"; ID and refresh tokens differ
#: Bounds of the identity claims a profile stores (``users`` columns): ``sub`` is required.
_TEXT_CLAIM_LIMITS = {"sub": 255, "preferred_username": 255, "email": 320, "name": 255}
#: Control characters (NUL included) and lone surrogates: no text column can hold them.
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CLAIM_REASONS = {
    "nbf": "token is not valid yet",
    "iat": "token was issued in the future",
    "aud": "token is not for this audience",
    "iss": "token issuer does not match",
}


@attrs.frozen(kw_only=True)
class VerifiedToken:
    """A token whose signature and claims checked out. Cached and shared: treat it as read-only."""

    principal: Principal
    tenant_slug: str | None
    is_platform: bool
    realm: str
    claims: Mapping[str, Any] = attrs.field(repr=False)  # may hold personal data
    expires_at: float


def _pinned(algorithms: Collection[str]) -> frozenset[str]:
    pinned = frozenset(algorithms)
    if not pinned:
        raise ConfigurationError("at least one signing algorithm must be allowed")
    if unsafe := sorted(pinned - ASYMMETRIC_ALGORITHMS):
        raise ConfigurationError(f"signing algorithms not allowed for bearer tokens: {', '.join(unsafe)}")
    return pinned


def _b64decode(segment: str) -> bytes:
    # Strict base64url without padding: alphabet checked here, since b64decode would skip junk.
    if len(segment) % 4 == 1 or segment.strip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"):
        raise AuthenticationError("malformed token")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise AuthenticationError("malformed token") from None


def _json_object(segment: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(segment))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise AuthenticationError("malformed token") from None
    if not isinstance(value, dict):
        raise AuthenticationError("malformed token")
    return value


def parse_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, *not* verified: only to choose how to verify it.

    Raises:
        AuthenticationError: too large, not three base64url segments, or not JSON objects.
    """
    if len(token) > MAX_TOKEN_BYTES:
        raise AuthenticationError("token too large")
    if not token.isascii():
        raise AuthenticationError("malformed token")
    segments = token.split(".")
    if len(segments) != 3 or not all(segments):
        raise AuthenticationError("malformed token")
    header, payload = _json_object(segments[0]), _json_object(segments[1])
    _b64decode(segments[2])
    return header, payload


def principal_from_claims(claims: Mapping[str, Any], match: IssuerMatch) -> Principal:
    """The caller a verified token speaks for.

    Super-admin needs both the platform realm and its role: a tenant realm's admin can create a
    ``super_admin`` role in their own realm, and it must grant nothing.
    """
    realm_access = claims.get("realm_access")
    raw_roles = realm_access.get("roles") if isinstance(realm_access, Mapping) else None
    roles = tuple(role for role in raw_roles if isinstance(role, str)) if isinstance(raw_roles, list) else ()

    def text(name: str) -> str | None:
        value = claims.get(name)
        return value if isinstance(value, str) else None

    return Principal(
        id=claims["sub"],
        tenant_slug=match.tenant_slug,
        username=text("preferred_username"),
        email=text("email"),
        name=text("name"),
        roles=roles,
        is_super_admin=match.is_platform and SUPER_ADMIN_ROLE in roles,
        issuer=match.issuer,
    )


@typing.final
class TokenVerifier:
    """Verifies bearer JWTs and caches the result until the token expires.

    Args:
        strategy: which issuers are accepted and which tenant each speaks for.
        key_source: public keys by ``(issuer, kid)``.
        audience: the API audience every token's ``aud`` must contain.
        algorithms: signing algorithms accepted from every issuer (asymmetric only).
        issuer_algorithms: per-issuer replacements for ``algorithms``.
        leeway: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        clock: seconds since the epoch; injectable for tests.
        cache_size: verified tokens remembered (least recently used are dropped); 0 disables.
    """

    def __init__(
        self,
        strategy: IssuerStrategy,
        key_source: KeySource,
        *,
        audience: str,
        algorithms: Collection[str] = ("RS256", "ES256"),
        issuer_algorithms: Mapping[str, Collection[str]] | None = None,
        leeway: int = 30,
        clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
    ) -> None:
        if not audience:
            raise ConfigurationError("an API audience is required (auth.audience)")
        self.strategy = strategy
        self.key_source = key_source
        self.audience = audience
        self.algorithms = _pinned(algorithms)
        self.issuer_algorithms = {iss: _pinned(algs) for iss, algs in (issuer_algorithms or {}).items()}
        self.leeway = leeway
        self.cache_size = cache_size
        self._clock = clock
        self._cache: OrderedDict[bytes, VerifiedToken] = OrderedDict()

    async def verify(self, token: str) -> VerifiedToken:
        """Verify a compact JWT (without the ``Bearer`` prefix).

        Raises:
            AuthenticationError: the token is malformed, forged, expired, not for this API, or
                from an unknown issuer or key.
            BackendUnavailableError: the issuer's keys could not be fetched.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise AuthenticationError("token too large")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            if self._clock() < cached.expires_at + self.leeway:
                self._cache.move_to_end(digest)
                return cached
            del self._cache[digest]  # expired: the full path below gives the precise error
        verified = await self._verify(token)
        if self.cache_size > 0:
            self._cache[digest] = verified
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return verified

    async def _verify(self, token: str) -> VerifiedToken:
        header, unverified = parse_unverified(token)
        issuer = unverified.get("iss")
        if not isinstance(issuer, str):
            raise AuthenticationError("token has no issuer")
        self.strategy.realm_of(issuer)  # refuses unknown issuers before any key lookup
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.issuer_algorithms.get(issuer, self.algorithms):
            raise AuthenticationError("signing algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= 256:
            raise AuthenticationError("token has no key id")
        key = await self.key_source.get_key(issuer, kid)
        if key.alg is not None and key.alg != alg:  # a key that declares its algorithm pins it
            raise AuthenticationError("signing algorithm not allowed")
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
        except BadSignatureError:
            raise AuthenticationError("invalid signature") from None
        except (JoseError, ValueError, TypeError):
            raise AuthenticationError("invalid token") from None
        self._check_claims(claims, issuer)
        match = self.strategy.resolve(issuer, claims)
        return VerifiedToken(
            principal=principal_from_claims(claims, match),
            tenant_slug=match.tenant_slug,
            is_platform=match.is_platform,
            realm=match.realm,
            claims=types.MappingProxyType(claims),
            expires_at=float(min(claims["exp"], _FAR_FUTURE)),
        )

    def _check_claims(self, claims: dict[str, Any], issuer: str) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=int(self._clock()),
            leeway=self.leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise AuthenticationError("token expired") from None
        except MissingClaimError as exc:
            raise AuthenticationError(f"token lacks claims: {exc.claim}") from None
        except InvalidClaimError as exc:
            raise AuthenticationError(_CLAIM_REASONS.get(exc.claim, f"invalid {exc.claim} claim")) from None
        typ = claims.get("typ", "Bearer")
        if typ not in _ACCESS_TOKEN_TYPES:
            raise AuthenticationError("not an access token")
        _check_identity_claims(claims)


def _check_identity_claims(claims: Mapping[str, Any]) -> None:
    """Refuse identity claims no profile could store: a signature proves who issued them, not that they fit.

    A NUL, a control character, a lone surrogate or an over-long value would otherwise reach the
    database on every request of that user (a 500 on PostgreSQL, ``/me`` included).
    """
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= _TEXT_CLAIM_LIMITS["sub"] or not sub.isprintable():
        raise AuthenticationError("invalid sub claim")
    for name, limit in _TEXT_CLAIM_LIMITS.items():
        value = claims.get(name)
        # Claims of another type are ignored by principal_from_claims, so never stored.
        if isinstance(value, str) and (len(value) > limit or _UNSTORABLE.search(value)):
            raise AuthenticationError(f"invalid {name} claim")
