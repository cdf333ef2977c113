"""``create_app``: the Plexica host as a Starlette ASGI application.

The app can be served on its own (``plexica serve``, uvicorn, gunicorn) or mounted under a prefix
inside another Starlette or FastAPI app. Mounted apps don't run their own lifespan, so the outer
app must enter ours::

    plexica_app = create_app(settings)
    outer = FastAPI(lifespan=lambda _: plexica_app.router.lifespan_context(plexica_app))
    outer.mount("/platform", plexica_app)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, Router

from plexica.http.middleware import (
    AccessLogMiddleware,
    AuthenticationMiddleware,
    ErrorMiddleware,
    TenantMiddleware,
    TraceIdMiddleware,
)
from plexica.http.openapi import openapi_document
from plexica.http.plugin_mount import not_found, plugin_mounts
from plexica.http.routes import (
    dev,
    events,
    health,
    me,
    objects,
    permissions,
    plugin_config,
    teams,
    tenants,
    users,
    workspaces,
)
from plexica.http.services import CoreServices
from plexica.http.user_middleware import UserMiddleware
from plexica.platform import Platform
from plexica.settings import Settings, load_settings

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
    platform = Platform(settings, plugins=plugins, serving=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with platform:
            yield

    async def openapi(request: Request) -> JSONResponse:
        """The OpenAPI document of this host."""
        from plexica_sdk import __version__

        return JSONResponse(openapi_document(app.routes, title="Plexica", version=__version__))

    routes = [
        *health.routes,
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
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
                ],
                default=not_found,
            ),
        ),
        *plugin_mounts(platform),
        *(objects.routes if settings.storage.backend == "local" else []),
        *(dev.routes if platform.dev_issuer is not None else []),
    ]
    middleware = [
        Middleware(TraceIdMiddleware),
        # Outside the error stage, so the log and the metrics record the status the client got
        # (a refusal raised as an exception is its 4xx problem, not a 500).
        Middleware(AccessLogMiddleware, metrics=platform.metrics, access_log=settings.http.access_log),
        Middleware(ErrorMiddleware),
        Middleware(
            AuthenticationMiddleware,
            verifier=platform.verifier,
            tenants=platform.directory,
            check_tenants=settings.auth.keycloak is not None,
        ),
        Middleware(
            TenantMiddleware,
            tenants=platform.directory,
            host_suffix=settings.http.tenant_host_suffix,
            gateway_key=settings.auth.gateway_key,
            trust_unsigned_header=settings.is_development,
        ),
        Middleware(
            UserMiddleware,
            super_admins=platform.super_admins,
            users=platform.users,
            workspaces=platform.workspaces,
            authorizer=platform,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.router.default = not_found
    app.state.platform = platform  # for the CLI and tests; handlers get only the services below
    app.state.services = core_services(platform)
    return app


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
        probes={"database": platform.db.ping, "cache": lambda: platform.cache.get("plexica:health")},
    )
