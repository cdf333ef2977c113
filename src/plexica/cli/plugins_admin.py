"""``plexica plugins install|upgrade|uninstall NAME --tenant SLUG|--all``: per-tenant plugin installs.

``plexica plugins config NAME --tenant SLUG [--set KEY=VALUE ...] [--file F.json]`` shows or
edits one tenant's configuration of a plugin, validated against its ``config_schema``.

``plexica plugins register --remote URL`` registers a remote plugin (docs/remote.md): its
manifest is fetched and the host is built with it, so it is validated like an embedded one; a
plugin that fails is not registered.

With ``--all`` every active or suspended tenant is handled in turn; one tenant's failure is
reported and the others still run (the command then exits non-zero). The plugin and the
revision are checked before any tenant is touched. An ``--all`` run holds the fleet lock
(:mod:`plexica.db.fleet_lock`), so it never races ``plexica migrate`` or another ``--all`` run:
it waits for the holder, or fails with ``--no-wait``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import attrs
import click

from plexica.cli.migrate import no_wait_option, report_waiting, run_with_platform
from plexica.cli.output import echo_json, print_table
from plexica.db.fleet_lock import FleetLock
from plexica.platform import Platform
from plexica.tenancy.plugin_config import merge_patch
from plexica.tenancy.service import AlreadyInstalledError, PluginChange, TenantService
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import BackendUnavailableError, ConflictError, NotFoundError, PlexicaError, ValidationError

__all__ = ["config", "install", "parse_assignment", "register", "uninstall", "upgrade"]

Action = Callable[[TenantService, str], Awaitable[PluginChange]]


@attrs.frozen
class _Outcome:
    tenant: str
    result: Literal["done", "skipped", "failed"]
    before: str | None = None
    after: str | None = None
    message: str = ""


async def _each_tenant(
    platform: Platform, slug: str | None, check: Callable[[], None], action: Action, wait: bool
) -> list[_Outcome]:
    check()  # unknown plugin or revision: fail before touching any tenant (or waiting)
    if slug:
        return await _for_tenants(platform, slug, action)
    async with FleetLock(platform.db, "plugins").hold(wait=wait, on_wait=report_waiting):
        return await _for_tenants(platform, None, action)  # the tenants as they are once the lock is ours


async def _for_tenants(platform: Platform, slug: str | None, action: Action) -> list[_Outcome]:
    service = platform.tenants
    slugs = [slug] if slug else [t.slug for t in await service.list() if t.status in ("active", "suspended")]
    outcomes = []
    for each in slugs:
        try:
            change = await action(service, each)
        except AlreadyInstalledError:  # a no-op for --tenant and --all alike: exit 0, one line saying so
            outcomes.append(_Outcome(each, "skipped", message="already installed (plexica plugins upgrade updates it)"))
        except PlexicaError as exc:
            if slug or isinstance(exc, BackendUnavailableError):
                raise  # one tenant asked for: its error is the command's error
            skipped = isinstance(exc, ConflictError | NotFoundError)  # already installed, or not installed
            outcomes.append(_Outcome(each, "skipped" if skipped else "failed", message=str(exc)))
        else:
            outcomes.append(_Outcome(each, "done", change.before, change.after))
    return outcomes


def _run(
    obj: Any,
    slug: str | None,
    all_tenants: bool,
    check: Callable[[Platform], None],
    action: Action,
    as_json: bool,
    no_wait: bool,
) -> None:
    if bool(slug) == all_tenants:
        raise click.UsageError("give exactly one of --tenant SLUG or --all")
    outcomes = run_with_platform(
        obj, lambda platform: _each_tenant(platform, slug, lambda: check(platform), action, not no_wait)
    )
    if as_json:
        echo_json([unstructure(outcome) for outcome in outcomes])
    else:
        print_table(
            ["tenant", "result", "schema revision", "message"],
            [[o.tenant, o.result, f"{o.before or '-'} → {o.after or '-'}", o.message] for o in outcomes],
        )
    failed = [o.tenant for o in outcomes if o.result == "failed"]
    if failed:
        raise click.ClickException(f"failed for {len(failed)} tenant(s): {', '.join(failed)}")


_tenant = click.option("--tenant", "slug", default=None, help="The tenant's slug.")
_all = click.option("--all", "all_tenants", is_flag=True, help="Every active or suspended tenant.")
_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
_no_wait = no_wait_option("plexica migrate or another --all run")


@click.command()
@click.argument("name")
@_tenant
@_all
@click.option("--revision", default=None, help="Stop at this revision of the plugin's tables (pins the tenant).")
@_no_wait
@_json
@click.pass_obj
def install(
    obj: Any, name: str, slug: str | None, all_tenants: bool, revision: str | None, no_wait: bool, as_json: bool
) -> None:
    """Install plugin NAME for tenants: run its migrations in their schemas, then its install hook."""
    _run(
        obj,
        slug,
        all_tenants,
        lambda platform: platform.tenants.check_plugin(name, revision),
        lambda service, each: service.install_plugin(each, name, revision=revision),
        as_json,
        no_wait,
    )


@click.command()
@click.argument("name")
@_tenant
@_all
@click.option("--revision", default=None, help="Stop at this revision (default: head, which unpins).")
@_no_wait
@_json
@click.pass_obj
def upgrade(
    obj: Any, name: str, slug: str | None, all_tenants: bool, revision: str | None, no_wait: bool, as_json: bool
) -> None:
    """Run plugin NAME's pending migrations for tenants, then its upgrade hook."""
    _run(
        obj,
        slug,
        all_tenants,
        lambda platform: platform.tenants.check_plugin(name, revision),
        lambda service, each: service.upgrade_plugin(each, name, revision=revision),
        as_json,
        no_wait,
    )


