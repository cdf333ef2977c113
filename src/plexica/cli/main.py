"""``plexica``: serve the host, manage tenants, list plugins, mint dev tokens.

Bad input ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from plexica.cli.events import events
from plexica.cli.migrate import migrate
from plexica.cli.output import echo_json, print_table
from plexica.cli.permissions import permissions
from plexica.cli.plugins_admin import config, install, register, uninstall, upgrade
from plexica.cli.realms import realms
from plexica.cli.remote import serve_plugin
from plexica.cli.remote_credentials import remote
from plexica.cli.remote_keygen import keygen
from plexica.cli.scaffold import plugin
from plexica.platform import Platform
from plexica.settings import Settings, load_settings
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import PlexicaError

__all__ = ["main"]

T = TypeVar("T")

PLATFORM_REALM = "plexica-platform"


class _Obj:
    def __init__(self, settings_path: str | None) -> None:
        self.settings_path = settings_path

    @functools.cached_property
    def settings(self) -> Settings:
        return load_settings(self.settings_path)


def _run(coro_fn: Callable[[Platform], Awaitable[T]], obj: _Obj) -> T:
    async def runner() -> T:
        async with Platform(obj.settings) as platform:
            return await coro_fn(platform)

    return asyncio.run(runner())


@click.group()
@click.option(
    "--settings",
    "settings_path",
    type=click.Path(dir_okay=False),
    envvar="PLEXICA_SETTINGS",
    help="TOML settings file (default: $PLEXICA_SETTINGS, else built-in defaults).",
)
@click.pass_context
def cli(ctx: click.Context, settings_path: str | None) -> None:
    """Plexica: a host for multi-tenant SaaS platforms built from plugins."""
    ctx.obj = _Obj(settings_path)


@cli.command()
def version() -> None:
    """Print the Plexica version."""
    from plexica_sdk import __version__

    click.echo(__version__)


@cli.command()
@click.option("--host", default=None, help="Interface to bind (default: settings http.host).")
@click.option("--port", type=int, default=None, help="Port (default: settings http.port).")
@click.option("--demo", is_flag=True, help="Create the demo tenant 'acme' and print commands to try.")
@click.pass_obj
def serve(obj: _Obj, host: str | None, port: int | None, demo: bool) -> None:
    """Serve the host over HTTP with uvicorn."""
    import uvicorn

    from plexica.app import create_app
    from plexica.observability.logging import configure_logging

    settings = obj.settings
    host = host or settings.http.host
    port = settings.http.port if port is None else port
    if demo:
        _prepare_demo(obj, f"http://{host}:{port}")
    configure_logging()
    loop, http = server_implementations()
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", lifespan="on", loop=loop, http=http)


def server_implementations() -> tuple[str, str]:
    """uvicorn's event loop and HTTP parser: uvloop and httptools (``uvicorn[standard]``) when installed.

    They serve several times the requests of asyncio + h11 (benchmarks/request_path.py); the pure
    Python pair remains for platforms without wheels.
    """
    found = {name: importlib.util.find_spec(name) is not None for name in ("uvloop", "httptools")}
    return ("uvloop" if found["uvloop"] else "asyncio"), ("httptools" if found["httptools"] else "h11")


def _prepare_demo(obj: _Obj, base_url: str) -> None:
    from plexica.cli.demo import prepare_demo

    click.echo(_run(lambda platform: prepare_demo(platform, base_url), obj))


# ------------------------------------------------------------------- tenants


@cli.group()
def tenants() -> None:
    """Provision and manage tenants."""


@tenants.command("create")
@click.argument("slug")
@click.option("--name", default=None, help="Display name (default: the slug).")
@click.option("--plan", default="standard", show_default=True)
@click.pass_obj
def tenants_create(obj: _Obj, slug: str, name: str | None, plan: str) -> None:
    """Provision a tenant: schema, migrations, plugins, bucket."""
    tenant = _run(lambda p: p.tenants.provision(slug, name=name, plan=plan), obj)
    click.echo(f"created tenant {tenant.slug} ({tenant.id}), schema {tenant.schema}")


@tenants.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def tenants_list(obj: _Obj, as_json: bool) -> None:
    """List tenants."""
    items = _run(lambda p: p.tenants.list(), obj)
    if as_json:
        echo_json([unstructure(t) for t in items])
    else:
        print_table(
            ["slug", "name", "status", "plan", "created"],
            [[t.slug, t.name, t.status, t.plan, str(t.created_at)[:19]] for t in items],
        )


@tenants.command("show")
@click.argument("slug")
@click.pass_obj
def tenants_show(obj: _Obj, slug: str) -> None:
    """Show one tenant and its plugins."""

    async def show(p: Platform) -> dict[str, Any]:
        tenant = await p.tenants.get(slug)
        data: dict[str, Any] = unstructure(tenant)
        data["plugins"] = {
            name: {"version": v, "status": s} for name, (v, s) in (await p.tenants.installed_plugins(tenant)).items()
        }
        return data

    echo_json(_run(show, obj))


@tenants.command("suspend")
@click.argument("slug")
@click.pass_obj
def tenants_suspend(obj: _Obj, slug: str) -> None:
    """Suspend a tenant: its users are refused until it is resumed."""
    click.echo(f"tenant {_run(lambda p: p.tenants.suspend(slug), obj).slug} suspended")


@tenants.command("resume")
@click.argument("slug")
@click.pass_obj
def tenants_resume(obj: _Obj, slug: str) -> None:
    """Resume a suspended tenant."""
    click.echo(f"tenant {_run(lambda p: p.tenants.resume(slug), obj).slug} resumed")


@tenants.command("delete")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def tenants_delete(obj: _Obj, slug: str, yes: bool) -> None:
    """Delete a tenant and all of its data."""
    if not yes:
        click.confirm(f"Delete tenant {slug} and all of its data?", abort=True)
    _run(lambda p: p.tenants.delete(slug), obj)
    click.echo(f"tenant {slug} deleted")


# ------------------------------------------------------------------- plugins


@cli.group()
def plugins() -> None:
    """Inspect plugins; install, upgrade and uninstall them per tenant."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def plugins_list(obj: _Obj, as_json: bool) -> None:
    """List the plugins this host loads, in load order."""
    platform = Platform(obj.settings)  # loading validates; nothing needs to connect
    infos = platform.plugins.infos()
    if as_json:
        echo_json([unstructure(i) for i in infos])
    else:
        print_table(
            ["name", "version", "mode", "permissions"],
            [[i.name, i.version, i.mode, ", ".join(i.permissions)] for i in infos],
        )


