"""Pure ASGI middleware of the request path, outermost first:

trace id → problem+json errors → access log + metrics → authentication → tenant resolution.

Each stage writes what it learned into the request's one typed :class:`~plexica.http.scope.RequestState`
(trace id, token, principal, tenant) and the tenant stage sets the tenant context var, always
resetting it afterwards.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plexica.auth import RealmPerTenantStrategy, verify_gateway_headers
from plexica.auth.tokens import parse_unverified
from plexica.http.problems import problem_for
from plexica.http.scope import attach_state, request_state, trace_id_of
from plexica.permissions.engine import client_ip
from plexica.tenancy.naming import SLUG_RE
from plexica.tenancy.service import tenant_context_of
from plexica_sdk import context
from plexica_sdk.errors import (
    AuthenticationError,
    PlexicaError,
    TenantNotFoundError,
    TenantSuspendedError,
    ValidationError,
)

if TYPE_CHECKING:
    from plexica.auth import TokenVerifier
    from plexica.observability.metrics import Metrics
    from plexica_sdk.types import TenantInfo

__all__ = [
    "AccessLogMiddleware",
    "AuthenticationMiddleware",
    "ErrorMiddleware",
    "TenantLookup",
    "TenantMiddleware",
    "TraceIdMiddleware",
]


class TenantLookup(Protocol):
    """Finds a tenant that is not deleted by slug (``TenantNotFoundError`` otherwise); cached by the host."""

    async def get(self, slug: str) -> TenantInfo: ...


access_logger = logging.getLogger("plexica.access")
error_logger = logging.getLogger("plexica.errors")

TRACE_HEADER = "x-trace-id"
_TRACE_RE = re.compile(r"^[A-Za-z0-9._-]{8,128}$")


class TraceIdMiddleware:
    """Propagates a well-formed ``X-Trace-ID`` or generates one, and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = Headers(scope=scope).get(TRACE_HEADER, "")
        trace_id = incoming if _TRACE_RE.fullmatch(incoming) else uuid.uuid4().hex
        attach_state(scope, trace_id)

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-trace-id", trace_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_trace)


class ErrorMiddleware:
    """Turns every exception into an RFC 9457 problem response; unexpected ones are logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if not isinstance(exc, PlexicaError) and not hasattr(exc, "status_code"):
                error_logger.exception("unhandled error", extra={"path": scope.get("path")})
            if started:
                raise
            await problem_for(exc, trace_id=trace_id_of(scope))(scope, receive, send)


class AccessLogMiddleware:
    """One JSON log line and the HTTP metrics per request: no query string, no headers, no body."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            elapsed = time.perf_counter() - started
            state = request_state(scope)
            tenant, principal = state.tenant, state.principal
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(scope["method"], route_path, status, elapsed, tenant.id if tenant else "")
            if self.access_log:
                access_logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "tenant": tenant.slug if tenant else None,
                        "user": principal.id if principal else None,
                        "trace_id": state.trace_id,
                    },
                )


