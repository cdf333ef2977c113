"""The remote plugin process: one plugin object, served unchanged over wire protocol v1.

``create_app(plugin, host_url=...)`` is an ASGI app (Starlette, the ``plexica[remote]`` extra)
serving ``/.plexica/manifest``, ``/.plexica/health``, ``POST /.plexica/rpc`` and the plugin's own
routes. Every call but manifest and health must carry a context token the host signed for this
plugin: the server verifies it before it reads a body byte, and runs the call inside the tenant
context the token names. It imports nothing of the host (``plexica``): a plugin container needs
only ``plexica_sdk`` and its own dependencies.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plexica_sdk import context
from plexica_sdk.converter import converter, structure
from plexica_sdk.errors import (
    AuthenticationError,
    NotFoundError,
    PlexicaError,
    PluginCallError,
    PluginLoadError,
    ValidationError,
)
from plexica_sdk.http import DEFAULT_MAX_BODY_BYTES, HOST_SCOPE_KEY, MAX_BODY_SCOPE_KEY, json_body
from plexica_sdk.protocols import Host
from plexica_sdk.remote.claims import RemoteContext
from plexica_sdk.remote.verify import ContextVerifier
from plexica_sdk.remote.wire import (
    CONTEXT_HEADER,
    HEALTH_PATH,
    JWKS_PATH,
    MANIFEST_PATH,
    PROBLEM_JSON,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    RPC_HOOKS,
    RPC_PATH,
    encode_problem,
    hook_argument_types,
)
from plexica_sdk.types import PluginManifest

__all__ = ["CONTEXT_SCOPE_KEY", "create_app"]

logger = logging.getLogger(__name__)

#: Where the server puts the verified :class:`RemoteContext` in the ASGI scope of a plugin route.
CONTEXT_SCOPE_KEY = "plexica.remote_context"

HostFactory = Callable[[RemoteContext], Host]


def _implements(plugin: object, hook: str) -> bool:
    return getattr(getattr(plugin, hook, None), "plexica_impl", None) is not None


def _manifest_of(plugin: object) -> PluginManifest:
    if not _implements(plugin, "plexica_manifest"):
        raise PluginLoadError(type(plugin).__name__, "it implements no plexica_manifest hook")
    manifest = plugin.plexica_manifest()  # type: ignore[attr-defined]
    if not isinstance(manifest, PluginManifest):
        raise PluginLoadError(type(plugin).__name__, "plexica_manifest did not return a PluginManifest")
    return manifest


def _token_of(headers: Mapping[str, str]) -> str:
    token = headers.get(CONTEXT_HEADER.lower())
    if token is None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else None
    if not token:
        raise AuthenticationError("no context token: only the Plexica host may call this plugin")
    return token


class _Problems:
    """Outermost stage: every error leaves as wire protocol problem+json, every answer says its protocol."""

    def __init__(self, app: ASGIApp, *, plugin: str) -> None:
        self.app = app
        self.plugin = plugin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_protocol(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (PROTOCOL_HEADER.lower().encode(), b"1")]
            await send(message)

        try:
            await self.app(scope, receive, send_with_protocol)
        except Exception as exc:
            if started:
                raise
            if not isinstance(exc, PlexicaError):
                logger.exception("plugin %s failed on %s", self.plugin, scope.get("path"))
            hook = scope.get("plexica.hook")
            status, body = encode_problem(exc, plugin=self.plugin, hook=hook if isinstance(hook, str) else None)
            response = JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)
            await response(scope, receive, send_with_protocol)


class _VerifiedRoutes:
    """The plugin's own routes, reachable only with a context token naming a tenant."""

    def __init__(
        self, app: ASGIApp, *, verifier: ContextVerifier, host_factory: HostFactory | None, max_body_bytes: int
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.host_factory = host_factory
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        remote = await self.verifier.verify(_token_of(headers))
        if remote.tenant is None:
            raise AuthenticationError("a plugin route needs a context token that names a tenant")
        scope[CONTEXT_SCOPE_KEY] = remote
        scope.setdefault(MAX_BODY_SCOPE_KEY, self.max_body_bytes)
        if self.host_factory is not None:
            scope[HOST_SCOPE_KEY] = self.host_factory(remote)
        with context.use(remote.tenant):
            await self.app(scope, receive, send)


def create_app(
    plugin: object,
    *,
    host_url: str | None = None,
    verifier: ContextVerifier | None = None,
    host_factory: HostFactory | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """Serve ``plugin`` as a remote plugin (wire protocol v1).

    Args:
        plugin: the plugin object, exactly as it would be loaded embedded.
        host_url: the host's base URL; its JWKS at ``{host_url}/.well-known/plexica/jwks.json``
            verifies the context tokens. Give it or ``verifier``.
        verifier: a ready verifier (its audience must be the plugin's name).
        host_factory: builds the plugin's :class:`Host` handle for a verified call; None: hooks
            and routes that need ``host`` fail with :class:`PluginCallError`.
        max_body_bytes: the largest RPC or route body read (413 past it).

    Raises:
        PluginLoadError: the plugin has no manifest, or ``verifier`` is for another plugin.
        ValueError: neither ``host_url`` nor ``verifier`` is given.
    """
    manifest = _manifest_of(plugin)
    name = manifest.name
    if verifier is None:
        if host_url is None:
            raise ValueError("create_app needs host_url (or a verifier) to verify the host's context tokens")
        verifier = ContextVerifier(name, host_url.rstrip("/") + JWKS_PATH)
    elif verifier.audience != name:
        raise PluginLoadError(name, f"the verifier checks tokens for {verifier.audience!r}, not for this plugin")
    manifest_body = converter.unstructure(manifest)
    hooks = sorted(hook for hook in RPC_HOOKS if _implements(plugin, hook))
    routes_of = getattr(plugin, "plexica_routes", None)
    plugin_routes = list(routes_of()) if _implements(plugin, "plexica_routes") and routes_of is not None else []

    async def manifest_endpoint(request: Request) -> Response:
        """The manifest, for the host to validate and record on registration."""
        return JSONResponse(manifest_body)

    async def health(request: Request) -> Response:
        """Liveness for the host's probes: the plugin, its version, the protocol and the hooks it serves."""
        return JSONResponse(
            {"status": "ok", "plugin": name, "version": manifest.version, "protocol": PROTOCOL_VERSION, "hooks": hooks}
        )

    async def rpc(request: Request) -> Response:
        """One hook call: verify the token, then structure the arguments by the hook's spec."""
        assert verifier is not None
        remote = await verifier.verify(_token_of(request.headers))
        body = await json_body(request, max_bytes=max_body_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("hook"), str):
            raise ValidationError("send {'hook': name, 'args': {...}}", field="hook")
        hook: str = body["hook"]
        request.scope["plexica.hook"] = hook
        raw_args = body.get("args", {})
        if not isinstance(raw_args, dict):
            raise ValidationError("'args' must be an object", field="args")
        types = hook_argument_types(hook)  # NotFoundError for a hook no plugin may serve remotely
        if not _implements(plugin, hook):
            raise NotFoundError(f"plugin {name!r} does not implement {hook}", resource="hook")
        unknown = sorted(set(raw_args) - set(types))
        if unknown:
            raise ValidationError(f"{hook} takes no argument {unknown[0]!r}", field=f"args.{unknown[0]}")
        # Every argument sent is checked, also those this implementation does not take.
        given = {argument: structure(value, types[argument]) for argument, value in raw_args.items()}
        implementation = getattr(plugin, hook)
        kwargs: dict[str, Any] = {}
        for argument in inspect.signature(implementation).parameters:
            if argument == "tenant":
                kwargs["tenant"] = remote.tenant_context()
            elif argument == "host":
                if host_factory is None:
                    raise PluginCallError(name, hook, "it needs host callbacks and this server has none")
                kwargs["host"] = host_factory(remote)
            elif argument in given:
                kwargs[argument] = given[argument]
            elif argument in types:
                raise ValidationError(f"{hook} needs argument {argument!r}", field=f"args.{argument}")
        with context.use(remote.tenant) if remote.tenant is not None else contextlib.nullcontext():
            result = implementation(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        return JSONResponse({"result": converter.unstructure(result)})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            raise NotFoundError("the resource does not exist")
        body = {"type": "about:blank", "title": str(exc.detail), "status": exc.status_code, "protocol": 1}
        return JSONResponse(body, status_code=exc.status_code, media_type=PROBLEM_JSON, headers=exc.headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            assert verifier is not None
            await verifier.aclose()

    routes: list[Any] = [
        Route(MANIFEST_PATH, manifest_endpoint, methods=["GET"]),
        Route(HEALTH_PATH, health, methods=["GET"]),
        Route(RPC_PATH, rpc, methods=["POST"]),
    ]
    if plugin_routes:
        native = _VerifiedRoutes(
            Router(plugin_routes), verifier=verifier, host_factory=host_factory, max_body_bytes=max_body_bytes
        )
        routes.append(Mount("", app=native))
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.add_middleware(_Problems, plugin=name)
    app.state.verifier = verifier
    app.state.manifest = manifest
    return app