# --------------------------------------------------------------------- token


@cli.command()
@click.option("--tenant", "tenant_slug", default=None, help="Tenant slug (its realm issues the token).")
@click.option("--user", "user_id", default="dev-user", show_default=True, help="Subject (user id).")
@click.option("--username", default=None)
@click.option("--role", "roles", multiple=True, help="Realm role; repeat for several (default: member).")
@click.option("--super-admin", is_flag=True, help="A platform-realm token with the super_admin role.")
@click.option("--expires-in", type=click.IntRange(1, 7 * 24 * 3600), default=3600, show_default=True)
@click.pass_obj
def token(
    obj: _Obj,
    tenant_slug: str | None,
    user_id: str,
    username: str | None,
    roles: tuple[str, ...],
    super_admin: bool,
    expires_in: int,
) -> None:
    """Mint a token with the built-in dev issuer (embedded mode only)."""
    from plexica.auth import DevIssuer
    from plexica.tenancy.naming import realm_name

    settings = obj.settings
    if settings.auth.keycloak is not None:
        raise click.UsageError("tokens come from Keycloak in this configuration; the dev issuer is off")
    if super_admin == (tenant_slug is not None):
        raise click.UsageError("give exactly one of --tenant SLUG or --super-admin")
    issuer = DevIssuer.from_settings(settings)
    if super_admin:
        realm, granted = PLATFORM_REALM, ["super_admin", *roles]
    else:
        realm, granted = realm_name(tenant_slug or ""), list(roles or ["member"])
    click.echo(
        issuer.mint(realm=realm, subject=user_id, roles=granted, username=username or user_id, expires_in=expires_in)
    )


cli.add_command(realms)
cli.add_command(plugin)
plugin.add_command(serve_plugin)
cli.add_command(migrate)
cli.add_command(permissions)
cli.add_command(events)
cli.add_command(remote)
remote.add_command(keygen)
plugins.add_command(install)
plugins.add_command(upgrade)
plugins.add_command(uninstall)
plugins.add_command(config)
plugins.add_command(register)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``plexica`` script."""
    try:
        cli.main(args=argv, prog_name="plexica", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except PlexicaError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: {exc.strerror or exc}", err=True)
        sys.exit(1)
