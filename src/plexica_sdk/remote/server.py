"""The remote plugin process: one plugin object, served unchanged over wire protocol v1.

``create_app(plugin, host_url=...)`` is an ASGI app (Starlette, the ``plexica-sdk[remote]`` extra)
serving ``/.plexica/manifest``, ``/.plexica/health``, ``/.plexica/contributions``,
``/.plexica/migrations``, ``POST /.plexica/rpc``, ``POST /.plexica/events``, ``POST
/.plexica/events/batch`` and the plugin's own routes. Every call but the first four (the plugin's
code-level declarations, which the host reads before it serves the keys that verify tokens) must
carry a context token the host signed for this plugin: the server verifies it before it reads a
body byte, and runs the call inside the tenant context the token names. It imports nothing of the
host (``plexica``): a plugin container needs only ``plexica_sdk`` and its own dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
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
    BOOT_HEADER,
    CONTEXT_HEADER,
    CONTRIBUTION_KEYS,
    CONTRIBUTIONS_PATH,
    EVENT_BATCH_PATH,
    EVENTS_PATH,
    HEALTH_PATH,
    JWKS_PATH,
    MANIFEST_PATH,
    MAX_EVENT_BATCH,
    MAX_EVENT_BATCH_BYTES,
    MIGRATIONS_PATH,
    PROBLEM_JSON,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    RPC_HOOKS,
    RPC_PATH,
    bundle_digest,
    encode_problem,
    hook_argument_types,
)
from plexica_sdk.types import PLUGIN_NAME_RE, Event, PluginManifest, Subscription

__all__ = ["CONTEXT_SCOPE_KEY", "create_app", "route_templates"]

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


#: A migrations bundle holds at most this many files and bytes: Alembic scripts, not data.
_MAX_BUNDLE_FILES: Final = 1000
_MAX_BUNDLE_BYTES: Final = 4 * 1024 * 1024
_PLUGINS_LIST_MAX: Final = 1000
_SEPARATORS: Final = re.compile(r"[,\s]+")


def _migration_files(plugin: object, name: str) -> dict[str, str] | None:
    """The plugin's Alembic scripts (relative path → text), read once when the app is built."""
    if not _implements(plugin, "plexica_tenant_migrations"):
        return None
    location = plugin.plexica_tenant_migrations()  # type: ignore[attr-defined]
    if location is None:
        return None
    root = Path(location)
    if not (root / "versions").is_dir():
        raise PluginLoadError(name, f"plexica_tenant_migrations() returned {location!r}, which has no versions/ folder")
    files: dict[str, str] = {}
    total = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        text = path.read_text(encoding="utf-8")
        total += len(text.encode())
        files[path.relative_to(root).as_posix()] = text
        if len(files) > _MAX_BUNDLE_FILES or total > _MAX_BUNDLE_BYTES:
            raise PluginLoadError(name, f"the migrations in {location!r} exceed {_MAX_BUNDLE_FILES} files or 4 MiB")
    return files


def _plugin_names(raw: str | None) -> tuple[str, ...]:
    """The host's plugin names from ``?plugins=a,b`` (for ``plexica_subscriptions(plugins)``)."""
    names = tuple(name for name in _SEPARATORS.split(raw or "") if name)
    if len(names) > _PLUGINS_LIST_MAX or not all(PLUGIN_NAME_RE.match(name) for name in names):
        raise ValidationError("'plugins' must list plugin names separated by commas", field="plugins")
    return names


def _token_of(headers: Mapping[str, str]) -> str:
    token = headers.get(CONTEXT_HEADER.lower())
    if token is None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" else None
    if not token:
        raise AuthenticationError("no context token: only the Plexica host may call this plugin")
    return token


def route_templates(routes: Sequence[BaseRoute], prefix: str = "") -> list[dict[str, Any]]:
    """The path templates of the plugin's HTTP routes, mounts flattened, in routing order.

    The host matches a request against them for its metrics' ``route`` label, as it does for an
    embedded plugin's routes. A mount without routes of its own (an ASGI app) has no template.
    """
    found: list[dict[str, Any]] = []
    for route in routes:
        if isinstance(route, Route):
            methods = sorted(route.methods) if route.methods else None
            found.append({"path": prefix + route.path, "methods": methods})
        elif isinstance(route, Mount):
            found.extend(route_templates(route.routes, prefix + route.path))
    return found


