"""Serving ``/metrics``: on the main port, on a port of its own, behind a bearer secret, or not at all.

The ``tenant_id`` label names tenants, so who may scrape is a disclosure decision
(``docs/metrics.md``): with ``metrics.token`` every scrape must send it; with ``metrics.port`` the
metrics leave the main port (the listener is meant for the cluster network only); in production
with neither, the main port does not serve them, and the host says so once at startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from typing import final

from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from plexica.http.problems import problem
from plexica.http.scope import trace_id_of
from plexica.observability.metrics import CONTENT_TYPE, Metrics
from plexica.settings import Settings

__all__ = ["MetricsExposition", "MetricsMiddleware", "metrics_middleware", "serve_metrics_port"]

log = logging.getLogger(__name__)

_MAX_REQUEST_HEAD = 16 * 1024


@final
class MetricsExposition:
    """Refreshes and renders the metrics for a scrape that presents the right bearer secret (if any)."""

    def __init__(self, metrics: Metrics, token: str | None, before_scrape: Callable[[], None] | None = None) -> None:
        self.metrics = metrics
        self.token = token
        self.before_scrape = before_scrape

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value may scrape."""
        if self.token is None:
            return True
        scheme, _, presented = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), self.token.encode())

    async def render(self) -> bytes:
        if self.before_scrape is not None:
            self.before_scrape()
        await self.metrics.refresh()
        return self.metrics.render()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI endpoint of ``GET /metrics`` on the main port; a refused scrape is a 401 problem."""
        if not self.allows(Headers(scope=scope).get("authorization")):
            refusal = problem(
                401,
                "Unauthorized",
                "metrics need the scrape token",
                kind="unauthorized",
                trace_id=trace_id_of(scope),
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
            await refusal(scope, receive, send)
            return
        body = await self.render()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE.encode()), (b"cache-control", b"no-store")],
            }
        )
        await send({"type": "http.response.body", "body": body})


@final
class MetricsMiddleware:
    """Answers ``GET /metrics`` before any other stage: the scrape token is not a user's token,
    and a scrape is no tenant's request (it is neither authenticated, nor logged, nor counted)."""

    def __init__(self, app: ASGIApp, *, exposition: MetricsExposition, path: str = "/metrics") -> None:
        self.app = app
        self.exposition = exposition
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path, root = scope["path"], scope.get("root_path", "")
            if (path[len(root) :] if root and path.startswith(root) else path) == self.path:
                return await self.exposition(scope, receive, send)
        await self.app(scope, receive, send)


def metrics_middleware(settings: Settings, exposition: MetricsExposition) -> list[Middleware]:
    """The main port's ``/metrics`` stage, or none (disabled, on its own port, or production without a token)."""
    m = settings.metrics
    if not m.enabled or m.port is not None:
        return []
    if settings.environment == "production" and m.token is None:
        log.warning(
            "metrics are not served on the main port: tenant ids are labels, so production needs "
            "metrics.token or metrics.port"
        )
        return []
    return [Middleware(MetricsMiddleware, exposition=exposition)]


@contextlib.asynccontextmanager
async def serve_metrics_port(settings: Settings, exposition: MetricsExposition) -> AsyncIterator[int | None]:
    """Serve ``GET /metrics`` on ``metrics.port`` while the context is open; yields the bound port (None: off).

    A small HTTP/1.1 listener (one request per connection, ``Connection: close``): a scraper needs
    no more, and it keeps a second web server out of the host's dependencies.
    """
    m = settings.metrics
    if not m.enabled or m.port is None:
        yield None
        return

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10.0):
                head = await reader.readuntil(b"\r\n\r\n")
                status, body, content_type = await _answer(head, exposition)
                reason = {200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}[status]
                extra = b'WWW-Authenticate: Bearer realm="metrics"\r\n' if status == 401 else b""
                writer.write(
                    f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n".encode()
                    + extra
                    + b"\r\n"
                    + body
                )
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, m.host, m.port, limit=_MAX_REQUEST_HEAD)
    port: int = server.sockets[0].getsockname()[1]
    log.info("metrics served on %s:%d/metrics", m.host, port)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


async def _answer(head: bytes, exposition: MetricsExposition) -> tuple[int, bytes, str]:
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    path = rest.partition(" ")[0].partition("?")[0]
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    text = "text/plain; charset=utf-8"
    if path != "/metrics":
        return 404, b"not found\n", text
    if method != "GET":
        return 405, b"method not allowed\n", text
    if not exposition.allows(headers.get("authorization")):
        return 401, b"metrics need the scrape token\n", text
    return 200, await exposition.render(), CONTENT_TYPE