class AuthenticationMiddleware:
    """Verifies a bearer token when one is sent; routes decide whether one is required.

    With keys fetched from an identity server (``auth.keycloak``), a token whose issuer names a
    tenant realm is verified only if that tenant exists, so made-up slugs never cost the identity
    server a discovery request: they are refused like any unknown issuer (401). The answers are
    remembered briefly; the tenant stage still looks the tenant up on every request, so this
    memory only decides whether the identity server may be asked, never whether a tenant is served.
    """

    #: Seconds an existing / a missing tenant is remembered, and how many are remembered at most.
    KNOWN_TTL_SECONDS = 30.0
    UNKNOWN_TTL_SECONDS = 5.0
    MAX_REMEMBERED = 10_000

    def __init__(
        self, app: ASGIApp, *, verifier: TokenVerifier, tenants: TenantLookup, check_tenants: bool = False
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.tenants = tenants
        self._check_tenants = check_tenants
        self._tenants: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        authorization = Headers(scope=scope).get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise AuthenticationError("expected 'Authorization: Bearer <token>'")
            if self._check_tenants:
                await self._refuse_unknown_tenant(token)
            verified = await self.verifier.verify(token)
            state = request_state(scope)
            state.token, state.principal = verified, verified.principal
        await self.app(scope, receive, send)

    async def _refuse_unknown_tenant(self, token: str) -> None:
        strategy = self.verifier.strategy
        if not isinstance(strategy, RealmPerTenantStrategy):
            return  # one shared realm (Organizations): no per-tenant key fetches to protect
        try:
            _header, unverified = parse_unverified(token)
            issuer = unverified.get("iss")
            if not isinstance(issuer, str):
                return
            tenant_slug = strategy.resolve(issuer, unverified).tenant_slug
        except AuthenticationError:
            return  # malformed or a foreign issuer: the verifier refuses it without any fetch
        if tenant_slug is not None and not await self._tenant_exists(tenant_slug):
            raise AuthenticationError("unknown issuer")  # what the identity server would have said

    async def _tenant_exists(self, slug: str) -> bool:
        now = time.monotonic()
        remembered = self._tenants.get(slug)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        try:
            await self.tenants.get(slug)
            exists = True
        except (TenantNotFoundError, ValidationError):
            exists = False
        self._tenants[slug] = (exists, now + (self.KNOWN_TTL_SECONDS if exists else self.UNKNOWN_TTL_SECONDS))
        self._tenants.move_to_end(slug)
        while len(self._tenants) > self.MAX_REMEMBERED:
            self._tenants.popitem(last=False)
        return exists


class TenantMiddleware:
    """Resolves the tenant from the token, the host name or a trusted ``X-Tenant-ID`` header.

    A token for another tenant than the one addressed gets 404, like an unknown or deleted tenant,
    so a foreign caller learns nothing; a suspended tenant gets 403.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tenants: TenantLookup,
        host_suffix: str | None = None,
        gateway_key: str | None = None,
        trust_unsigned_header: bool = False,
    ) -> None:
        self.app = app
        self.tenants = tenants
        self.host_suffix = host_suffix
        self.gateway_key = gateway_key
        self.trust_unsigned_header = trust_unsigned_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        slug = self._resolve_slug(scope, headers)
        if slug is None:
            return await self.app(scope, receive, send)
        tenant = await self.tenants.get(slug)  # cached: no database read when warm
        if tenant.status == "suspended":
            raise TenantSuspendedError(slug)
        if tenant.status != "active":
            raise TenantNotFoundError(slug)
        state = request_state(scope)
        state.tenant = tenant
        principal = state.principal
        workspace = headers.get("x-workspace-id") or None
        ctx = tenant_context_of(tenant, user=principal, workspace_id=workspace, trace_id=state.trace_id)
        token = context.tenant_context.set(ctx)
        # The direct peer's address, for ABAC's ``environment.client_ip``; behind a proxy, run the
        # server with its forwarded-headers option so the peer is the real client.
        ip_token = client_ip.set(scope["client"][0] if scope.get("client") else None)
        try:
            await self.app(scope, receive, send)
        finally:
            client_ip.reset(ip_token)
            context.tenant_context.reset(token)

    def _resolve_slug(self, scope: Scope, headers: Headers) -> str | None:
        verified = request_state(scope).token
        from_token: str | None = verified.tenant_slug if verified is not None else None
        addressed = self._from_host(headers) or self._from_header(headers)
        if addressed is not None and from_token is not None and addressed != from_token:
            raise TenantNotFoundError(addressed)
        slug = from_token or addressed
        if slug is not None and not SLUG_RE.match(slug):
            raise TenantNotFoundError(slug)
        return slug

    def _from_host(self, headers: Headers) -> str | None:
        suffix = self.host_suffix
        host = headers.get("host", "").split(":", 1)[0].lower()
        if suffix and host.endswith("." + suffix.lstrip(".")):
            return host[: -len(suffix.lstrip(".")) - 1] or None
        return None

    def _from_header(self, headers: Headers) -> str | None:
        claimed = headers.get("x-tenant-id")
        if claimed is None:
            return None
        if self.gateway_key:
            slug, _user = verify_gateway_headers(headers, self.gateway_key, time.time())
            return slug
        if self.trust_unsigned_header:
            return claimed
        return None  # an unsigned header is ignored in production
