"""CORS for browser front ends, from ``[http] cors_*`` settings, answered before authentication.

Starlette's :class:`~starlette.middleware.cors.CORSMiddleware` does the protocol; this stage only
chooses which origins apply: ``http.cors_origins`` for every request, plus
``http.cors_tenant_origins[slug]`` when the request addresses that tenant by host name or path
prefix (a preflight carries no credentials, so those are the only tenant hints it can have). A
request from an origin that is not allowed passes through untouched: it gets no CORS headers at
all (only ``Vary: Origin``), so the browser refuses it, and a preflight from it reaches the normal
stack (and its 401 or 405 problem) rather than a CORS answer.

It sits outside the error stage, so a 401 or 429 problem sent to an allowed origin carries the
CORS headers too and the front end can read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware

from plexica.http.scope import request_state
from plexica.http.tenant_resolution import HostResolver, PathPrefixResolver

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from plexica.http.tenant_resolution import TenantResolver
    from plexica.settings import HttpSettings

__all__ = ["CorsMiddleware"]


class CorsMiddleware:
    """Per-request choice of allowed origins in front of Starlette's CORS; see the module docstring.

    Args:
        app: the next stage.
        settings: the ``[http]`` settings (``cors_*``).
        resolvers: the host's tenant resolvers; only the host-name and path-prefix ones are used.
    """

    def __init__(self, app: ASGIApp, *, settings: HttpSettings, resolvers: Sequence[TenantResolver] = ()) -> None:
        self.app = app
        self._origins = frozenset(settings.cors_origins)
        self._tenant_origins: Mapping[str, frozenset[str]] = {
            slug: self._origins | set(origins) for slug, origins in settings.cors_tenant_origins.items()
        }
        self._resolvers = tuple(r for r in resolvers if isinstance(r, HostResolver | PathPrefixResolver))

        def cors(origins: frozenset[str]) -> CORSMiddleware:
            return CORSMiddleware(
                app,
                allow_origins=sorted(origins),
                allow_methods=settings.cors_methods,
                allow_headers=settings.cors_headers,
                allow_credentials=settings.cors_credentials,
                expose_headers=settings.cors_expose_headers,
                max_age=settings.cors_max_age,
            )

        self._default = cors(self._origins)
        self._per_tenant = {slug: cors(origins) for slug, origins in self._tenant_origins.items()}

    @property
    def enabled(self) -> bool:
        """Whether any origin is allowed anywhere."""
        return bool(self._origins or any(self._tenant_origins.values()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or not self.enabled:
            return await self.app(scope, receive, send)
        origins, cors = self._origins, self._default
        if self._per_tenant:
            slug = self._addressed_tenant(scope, headers)
            if slug in self._per_tenant:
                origins, cors = self._tenant_origins[slug], self._per_tenant[slug]
        if "*" in origins or origin in origins:
            return await cors(scope, receive, send)

        async def send_vary(message: Message) -> None:
            # The answer depends on the Origin even when it has no CORS headers: shared caches must know.
            if message["type"] == "http.response.start":
                vary = MutableHeaders(scope=message)
                vary["Vary"] = ", ".join([*vary.getlist("Vary"), "Origin"])
            await send(message)

        await self.app(scope, receive, send_vary)

    def _addressed_tenant(self, scope: Scope, headers: Headers) -> str | None:
        state = request_state(scope)
        for resolver in self._resolvers:
            slug = resolver.resolve(scope, headers, state)
            if slug is not None:
                return slug
        return None