@click.command()
@click.argument("name")
@_tenant
@_all
@click.option("--keep-data", is_flag=True, help="Keep the plugin's tables (a later install finds them).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation before dropping tables.")
@_no_wait
@_json
@click.pass_obj
def uninstall(
    obj: Any, name: str, slug: str | None, all_tenants: bool, keep_data: bool, yes: bool, no_wait: bool, as_json: bool
) -> None:
    """Uninstall plugin NAME for tenants: its uninstall hook, then its tables unless --keep-data."""
    if not keep_data and not yes:
        click.confirm(f"Drop plugin {name}'s tables and data for {slug or 'every tenant'}?", abort=True)
    _run(
        obj,
        slug,
        all_tenants,
        lambda platform: platform.tenants.check_plugin(name),
        lambda service, each: service.uninstall_plugin(each, name, keep_data=keep_data),
        as_json,
        no_wait,
    )


def parse_assignment(assignment: str) -> dict[str, Any]:
    """``a.b=VALUE`` as the merge patch ``{"a": {"b": VALUE}}``; VALUE is JSON when it parses, else a string.

    ``KEY=null`` removes the key, so it falls back to the schema's default.

    Raises:
        ValidationError: no ``=``, or an empty key.
    """
    key, sep, raw = assignment.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ValidationError(f"--set {assignment!r}: expected KEY=VALUE (KEY may be dotted: a.b=1)", field="set")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    patch: dict[str, Any] = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        patch = {part: patch}
    return patch


def _combine(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two merge patches as one (a later ``--set`` wins; its ``null`` stays a removal)."""
    combined = dict(first)
    for key, value in second.items():
        previous = combined.get(key)
        both = isinstance(previous, dict) and isinstance(value, dict)
        combined[key] = _combine(previous, value) if both else value  # type: ignore[arg-type]
    return combined


def _read_file(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})", field="file") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{path}: the configuration must be a JSON object", field="file")
    return data


@click.command()
@click.argument("name")
@click.option("--tenant", "slug", required=True, help="The tenant's slug.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Change one key; repeat for several.")
@click.option("--file", "file", type=click.Path(dir_okay=False), default=None, help="Replace the whole configuration.")
@click.pass_obj
def config(obj: Any, name: str, slug: str, assignments: tuple[str, ...], file: str | None) -> None:
    """Show or edit tenant SLUG's configuration of plugin NAME (printed as JSON, defaults filled in).

    --file replaces the configuration, then each --set is merged in; VALUE is JSON when it parses
    (5, true, [1,2], {"a":1}, null to reset to the default), else a string. An invalid result is
    refused naming the field, and nothing changes.
    """
    patch: dict[str, Any] = {}
    for assignment in assignments:
        patch = _combine(patch, parse_assignment(assignment))
    replacement = _read_file(file) if file is not None else None

    async def work(platform: Platform) -> dict[str, Any]:
        service = platform.plugin_config
        if replacement is not None:
            return await service.set(slug, name, merge_patch(replacement, patch))
        if assignments:
            return await service.update(slug, name, patch)
        return await service.get(slug, name)

    echo_json(run_with_platform(obj, work))


@click.command()
@click.option("--remote", "url", required=True, metavar="URL", help="The remote plugin's base URL.")
@click.option("--name", default=None, help="The plugin's name (default: the one its manifest gives).")
@_json
@click.pass_obj
def register(obj: Any, url: str, name: str | None, as_json: bool) -> None:
    """Register the remote plugin at URL: fetch its manifest, accept its migrations, validate it with the host.

    Run it again to accept a plugin's new migrations bundle. The registration is kept under the
    data directory; hosts with another data directory need it in their settings ([[plugins.remote]]).
    """
    from plexica.remote import registry

    settings = obj.settings
    before = registry.recorded(settings.data_dir)
    config, snapshot = registry.register(settings, url, name=name)
    try:
        loaded = Platform(settings).plugins.get(config.name)  # validated exactly like an embedded plugin
    except PlexicaError:
        registry.restore(settings.data_dir, before)  # a plugin that fails is not registered
        raise
    assert loaded is not None
    info: dict[str, object] = {
        "name": config.name,
        "version": loaded.manifest.version,
        "url": config.url,
        "mode": loaded.source.mode,
        "hooks": sorted(snapshot.hooks),
        "routes": snapshot.has_routes,
        "migrations": snapshot.migrations,
    }
    if as_json:
        echo_json(info)
    else:
        print_table(
            ["name", "version", "url", "migrations"],
            [[config.name, loaded.manifest.version, config.url, snapshot.migrations or "-"]],
        )
