"""``create_app``: the Plexica host as a Starlette ASGI application.

The app can be served on its own (``plexica serve``, uvicorn, gunicorn) or mounted under a prefix
inside another Starlette or FastAPI app. Mounted apps don't run their own lifespan, so the outer
app must enter ours::

    plexica_app = create_app(settings)
    outer = FastAPI(lifespan=lambda _: plexica_app.router.lifespan_context(plexica_app))
    outer.mount("/platform", plexica_app)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

from plexica.http.cors import CorsMiddleware
from plexica.http.gateway import GatewayMiddleware
from plexica.http.metrics_endpoint import MetricsExposition, metrics_middleware, serve_metrics_port
from plexica.http.middleware import (
    AccessLogMiddleware,
    AuthenticationMiddleware,
    ErrorMiddleware,
    TenantMiddleware,
    TraceIdMiddleware,
)
from plexica.http.openapi import openapi_document
from plexica.http.plugin_mount import not_found, plugin_mounts
from plexica.http.problems import http_exception_handler
from plexica.http.ratelimit import RateLimitMiddleware
from plexica.http.route_templates import RouteTemplates
from plexica.http.routes import (
    dev,
    events,
    frontend,
    health,
    host_callbacks,
    me,
    objects,
    permissions,
    plugin_config,
    remote,
    teams,
    tenants,
    users,
    workspaces,
)
from plexica.http.services import CoreServices
from plexica.http.tenant_resolution import TenantResolver, build_resolvers
from plexica.http.user_middleware import UserMiddleware
from plexica.identity.probe import KeycloakProbe
from plexica.observability.health import HealthChecker, standard_probes
from plexica.observability.logging import capture_context
from plexica.observability.tracing import build_tracing, untraced
from plexica.platform import Platform
from plexica.plugins.frontend import FrontendCatalog
from plexica.ratelimit import RateLimitPolicy, create_rate_limiter
from plexica.remote import load_signer
from plexica.settings import Settings, check_production, load_settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, *, plugins: Iterable[object] = ()) -> Starlette:
    """Build the host: load plugins (failing fast on a bad one) and assemble routes and middleware.

    Nothing connects until the lifespan starts.

    Args:
        settings: host settings; default: :func:`load_settings` from the environment.
        plugins: plugin objects to load besides entry points and ``settings.plugins``.

    Raises:
        SettingsError: the settings are invalid.
        PluginLoadError: a plugin cannot be loaded.
    """
    settings = settings or load_settings()
    check_production(settings)  # settings built by hand skip load_settings' check
    capture_context()  # log records keep the ids of the request that logged them
    # Before the platform, so the engines it creates are instrumented; None (nothing imported) when off.
    tracing = build_tracing(settings.tracing)
    platform = Platform(settings, plugins=plugins, serving=True)
    exposition = MetricsExposition(platform.metrics, settings.metrics.token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The relay, consumers and hooks started here inherit this app's tracing (see tracing.active).
        with tracing.activate() if tracing is not None else untraced():
            async with platform, serve_metrics_port(settings, exposition) as metrics_port:
                app.state.metrics_port = metrics_port  # the bound port (``metrics.port = 0`` picks one)
                yield
        if tracing is not None:
            await asyncio.to_thread(tracing.close)  # exports the last spans, closes the exporter's session

    async def openapi(request: Request) -> JSONResponse:
        """The OpenAPI document of this host."""
        from plexica_sdk import __version__

        document = openapi_document(
            app.routes, title="Plexica", version=__version__, gateway=settings.auth.mode == "gateway"
        )
        return JSONResponse(document)

    signer = load_signer(settings)
    routes = [
        *health.routes,
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
        *remote.jwks_routes(signer),  # remote plugins verify context tokens with it
        # Remote plugins call back into the host here (docs/remote.md, "Calling back into the host").
        Mount(host_callbacks.CALLBACK_PREFIX, app=host_callbacks.callback_app(platform.callback_services(signer))),
        Mount(
            "/api/core/v1",
            app=Router(
                [
                    *tenants.routes,
                    *me.routes,
                    *users.routes,
                    *teams.routes,
                    *workspaces.routes,
                    *permissions.routes,
                    *events.routes,
                    *plugin_config.routes,
                    *frontend.routes,
                ],
                default=not_found,
            ),
        ),
        *plugin_mounts(platform),
        *(objects.routes if settings.storage.backend == "local" else []),
        *(dev.routes if platform.dev_issuer is not None else []),
    ]
    resolvers = build_resolvers(
        settings.http.tenant_resolvers,
        host_suffix=settings.http.tenant_host_suffix,
        trust_unsigned_header=settings.is_development and not settings.auth.gateway_key,
    )
    templates = RouteTemplates(routes)  # the route label of metrics and the name of server spans
    middleware = [
        *metrics_middleware(settings, exposition),  # a scrape is no tenant's request: answered first
        # Outermost: the server span (and the ``traceparent`` it continues) exists for every stage.
        *([Middleware(tracing.wrap, routes=templates)] if tracing is not None else []),
        Middleware(TraceIdMiddleware),
        # Outside the error stage, so the log and the metrics record the status the client got
        # (a refusal raised as an exception is its 4xx problem, not a 500).
        Middleware(
            AccessLogMiddleware,
            metrics=platform.metrics,
            routes=templates,
            access_log=settings.http.access_log,
        ),
        # Outside the error stage, so problems sent to an allowed origin carry the CORS headers;
        # before authentication, so a preflight is answered without credentials.
        *_cors_stage(settings, resolvers),
        Middleware(ErrorMiddleware),
        *_authentication_stages(settings, platform),
        Middleware(TenantMiddleware, tenants=platform.directory, resolvers=resolvers),
        *_rate_limit_stage(settings, platform),
        Middleware(
            UserMiddleware,
            super_admins=platform.super_admins,
            users=platform.users,
            workspaces=platform.workspaces,
            authorizer=platform,
        ),
    ]
    # Routing's 405 and a handler's HTTPException (413, 415) as problem+json, like every other error.
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_exception_handler},
    )
    app.router.default = not_found
    app.state.platform = platform  # for the CLI and tests; handlers get only the services below
    app.state.tracing = tracing  # tests add span processors to ``tracing.provider``
    app.state.services = core_services(platform)
    return app


def _cors_stage(settings: Settings, resolvers: Sequence[TenantResolver]) -> list[Middleware]:
    """CORS when any origin is configured; without one, no stage at all (nothing on the hot path)."""
    http = settings.http
    if not (http.cors_origins or any(http.cors_tenant_origins.values())):
        return []
    return [Middleware(CorsMiddleware, settings=http, resolvers=resolvers)]


def _authentication_stages(settings: Settings, platform: Platform) -> list[Middleware]:
    """Who calls: bearer tokens, or in gateway mode only gateway-signed headers (docs/gateway.md).

    In token mode a gateway key still lets a gateway sign ``X-Tenant-ID`` for the header resolver.
    """
    auth = settings.auth
    gateway: list[Middleware] = []
    if auth.gateway_key:  # always set in gateway mode: the settings refuse it without one
        gateway.append(
            Middleware(
                GatewayMiddleware,
                key=auth.gateway_key,
                cache=platform.cache,
                required=auth.mode == "gateway",
                max_skew_seconds=auth.gateway_max_skew_seconds,
                exempt_paths=auth.gateway_exempt_paths,
            )
        )
    if auth.mode == "gateway":
        return gateway
    tokens = Middleware(
        AuthenticationMiddleware,
        verifier=platform.verifier,
        tenants=platform.directory,
        check_tenants=auth.keycloak is not None,
    )
    return [*gateway, tokens]


def _rate_limit_stage(settings: Settings, platform: Platform) -> list[Middleware]:
    """The rate limiter, after tenant resolution (it limits per tenant and user), on the host's cache."""
    if not settings.rate_limit.enabled:
        return []
    rules = {plugin.name: plugin.manifest.rate_limits for plugin in platform.plugins.plugins.values()}
    return [
        Middleware(
            RateLimitMiddleware,
            policy=RateLimitPolicy(settings.rate_limit, rules),
            limiter=create_rate_limiter(platform.cache),
            metrics=platform.metrics,
            fail_mode=settings.rate_limit.fail_mode,
        )
    ]


