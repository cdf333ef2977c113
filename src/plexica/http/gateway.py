"""The gateway stage of the request path: verify gateway-signed identity headers (pure ASGI).

In ``auth.mode = "gateway"`` it replaces bearer-token authentication: every request but the
probes must carry a valid signature (:mod:`plexica.auth.gateway`), and the caller becomes the
signed user with the signed roles, recorded as a :class:`~plexica.auth.tokens.VerifiedToken`
so the tenant and user stages treat it exactly like a token's principal. In token mode with a
gateway key, a signature is optional and only vouches for ``X-Tenant-ID`` (the header resolver);
the bearer token still says who calls.

Each accepted signature is remembered in the host cache for twice the skew window (an atomic
create-with-ttl counter: Redis when configured, so every host process shares it), and a second
request with the same signature is refused: a replay inside the window fails like a forgery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from plexica.auth.gateway import SIGNATURE_HEADER, TENANT_HEADER, GatewayAssertion, verify_gateway_headers
from plexica.auth.tokens import SUPER_ADMIN_ROLE, VerifiedToken
from plexica.http.scope import request_state
from plexica_sdk.errors import AuthenticationError
from plexica_sdk.types import Principal

if TYPE_CHECKING:
    from plexica_sdk.protocols import Cache

__all__ = ["GATEWAY_ISSUER", "GatewayMiddleware"]

#: The ``issuer`` of a principal the gateway vouched for.
GATEWAY_ISSUER = "gateway"
_REPLAY_PREFIX = "plexica:gateway:seen:"


def principal_of(assertion: GatewayAssertion) -> VerifiedToken:
    """The caller a gateway signature speaks for, in the shape a verified bearer token has.

    A platform caller (no tenant) with the ``super_admin`` role is a super-admin candidate, like a
    platform-realm token; the user stage still narrows it to ``core.super_admins``.
    """
    principal = Principal(
        id=assertion.user_id,
        tenant_slug=assertion.tenant_slug,
        roles=assertion.roles,
        is_super_admin=assertion.tenant_slug is None and SUPER_ADMIN_ROLE in assertion.roles,
        issuer=GATEWAY_ISSUER,
    )
    return VerifiedToken(
        principal=principal,
        tenant_slug=assertion.tenant_slug,
        is_platform=assertion.tenant_slug is None,
        realm=GATEWAY_ISSUER,
        claims={},
        expires_at=float(assertion.timestamp),
    )


class GatewayMiddleware:
    """Verifies gateway signatures and refuses replays; see the module docstring.

    Args:
        app: the next stage.
        key: the shared HMAC key (``auth.gateway_key``).
        cache: where accepted signatures are remembered.
        required: gateway mode: unsigned requests are refused and the signed user is the caller.
        max_skew_seconds: how far the signed timestamp may be from this host's clock.
        exempt_paths: paths served without a signature in gateway mode (the probes).
        clock: seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        key: str,
        cache: Cache,
        required: bool,
        max_skew_seconds: float,
        exempt_paths: Collection[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not key:
            raise ValueError("the gateway key must not be empty")
        self.app = app
        self.key = key
        self.cache = cache
        self.required = required
        self.max_skew_seconds = max_skew_seconds
        self.exempt_paths = frozenset(exempt_paths)
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        signed = SIGNATURE_HEADER.lower() in headers
        if not signed:
            if self.required and _route_path(scope) not in self.exempt_paths:
                raise AuthenticationError("this host accepts only gateway-signed requests")
            if TENANT_HEADER.lower() in headers:
                # Token mode with a gateway key: an unsigned tenant header is a misconfigured gateway.
                raise AuthenticationError("gateway headers are not signed")
            return await self.app(scope, receive, send)
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        assertion = verify_gateway_headers(
            headers,
            self.key,
            method=scope["method"],
            path=raw_path.decode("latin-1"),
            query=scope.get("query_string", b"").decode("latin-1"),
            now=self._clock(),
            max_skew_seconds=self.max_skew_seconds,
        )
        # First use creates the counter at 1 with its ttl in one atomic step; any later use is a replay.
        seen = await self.cache.incr(_REPLAY_PREFIX + assertion.signature, ttl=2 * self.max_skew_seconds + 1)
        if seen != 1:
            raise AuthenticationError("gateway signature was already used")
        state = request_state(scope)
        state.gateway = assertion
        if self.required:
            verified = principal_of(assertion)
            state.token, state.principal = verified, verified.principal
        await self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
