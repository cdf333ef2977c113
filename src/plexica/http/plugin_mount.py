"""Mounting plugin routes under ``/api/plugins/{name}/``.

Plugin routes need an authenticated caller in a resolved tenant where the plugin is installed
and enabled; a tenant without the plugin gets 404, as if the route did not exist. Request bodies
are capped (``[http] max_body_bytes``, or the manifest's ``max_body_bytes``) while they stream. The handler
finds its :class:`~plexica_sdk.protocols.Host` in the scope (``plexica_sdk.host(request)``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, final

from starlette.datastructures import Headers
from starlette.routing import BaseRoute, Mount, Router
from starlette.types import Message, Receive, Scope, Send

from plexica.http.problems import problem
from plexica.http.scope import request_state, trace_id_of
from plexica.observability.logging import plugin_scope
from plexica_sdk import context
from plexica_sdk.errors import AuthenticationError, NotFoundError, PayloadTooLargeError, PluginLoadError
from plexica_sdk.http import DEFAULT_MAX_BODY_BYTES, HOST_SCOPE_KEY, MAX_BODY_SCOPE_KEY

if TYPE_CHECKING:
    from plexica.platform import Platform
    from plexica_sdk.protocols import Host
    from plexica_sdk.types import TenantContext

__all__ = ["PluginApp", "plugin_mounts"]


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """The 404 of unmatched paths, as problem+json."""
    await problem(404, "Not Found", "the resource does not exist", kind="not-found", trace_id=trace_id_of(scope))(
        scope, receive, send
    )


@final
class PluginApp:
    """Guards one plugin's router and hands its handlers the plugin's host handle."""

    def __init__(
        self,
        plugin: str,
        routes: Sequence[BaseRoute],
        *,
        is_active: Callable[[str, str], Awaitable[bool]],
        host_for: Callable[[str, TenantContext], Host],
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.is_active = is_active
        self.host_for = host_for
        self.plugin = plugin
        self.max_body_bytes = max_body_bytes
        self.router = Router(routes=list(routes), default=not_found)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.router(scope, receive, send)
        if request_state(scope).principal is None:
            raise AuthenticationError("a bearer token is required")
        ctx = context.get()
        if ctx is None or not await self.is_active(self.plugin, ctx.slug):
            raise NotFoundError("not found")
        scope[HOST_SCOPE_KEY] = self.host_for(self.plugin, ctx)
        scope[MAX_BODY_SCOPE_KEY] = limit = self.max_body_bytes
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLargeError(limit)  # refused before the plugin reads a byte
        received = 0

        async def limited_receive() -> Message:
            # Counted as it streams, so a body without Content-Length is cut off at the limit too.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLargeError(limit)
            return message

        with plugin_scope(self.plugin):  # the handler's log lines name the plugin
            await self.router(scope, limited_receive, send)


def plugin_mounts(platform: Platform) -> list[Mount]:
    """One mount per plugin that contributes routes.

    Raises:
        PluginLoadError: a plugin's ``plexica_routes`` raised or returned something that is not a route.
    """
    mounts = []
    for name, routes in platform.plugins.collect("plexica_routes").items():
        if not routes:
            continue
        routes = list(routes)
        for route in routes:
            if not isinstance(route, BaseRoute):
                raise PluginLoadError(name, f"plexica_routes() returned {type(route).__name__}, not a Starlette route")
        loaded = platform.plugins.get(name)
        limit = loaded.manifest.max_body_bytes if loaded is not None else None
        app: Any = PluginApp(
            name,
            routes,
            is_active=platform.is_active,
            host_for=platform.host_for,
            max_body_bytes=limit or platform.settings.http.max_body_bytes,
        )
        mounts.append(Mount(f"/api/plugins/{name}", app=app))
    return mounts
