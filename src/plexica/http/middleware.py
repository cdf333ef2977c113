"""Pure ASGI middleware of the request path, outermost first:

trace id → problem+json errors → access log + metrics → authentication → tenant resolution.
(CORS, gateway signatures and the tenant strategies live in ``cors.py``, ``gateway.py`` and
``tenant_resolution.py``; ``docs/gateway.md`` draws the whole order.)

Each stage writes what it learned into the request's one typed :class:`~plexica.http.scope.RequestState`
(trace id, token, principal, tenant) and the tenant stage sets the tenant context var, always
resetting it afterwards.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plexica.auth import RealmPerTenantStrategy
from plexica.auth.tokens import parse_unverified
from plexica.http.problems import is_server_error, problem_for
from plexica.http.route_templates import RouteTemplates
from plexica.http.scope import attach_state, request_state, trace_id_of
from plexica.http.tenant_resolution import DEFAULT_RESOLVERS, TenantResolver, build_resolvers, resolve_tenant
from plexica.observability.logging import RequestLog, request_log
from plexica.observability.tracing import current_trace_id
from plexica.permissions.engine import client_ip
from plexica.tenancy.service import tenant_context_of
from plexica_sdk import context
from plexica_sdk.errors import (
    AuthenticationError,
    NotFoundError,
    PluginError,
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
        headers = Headers(scope=scope)
        incoming = headers.get(TRACE_HEADER, "")
        # With tracing on, the correlation id is the OpenTelemetry trace id: one id to search by.
        trace_id = current_trace_id() or (incoming if _TRACE_RE.fullmatch(incoming) else os.urandom(16).hex())
        state = attach_state(scope, trace_id)
        request_id = headers.get("x-request-id", "")
        if not _TRACE_RE.fullmatch(request_id):
            request_id = os.urandom(16).hex()
        # This request's own log context, a fresh value in its own task: no line can carry another's ids.
        log_token = request_log.set(RequestLog(request_id, state))

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-trace-id", trace_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        finally:
            request_log.reset(log_token)


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

        # PostgreSQL refuses NUL in text: a NUL in a path or query parameter never reaches the database.
        if "\x00" in scope.get("path", ""):
            return await problem_for(NotFoundError("not found"), trace_id=trace_id_of(scope))(scope, receive, send)
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            refusal = ValidationError("query parameters must not contain NUL (%00)", field="query")
            return await problem_for(refusal, trace_id=trace_id_of(scope))(scope, receive, send)
        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if is_server_error(exc):  # a host or plugin bug (see plexica.errors): the 500 says only the trace id
                plugin = exc.plugin if isinstance(exc, PluginError) else None
                error_logger.exception("unhandled error", extra={"path": scope.get("path"), "plugin": plugin})
            if started:
                raise
            await problem_for(exc, trace_id=trace_id_of(scope))(scope, receive, send)


class AccessLogMiddleware:
    """One JSON log line and the HTTP metrics per request: no query string, no headers, no body.

    The metrics' ``route`` is the mounted template (``routes``), never the raw path.
    """

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, routes: RouteTemplates | None = None, access_log: bool = True
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes if routes is not None else RouteTemplates(())
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500
        root_path = scope.get("root_path", "")

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
            route = self.routes.of(scope, root_path)
            self.metrics.observe_request(scope["method"], route, status, elapsed, tenant.id if tenant else "")
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
    """Resolves the tenant with the configured strategies (token, host name, signed header, path prefix).

    A token for another tenant than the one addressed gets 404, like an unknown or deleted tenant,
    so a foreign caller learns nothing; a suspended tenant gets 403.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        tenants: TenantLookup,
        resolvers: Sequence[TenantResolver] | None = None,
        host_suffix: str | None = None,
        trust_unsigned_header: bool = False,
    ) -> None:
        self.app = app
        self.tenants = tenants
        # The strategies in ``http.tenant_resolvers`` order; see plexica.http.tenant_resolution.
        self.resolvers = (
            tuple(resolvers)
            if resolvers is not None
            else build_resolvers(
                DEFAULT_RESOLVERS, host_suffix=host_suffix, trust_unsigned_header=trust_unsigned_header
            )
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        slug = resolve_tenant(self.resolvers, scope, headers, request_state(scope))
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