class _Problems:
    """Outermost stage: every error leaves as wire protocol problem+json; every answer says its
    protocol, and the boot id of this process."""

    def __init__(self, app: ASGIApp, *, plugin: str, boot_id: str) -> None:
        self.app = app
        self.plugin = plugin
        self.headers = [(PROTOCOL_HEADER.lower().encode(), b"1"), (BOOT_HEADER.lower().encode(), boot_id.encode())]

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
                message["headers"] = [*message["headers"], *self.headers]
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
    #: New at every start of the app: the host announces itself again to a process it has not seen.
    boot_id = secrets.token_hex(16)
    hooks = sorted(hook for hook in RPC_HOOKS if _implements(plugin, hook))
    routes_of = getattr(plugin, "plexica_routes", None)
    plugin_routes = list(routes_of()) if _implements(plugin, "plexica_routes") and routes_of is not None else []
    templates = route_templates(plugin_routes)
    migrations = _migration_files(plugin, name)
    migrations_body = None if migrations is None else {"sha256": bundle_digest(migrations), "files": migrations}
    subscribes_with_plugins = (
        _implements(plugin, "plexica_subscriptions")
        and "plugins"
        in inspect.signature(
            plugin.plexica_subscriptions  # type: ignore[attr-defined]
        ).parameters
    )
    #: Each implemented hook's parameter names, read once.
    signatures: dict[str, tuple[str, ...]] = {}
    #: Every subscription seen so far, by name: ``POST /.plexica/events`` runs their handlers.
    subscriptions: dict[str, Subscription] = {}

    def contributions_for(plugins: Sequence[str]) -> dict[str, Any]:
        """Each start-up contribution hook's result, as the host's ``PluginManager`` would collect it."""
        body: dict[str, Any] = {
            "protocol": PROTOCOL_VERSION,
            "plugin": name,
            "version": manifest.version,
            "hooks": hooks,
            "routes": bool(plugin_routes),
            "route_templates": templates,
            "subscriptions_use_plugins": subscribes_with_plugins,
            "event_batches": True,
            "migrations": None if migrations_body is None else {"sha256": migrations_body["sha256"]},
        }
        for hook, key in CONTRIBUTION_KEYS.items():
            if not _implements(plugin, hook):
                continue
            implementation = getattr(plugin, hook)
            with_plugins = hook == "plexica_subscriptions" and subscribes_with_plugins
            value = list(implementation(plugins=list(plugins)) if with_plugins else implementation() or ())
            if hook == "plexica_subscriptions":
                for subscription in value:
                    if isinstance(subscription, Subscription):
                        subscriptions.setdefault(subscription.name, subscription)
            body[key] = converter.unstructure(value)
        return body

    if _implements(plugin, "plexica_subscriptions"):
        contributions_for(())  # the handlers of a host that never asked (a restart of this process)

    async def manifest_endpoint(request: Request) -> Response:
        """The manifest, for the host to validate and record on registration."""
        return JSONResponse(manifest_body)

    async def health(request: Request) -> Response:
        """Liveness for the host's probes: the plugin, its version, the protocol, the hooks it serves, its boot id."""
        return JSONResponse(
            {
                "status": "ok",
                "plugin": name,
                "version": manifest.version,
                "protocol": PROTOCOL_VERSION,
                "hooks": hooks,
                "boot_id": boot_id,
            }
        )

    async def verified_call(request: Request, key: str, shape: str) -> tuple[RemoteContext, dict[str, Any]]:
        """The verified token (before a body byte is read), then the JSON body naming ``key``."""
        assert verifier is not None
        remote = await verifier.verify(_token_of(request.headers))
        body = await json_body(request, max_bytes=max_body_bytes)
        if not isinstance(body, dict) or not isinstance(body.get(key), str):
            raise ValidationError(shape, field=key)
        return remote, body

    async def contributions(request: Request) -> Response:
        """The start-up contributions; ``?plugins=a,b`` names the host's plugins for ``plexica_subscriptions``."""
        return JSONResponse(contributions_for(_plugin_names(request.query_params.get("plugins"))))

    async def migrations_endpoint(request: Request) -> Response:
        """The Alembic scripts of the plugin's tenant tables and their digest (404: it has none)."""
        if migrations_body is None:
            raise NotFoundError(f"plugin {name!r} has no tenant migrations", resource="migrations")
        return JSONResponse(migrations_body)

    def subscription_for(subscription_name: str, plugins: object) -> Subscription:
        """The named subscription; asks ``plexica_subscriptions`` again with the host's ``plugins`` if unseen."""
        subscription = subscriptions.get(subscription_name)
        if subscription is None and isinstance(plugins, list):
            contributions_for(_plugin_names(",".join(str(item) for item in plugins)))
            subscription = subscriptions.get(subscription_name)
        if subscription is None:
            raise NotFoundError(
                f"plugin {name!r} has no subscription {subscription_name[:80]!r}", resource="subscription"
            )
        return subscription

    def checked_event(remote: RemoteContext, raw: object) -> Event:
        event = structure(raw, Event)
        if event.tenantid != (remote.tenant.tenant_id if remote.tenant is not None else None):
            raise AuthenticationError("the event's tenant is not the tenant the context token names")
        return event

    async def run_handler(remote: RemoteContext, subscription: Subscription, event: Event) -> None:
        """Run one handler in the token's tenant context, with a host handle of that context."""
        if host_factory is None:
            raise PluginCallError(
                name, f"subscription {subscription.name}", "it needs host callbacks and this server has none"
            )
        host = host_factory(remote)
        with context.use(remote.tenant) if remote.tenant is not None else contextlib.nullcontext():
            result = subscription.handler(event, host)
            if inspect.isawaitable(result):
                await result

    async def events(request: Request) -> Response:
        """One event for one subscription: its handler runs in the event's tenant context (204 when it returned)."""
        remote, body = await verified_call(request, "subscription", "send {'subscription': name, 'event': {...}}")
        event = checked_event(remote, body.get("event"))
        subscription = subscription_for(body["subscription"], body.get("plugins"))
        request.scope["plexica.hook"] = f"subscription {subscription.name}"
        await run_handler(remote, subscription, event)
        return Response(status_code=204)

    async def event_batch(request: Request) -> Response:
        """Several events of the token's tenant, their handlers run concurrently; one result each, in order.

        A result is ``null`` when the handler returned, else the problem a single delivery would
        have answered. What is wrong with the batch itself (the token, its shape, an event of
        another tenant, an unknown subscription) refuses it whole, before any handler runs.
        """
        assert verifier is not None
        remote = await verifier.verify(_token_of(request.headers))
        body = await json_body(request, max_bytes=max(max_body_bytes, MAX_EVENT_BATCH_BYTES))
        shape = "send {'deliveries': [{'subscription': name, 'event': {...}, 'trace_id': ...}, ...]}"
        items = body.get("deliveries") if isinstance(body, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_EVENT_BATCH:
            raise ValidationError(f"{shape}, 1 to {MAX_EVENT_BATCH} of them", field="deliveries")
        runs: list[tuple[RemoteContext, Subscription, Event]] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("subscription"), str):
                raise ValidationError(shape, field=f"deliveries[{index}].subscription")
            trace_id = item.get("trace_id")
            if trace_id is not None and not isinstance(trace_id, str):
                raise ValidationError("'trace_id' must be a string", field=f"deliveries[{index}].trace_id")
            own = remote
            if trace_id is not None and remote.tenant is not None:  # the trace of the event's own delivery
                own = attrs.evolve(remote, tenant=attrs.evolve(remote.tenant, trace_id=trace_id[:64]))
            subscription = subscription_for(item["subscription"], body.get("plugins"))
            runs.append((own, subscription, checked_event(own, item.get("event"))))

        async def outcome(own: RemoteContext, subscription: Subscription, event: Event) -> dict[str, Any] | None:
            try:
                await run_handler(own, subscription, event)
            except Exception as exc:  # one handler's failure is its own result, not the batch's
                if not isinstance(exc, PlexicaError):
                    logger.exception("plugin %s failed on subscription %s", name, subscription.name)
                return encode_problem(exc, plugin=name, hook=f"subscription {subscription.name}")[1]
            return None

        results = await asyncio.gather(*(outcome(*run) for run in runs))
        return JSONResponse({"results": results, "protocol": PROTOCOL_VERSION})

    async def rpc(request: Request) -> Response:
        """One hook call: verify the token, then structure the arguments by the hook's spec."""
        remote, body = await verified_call(request, "hook", "send {'hook': name, 'args': {...}}")
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
        parameters = signatures.get(hook)
        if parameters is None:
            parameters = signatures[hook] = tuple(inspect.signature(implementation).parameters)
        kwargs: dict[str, Any] = {}
        for argument in parameters:
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
        Route(CONTRIBUTIONS_PATH, contributions, methods=["GET"]),
        Route(MIGRATIONS_PATH, migrations_endpoint, methods=["GET"]),
        Route(RPC_PATH, rpc, methods=["POST"]),
        Route(EVENTS_PATH, events, methods=["POST"]),
        Route(EVENT_BATCH_PATH, event_batch, methods=["POST"]),
    ]
    if plugin_routes:
        native = _VerifiedRoutes(
            Router(plugin_routes), verifier=verifier, host_factory=host_factory, max_body_bytes=max_body_bytes
        )
        routes.append(Mount("", app=native))
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.add_middleware(_Problems, plugin=name, boot_id=boot_id)
    app.state.verifier = verifier
    app.state.manifest = manifest
    app.state.boot_id = boot_id
    return app