def core_services(platform: Platform) -> CoreServices:
    """The services the core API's handlers may use, taken from the composition root."""
    return CoreServices(
        tenants=platform.tenants,
        users=platform.users,
        teams=platform.teams,
        super_admins=platform.super_admins,
        workspaces=platform.workspaces,
        plugin_config=platform.plugin_config,
        permission_service=platform.permission_service,
        permissions=platform.permissions,
        authorizer=platform,
        dead_letters=platform.bus,
        objects=platform.objects,
        upload_presigned=platform.upload_presigned,
        dev_issuer=platform.dev_issuer,
        metrics=platform.metrics,
        plugins=platform.plugins.infos,
        frontend=FrontendCatalog(
            plugins=lambda: platform.plugins.plugins,
            installs=platform.tenants,
            objects_for=platform.plugin_objects,
            authorize=platform.authorize,
        ),
        health=health_checker(platform),
    )


def health_checker(platform: Platform) -> HealthChecker:
    """``/health``'s probes: the database, each configured server (Redis, Kafka, S3, Keycloak), each remote plugin."""
    settings = platform.settings
    keycloak = settings.auth.keycloak
    public = settings.http.health_details_public
    limits = settings.rate_limit
    checker = HealthChecker(
        standard_probes(
            database=platform.db,
            cache=platform.cache,
            # Requests outlive a Redis outage unless a limiter that fails closed or gateway replay checks need it.
            cache_required=(limits.enabled and limits.fail_mode == "closed") or settings.auth.mode == "gateway",
            broker=platform.bus,
            objects=platform.objects,
            identity=KeycloakProbe(platform.http_client, keycloak) if keycloak is not None else None,
        ),
        timeout_seconds=settings.http.health_timeout_seconds,
        public_details=settings.is_development if public is None else public,
        token=settings.http.health_token,
    )
    for probe in platform.remote.probes():  # optional: a plugin down degrades the host, with its breaker shown
        checker.add(probe)
    return checker
