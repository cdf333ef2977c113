"""What core route handlers may use: the services of the core API, and nothing else.

Handlers used to reach into the whole :class:`~plexica.platform.Platform` (database, cache, bus,
settings). They now get a :class:`CoreServices`: the business services they call, plus narrow
protocols for the few other things a route needs (an authorizer, the dead-letter queue, health
probes). The composition root builds it once; :func:`services_of` reads it with a clear error.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import attrs

if TYPE_CHECKING:
    from starlette.requests import Request

    from plexica.auth import DevIssuer
    from plexica.events.dlq import DeadLetter
    from plexica.identity.super_admins import SuperAdminService
    from plexica.identity.teams import TeamService
    from plexica.identity.users import UserService
    from plexica.observability.health import HealthChecker
    from plexica.observability.metrics import Metrics
    from plexica.permissions import PermissionEngine, PermissionService
    from plexica.plugins.frontend import FrontendCatalog
    from plexica.tenancy.plugin_config import PluginConfigService
    from plexica.tenancy.service import TenantService
    from plexica.workspaces.service import WorkspaceService
    from plexica_sdk.protocols import ObjectStore
    from plexica_sdk.types import Decision, ObjectInfo, PluginInfo, TenantContext

__all__ = ["Authorizer", "CoreServices", "DeadLetters", "services_of"]


class Authorizer(Protocol):
    """Decides for a tenant context's user (RBAC, then ABAC)."""

    async def authorize(
        self, ctx: TenantContext, permission: str, resource: Mapping[str, Any] | None = None
    ) -> Decision: ...


class DeadLetters(Protocol):
    """The dead-letter queue's admin side (the event bus implements it)."""

    async def dlq_list(self, limit: int = 100) -> list[DeadLetter]: ...

    async def dlq_get(self, id: str) -> DeadLetter: ...

    async def dlq_replay(self, id: str) -> None: ...

    async def dlq_dismiss(self, id: str) -> None: ...


@attrs.frozen(kw_only=True)
class CoreServices:
    """Everything the core API's handlers call; built by the composition root."""

    tenants: TenantService
    users: UserService
    teams: TeamService
    super_admins: SuperAdminService
    workspaces: WorkspaceService
    plugin_config: PluginConfigService
    permission_service: PermissionService
    permissions: PermissionEngine
    authorizer: Authorizer
    dead_letters: DeadLetters
    objects: ObjectStore
    #: Stores a verified local presigned PUT for its owning plugin (limits, ``plexica_object_uploaded``).
    #: ``(bucket, key, body, content type, declared size)`` → the stored object; see ``Platform.upload_presigned``.
    upload_presigned: Callable[[str, str, AsyncIterable[bytes], str | None, int | None], Awaitable[ObjectInfo]]
    dev_issuer: DevIssuer | None
    metrics: Metrics
    plugins: Callable[[], Sequence[PluginInfo]]
    #: The module-federation remotes of ``GET /api/core/v1/frontend``.
    frontend: FrontendCatalog
    #: The probes of ``/health``; its ``database`` probe is also ``/ready``'s.
    health: HealthChecker


def services_of(request: Request) -> CoreServices:
    """The core services of the host serving ``request``.

    Raises:
        RuntimeError: the route is not served by an app from :func:`plexica.create_app`.
    """
    services = getattr(request.app.state, "services", None)
    if not isinstance(services, CoreServices):
        raise RuntimeError("no Plexica core services on this app: build it with plexica.create_app()")
    return services
