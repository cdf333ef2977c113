"""Who is calling back: authenticating a remote plugin's callbacks into the host (docs/remote.md).

A remote plugin reaches the host through the callback API (``/.plexica/host/v1``, served by
:mod:`plexica.http.routes.host_callbacks`), and every call is authenticated on its own, by one of:

* the **context token** the host sent with the call being served (``Plexica-Context``): verified
  with the host's own keys, addressed to the plugin named in ``Plexica-Plugin``, not expired, and
  naming a tenant. It may be shown for several callbacks within its lifetime, but it is good only
  for that plugin and that tenant: the tenant comes from the signed token, never from the request.
* the plugin's **service credential** (``Plexica-Credential``, see :mod:`plexica.remote.credentials`)
  for work outside a host call, with ``Plexica-Tenant`` naming the tenant.

Either way the plugin must be loaded (not built in) and enabled in that tenant, and the tenant
active: otherwise 403. The answer is a :class:`Caller`, (plugin, tenant context); the routes then
act through that plugin's own host handle for that tenant, exactly what an embedded plugin gets,
so both modes are scoped the same way by construction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, Protocol, final

import attrs

from plexica.remote.credentials import ServiceCredentials
from plexica_sdk.errors import (
    AuthenticationError,
    PermissionDeniedError,
    TenantNotFoundError,
    TenantSuspendedError,
    ValidationError,
)
from plexica_sdk.protocols import Host
from plexica_sdk.remote.verify import ContextVerifier
from plexica_sdk.types import Event, Principal, TenantContext, TenantInfo

__all__ = ["CallbackGate", "CallbackServices", "Caller", "TenantLookup"]

#: The pseudo-permission a 403 names when a plugin may not act in a tenant.
TENANT_ACCESS = "remote:tenant:act"
#: Clock skew tolerated between the host process that signed a token and the one verifying it.
_LEEWAY_SECONDS = 2.0


class TenantLookup(Protocol):
    """A tenant that is not deleted, by slug (``TenantNotFoundError`` otherwise); cached by the host."""

    async def get(self, slug: str) -> TenantInfo: ...


@attrs.frozen(kw_only=True)
class CallbackServices:
    """What the callback API may use; the composition root (``Platform``) builds it."""

    #: The plugin's own host handle in a tenant: what the routes act through.
    host_for: Callable[[str, TenantContext], Host]
    tenants: TenantLookup
    #: Whether a plugin is enabled in a tenant (by slug).
    is_active: Callable[[str, str], Awaitable[bool]]
    #: Whether a name is a loaded plugin that is not built in.
    is_plugin: Callable[[str], bool]
    credentials: ServiceCredentials
    #: The host's public context-token keys (its JWKS); None: this host signs no tokens.
    jwks: Callable[[], Awaitable[Mapping[str, Any]]] | None
    issuer: str
    #: Validate and build a plugin's event and its outbox row, for a remote session to write.
    prepare: Callable[[str, str, Any, TenantContext, str | None], tuple[Event, Mapping[str, Any]]]
    #: Wake the outbox relays for a tenant (a remote session committed rows there).
    wake: Callable[[TenantContext], None]
    #: Whether remote plugins get database roles (PostgreSQL), so that remote sessions exist.
    remote_sessions: bool


@attrs.frozen(kw_only=True)
class Caller:
    """An authenticated callback: which plugin, in which tenant context, shown how."""

    plugin: str
    ctx: TenantContext
    via: Literal["token", "credential"]


@final
class CallbackGate:
    """Authenticates each callback (see the module docstring); one per host."""

    def __init__(self, services: CallbackServices) -> None:
        self._services = services
        self._verifiers: dict[str, ContextVerifier] = {}

    async def caller(
        self, *, plugin: str | None, token: str | None, credential: str | None, tenant: str | None
    ) -> Caller:
        """The plugin and tenant context of a callback with these headers.

        Raises:
            AuthenticationError: no plugin named, no token nor credential, or one that does not verify (401).
            PermissionDeniedError: the plugin may not act in the tenant, or the request names
                another tenant than its token (403).
            TenantSuspendedError: the tenant is suspended (403).
        """
        services = self._services
        if not plugin or not services.is_plugin(plugin):
            raise AuthenticationError("name a loaded plugin in Plexica-Plugin")
        if token:
            return await self._by_token(plugin, token, tenant)
        if credential:
            await services.credentials.verify(credential, plugin)
            if not tenant:
                raise ValidationError("a service credential acts in the tenant named by Plexica-Tenant", field="tenant")
            ctx = await self._tenant(plugin, tenant, None, None)
            return Caller(plugin=plugin, ctx=ctx, via="credential")
        raise AuthenticationError(
            "send the context token of the call being served (Plexica-Context) "
            "or the plugin's service credential (Plexica-Credential)"
        )

    async def _by_token(self, plugin: str, token: str, tenant: str | None) -> Caller:
        remote = await self._verifier(plugin).verify(token)
        signed = remote.tenant
        if signed is None:
            raise AuthenticationError("the context token names no tenant")
        if tenant is not None and tenant != signed.slug:
            raise PermissionDeniedError(TENANT_ACCESS, "the context token is for another tenant")
        ctx = await self._tenant(plugin, signed.slug, signed.tenant_id, signed)
        return Caller(plugin=plugin, ctx=ctx, via="token")

    def _verifier(self, plugin: str) -> ContextVerifier:
        verifier = self._verifiers.get(plugin)
        if verifier is None:
            jwks = self._services.jwks
            if jwks is None:
                raise AuthenticationError("this host signs no context tokens (remote.signing_keys)")
            verifier = self._verifiers[plugin] = ContextVerifier(
                plugin, jwks, issuer=self._services.issuer, leeway_seconds=_LEEWAY_SECONDS, single_use=False
            )
        return verifier

    async def _tenant(
        self, plugin: str, slug: str, tenant_id: str | None, signed: TenantContext | None
    ) -> TenantContext:
        """The tenant context to act in: the registry's tenant, checked against what the token signed.

        A context token is the host's own proof that it is calling this plugin for this tenant right
        now (it lives a minute at most), so it also admits the calls a plugin makes while the host
        runs its lifecycle hooks: a tenant still ``provisioning`` or being suspended or deleted, a
        plugin still being installed. A service credential acts on its own initiative, so it
        needs an active tenant where the plugin is active.
        """
        services = self._services
        try:
            info = await services.tenants.get(slug)
        except (TenantNotFoundError, ValidationError):
            raise PermissionDeniedError(TENANT_ACCESS, "the plugin is not installed for that tenant") from None
        if tenant_id is not None and info.id != tenant_id:
            raise PermissionDeniedError(TENANT_ACCESS, "the context token is for another tenant")
        if signed is None:
            if info.status == "suspended":
                raise TenantSuspendedError(slug)
            if info.status != "active" or not await services.is_active(plugin, slug):
                raise PermissionDeniedError(TENANT_ACCESS, "the plugin is not installed for that tenant")
        user: Principal | None = signed.user if signed is not None else None
        return TenantContext(
            tenant_id=info.id,
            slug=info.slug,
            schema=info.schema,
            plan=info.plan,
            status=info.status,
            user=user,
            workspace_id=signed.workspace_id if signed is not None else None,
            trace_id=signed.trace_id if signed is not None else None,
        )
