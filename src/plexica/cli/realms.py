"""``plexica realms``: the Keycloak realms of the tenants (realm per tenant, with admin credentials)."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from plexica.cli.output import echo_json, print_table
from plexica.identity.keycloak import KeycloakAdmin
from plexica.identity.realms import RealmOutcome, reconcile_realms
from plexica.platform import Platform
from plexica.settings import Settings
from plexica_sdk.converter import unstructure

__all__ = ["realms"]


@click.group()
def realms() -> None:
    """Keycloak realms of the tenants."""


def _settings(obj: Any) -> Settings:
    settings: Settings = obj.settings
    keycloak = settings.auth.keycloak
    if keycloak is None or not keycloak.manages_realms:
        raise click.UsageError("needs auth.keycloak with admin_username and admin_password")
    if keycloak.strategy != "realm_per_tenant":
        raise click.UsageError("tenants share one realm with the Organizations strategy: there is nothing to reconcile")
    return settings


async def _reconcile(settings: Settings, only: tuple[str, ...], prune: bool) -> list[RealmOutcome]:
    assert settings.auth.keycloak is not None  # checked by _settings
    async with Platform(settings) as platform:
        tenants = await platform.tenants.list()
        async with KeycloakAdmin(settings.auth.keycloak, audience=settings.auth.audience) as admin:
            return await reconcile_realms(admin, tenants, realm_name=admin.realm_name, prune=prune, only=only or None)


@realms.command("reconcile")
@click.option("--tenant", "only", multiple=True, help="Only this tenant; repeat for several (default: all).")
@click.option("--prune", is_flag=True, help="Also delete tenant realms whose tenant no longer exists.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def reconcile(obj: Any, only: tuple[str, ...], prune: bool, as_json: bool) -> None:
    """Re-apply the realm template (roles, web client, API audience) to every tenant's realm.

    Active tenants' realms are enabled, suspended tenants' realms disabled; a missing realm is
    created. Exits non-zero when any realm failed.
    """
    outcomes = asyncio.run(_reconcile(_settings(obj), only, prune))
    if as_json:
        echo_json([unstructure(outcome) for outcome in outcomes])
    else:
        print_table(
            ["tenant", "realm", "status", "result", "changes"],
            [[o.tenant, o.realm, o.status, o.result, o.error or "; ".join(o.changes) or "-"] for o in outcomes],
        )
    failed = [outcome.tenant for outcome in outcomes if outcome.result == "failed"]
    if failed:
        raise click.ClickException(f"{len(failed)} realm(s) could not be reconciled: {', '.join(failed)}")
