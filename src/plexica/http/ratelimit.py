"""The rate limit stage of the request path (pure ASGI), after tenant resolution, before the route.

It needs the tenant and the caller, so it runs after authentication and tenant resolution, and
before user admission, so that a refused request costs no more work. Every limited response
carries the ``RateLimit-Policy`` and ``RateLimit`` fields (draft-ietf-httpapi-ratelimit-headers);
a refused one is a 429 problem with ``Retry-After``. While the backend does not answer, the
request is admitted (``fail_mode = "open"``) or refused with 503 (``"closed"``), logged and counted.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Literal, final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plexica.http.problems import is_server_error, problem_for
from plexica.http.scope import request_state
from plexica.ratelimit.policy import limit_header, policy_header
from plexica_sdk.errors import BackendUnavailableError, PlexicaError, RateLimitedError

if TYPE_CHECKING:
    from plexica.observability.metrics import Metrics
    from plexica.ratelimit.base import RateLimiter
    from plexica.ratelimit.policy import RateLimitPolicy

__all__ = ["RateLimitMiddleware"]

logger = logging.getLogger(__name__)

#: While the backend is down, one warning per this many seconds (the counter counts every failure).
_LOG_EVERY_SECONDS = 10.0


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


@final
class RateLimitMiddleware:
    """Counts each request against its partitions; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policy: RateLimitPolicy,
        limiter: RateLimiter,
        metrics: Metrics,
        fail_mode: Literal["open", "closed"] = "open",
    ) -> None:
        self.app = app
        self.policy = policy
        self.limiter = limiter
        self.metrics = metrics
        self.fail_mode = fail_mode
        self._logged_at = -math.inf
        decisions = metrics.rate_limit_decisions
        self._allowed, self._limited = decisions.labels("allowed"), decisions.labels("limited")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = self.policy.route(scope["method"], _route_path(scope))
        if route is None:
            return await self.app(scope, receive, send)
        state = request_state(scope)
        client = scope.get("client")
        quotas = self.policy.quotas(
            route, tenant=state.tenant, principal=state.principal, client=client[0] if client else None
        )
        if not quotas:
            return await self.app(scope, receive, send)
        try:
            verdict = await self.limiter.acquire(quotas)
        except BackendUnavailableError as exc:
            self._backend_failed(exc)
            if self.fail_mode == "closed":
                self.metrics.rate_limit_decisions.labels("error_closed").inc()
                raise BackendUnavailableError(exc.backend) from exc
            self.metrics.rate_limit_decisions.labels("error_open").inc()
            return await self.app(scope, receive, send)
        fields = [
            (b"ratelimit-policy", policy_header(verdict.states).encode()),
            (b"ratelimit", limit_header(verdict.states).encode()),
        ]
        if not verdict.allowed:
            self._limited.inc()
            refusal = RateLimitedError(verdict.retry_after, policy=verdict.refused_by)
            response = problem_for(refusal, trace_id=state.trace_id)
            response.raw_headers.extend(fields)
            return await response(scope, receive, send)
        self._allowed.inc()
        started = False

        async def send_with_fields(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *fields]
            await send(message)

        try:
            await self.app(scope, receive, send_with_fields)
        except (PlexicaError, HTTPException) as exc:
            # A refusal further in (401, 403, 404...) is answered here, so it carries the fields too;
            # anything unexpected (a 500 of the error table too) goes on to the error stage, which logs it.
            if started or is_server_error(exc):
                raise
            await problem_for(exc, trace_id=state.trace_id)(scope, receive, send_with_fields)

    def _backend_failed(self, exc: BackendUnavailableError) -> None:
        self.metrics.rate_limit_backend_errors.labels(self.limiter.name).inc()
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_SECONDS:
            self._logged_at = now
            # The exception's class only: a driver's message may carry a URL, and URLs may hold a password.
            logger.warning(
                "rate limiter backend unavailable, failing %s",
                self.fail_mode,
                extra={"backend": exc.backend, "error": type(exc.__cause__ or exc).__name__},
            )
