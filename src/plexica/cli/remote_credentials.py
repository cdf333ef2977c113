"""``plexica remote credentials create|rotate|revoke|list``: remote plugins' service credentials.

A remote plugin calls back into the host with the context token of the call it serves; for work
outside a call (background jobs) it shows its service credential instead
(:mod:`plexica.remote.credentials`). On PostgreSQL the same secret is the password of the plugin's
database role (:mod:`plexica.remote.db_roles`), which ``create`` also grants in every tenant where
the plugin is installed, so one secret gives the plugin both ``PLEXICA_PLUGIN_CREDENTIAL`` and
``PLEXICA_PLUGIN_DATABASE_URL``. ``create`` and ``rotate`` print both once, as environment lines
for the plugin's secret store; the host keeps only hashes. ``revoke`` ends both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import click
from sqlalchemy.engine import make_url

from plexica.cli.migrate import run_with_platform
from plexica.cli.output import echo_json, print_table
from plexica.platform import Platform
from plexica.remote.credentials import IssuedCredential, ServiceCredentials
from plexica.tenancy.service import tenant_context_of
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import ValidationError
from plexica_sdk.remote.host import CREDENTIAL_ENV, DATABASE_URL_ENV

__all__ = ["remote"]


def _check_plugin(platform: Platform, plugin: str) -> None:
    loaded = platform.plugins.get(plugin)
    if loaded is None or loaded.is_builtin:
        raise ValidationError(f"unknown plugin {plugin!r}", field="plugin")


async def _grant_database(platform: Platform, issued: IssuedCredential) -> str | None:
    """The plugin role's URL, its password set and its grants made where the plugin is installed (PostgreSQL)."""
    roles, url = platform.db_roles, platform.settings.database.url
    if roles is None or url is None:
        return None
    role = await roles.set_login(issued.plugin, issued.secret)
    for tenant in await platform.tenants.list():
        if tenant.status not in ("active", "suspended"):
            continue
        installed = await platform.tenants.installed_plugins(tenant)
        if installed.get(issued.plugin, ("", ""))[1] == "enabled":
            await roles.grant(tenant_context_of(tenant), issued.plugin)
    return make_url(url).set(username=role, password=issued.secret).render_as_string(hide_password=False)


def _print(issued: IssuedCredential, database_url: str | None) -> None:
    click.echo(f"{CREDENTIAL_ENV}={issued.value}")
    if database_url is not None:
        click.echo(f"{DATABASE_URL_ENV}={database_url}")
    click.echo("shown once: put these in the plugin's secret store (the host keeps only hashes)", err=True)


@click.group()
def remote() -> None:
    """Remote plugins: their service credentials and the host's signing keys."""


@remote.group()
def credentials() -> None:
    """Service credentials of remote plugins (hashed at rest; rotate and revoke at any time)."""


def _issue(obj: Any, plugin: str, how: Callable[[ServiceCredentials, str], Awaitable[IssuedCredential]]) -> None:
    """Make or replace PLUGIN's credential with ``how``, give its role the secret, print both once."""

    async def work(platform: Platform) -> None:
        _check_plugin(platform, plugin)
        issued = await how(platform.remote_credentials, plugin)
        _print(issued, await _grant_database(platform, issued))

    run_with_platform(obj, work)


@credentials.command()
@click.argument("plugin")
@click.pass_obj
def create(obj: Any, plugin: str) -> None:
    """Make PLUGIN's credential (and on PostgreSQL its database role's login) and print it once."""
    _issue(obj, plugin, ServiceCredentials.create)


@credentials.command()
@click.argument("plugin")
@click.pass_obj
def rotate(obj: Any, plugin: str) -> None:
    """Replace PLUGIN's credential (and database password): the old one stops working at once."""
    _issue(obj, plugin, ServiceCredentials.rotate)


@credentials.command()
@click.argument("plugin")
@click.pass_obj
def revoke(obj: Any, plugin: str) -> None:
    """Remove PLUGIN's credential; its database role can no longer log in."""

    async def work(platform: Platform) -> None:
        await platform.remote_credentials.revoke(plugin)
        if platform.db_roles is not None:
            await platform.db_roles.set_login(plugin, None)
        click.echo(f"revoked the credential of {plugin}")

    run_with_platform(obj, work)


@credentials.command("list")
@click.argument("plugin", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_obj
def list_credentials(obj: Any, plugin: str | None, as_json: bool) -> None:
    """The plugins that have a credential (all, or only PLUGIN): key id and dates, never a secret."""

    async def work(platform: Platform) -> None:
        found = [each for each in await platform.remote_credentials.list() if plugin is None or each.plugin == plugin]
        if as_json:
            echo_json(unstructure(found))
            return
        rows = [
            [
                each.plugin,
                each.key_id,
                each.created_at.isoformat(),
                each.rotated_at.isoformat() if each.rotated_at else "",
            ]
            for each in found
        ]
        print_table(["plugin", "key id", "created", "rotated"], rows)

    run_with_platform(obj, work)
