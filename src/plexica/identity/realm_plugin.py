"""The built-in ``identity-keycloak`` plugin: a Keycloak realm follows each tenant's lifecycle.

Registered by :class:`~plexica.platform.Platform` only when ``auth.keycloak`` holds admin
credentials and the strategy is realm per tenant. Its hooks run :class:`RealmStep`:

=============================  ==============================================================
``plexica_tenant_provisioned``  create the realm (roles, web client, audience, first admin);
                                a failure fails provisioning, which undoes the tenant
``plexica_tenant_suspended``    disable the realm
``plexica_tenant_resumed``      enable the realm
``plexica_tenant_deleting``     delete the realm (a failure stops the deletion until a retry)
=============================  ==============================================================
"""

from __future__ import annotations

import typing

from plexica.identity.keycloak import KeycloakAdmin
from plexica.identity.realms import RealmStep, first_admin_from_settings
from plexica.settings import Settings
from plexica_sdk.markers import hookimpl
from plexica_sdk.types import PluginManifest, TenantContext

__all__ = ["PLUGIN_NAME", "RealmPlugin", "build_realm_plugin"]

PLUGIN_NAME = "identity-keycloak"
PLUGIN_VERSION = "0.1.0"


@typing.final
class RealmPlugin:
    """Runs :class:`RealmStep` on the tenant lifecycle hooks.

    Args:
        step: the realm step to run.
        admin: closed when the host stops (None: nothing to close).
    """

    def __init__(self, step: RealmStep, *, admin: KeycloakAdmin | None = None) -> None:
        self.step = step
        self.admin = admin

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name=PLUGIN_NAME,
            version=PLUGIN_VERSION,
            description="Creates, disables, enables and deletes each tenant's Keycloak realm",
        )

    @hookimpl
    async def plexica_host_stopping(self) -> None:
        if self.admin is not None:
            await self.admin.aclose()

    @hookimpl
    async def plexica_tenant_provisioned(self, tenant: TenantContext) -> None:
        await self.step.apply(tenant)

    @hookimpl
    async def plexica_tenant_suspended(self, tenant: TenantContext) -> None:
        await self.step.suspend(tenant)

    @hookimpl
    async def plexica_tenant_resumed(self, tenant: TenantContext) -> None:
        await self.step.resume(tenant)

    @hookimpl
    async def plexica_tenant_deleting(self, tenant: TenantContext) -> None:
        await self.step.delete(tenant)


def build_realm_plugin(settings: Settings) -> RealmPlugin | None:
    """The realm plugin ``settings`` ask for: None without Keycloak admin credentials, or when
    tenants share one realm (the Organizations strategy), where there is no realm per tenant."""
    keycloak = settings.auth.keycloak
    if keycloak is None or not keycloak.manages_realms or keycloak.strategy != "realm_per_tenant":
        return None
    admin = KeycloakAdmin(keycloak, audience=settings.auth.audience)
    return RealmPlugin(RealmStep(admin, first_admin=first_admin_from_settings(keycloak)), admin=admin)
