"""``plexica permissions``: roles, grants and ABAC policies of a tenant; checks and explanations.

Policies are read from JSON files (one policy object, or a list of them). A validation error
prints the offending field (``condition.all[0].operator: ...``) and exits non-zero.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import click

from plexica.cli.output import echo_json, print_table
from plexica.permissions import PermissionService, policy_from_json, policy_to_json
from plexica.platform import Platform
from plexica.tenancy.service import tenant_context_of
from plexica_sdk.errors import ValidationError
from plexica_sdk.types import TenantContext

__all__ = ["permissions"]

T = TypeVar("T")

tenant_option = click.option("--tenant", "slug", required=True, help="Tenant slug.")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _run(obj: Any, slug: str, work: Callable[[Platform, TenantContext, PermissionService], Awaitable[T]]) -> T:
    async def runner() -> T:
        async with Platform(obj.settings) as platform:
            ctx = tenant_context_of(await platform.tenants.get(slug))
            return await work(platform, ctx, platform.permission_service)

    try:
        return asyncio.run(runner())
    except ValidationError as exc:
        raise click.ClickException(f"{exc.field}: {exc}" if exc.field else str(exc)) from exc


def _read_policies(path: str) -> list[Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path} is not JSON: {exc}") from exc
    items = data if isinstance(data, list) else [data]
    try:
        return [
            policy_from_json(item, where=f"[{i}]." if isinstance(data, list) else "") for i, item in enumerate(items)
        ]
    except ValidationError as exc:
        raise click.ClickException(f"{exc.field}: {exc}") from exc


def _subject(user: str | None, team: str | None) -> dict[str, str | None]:
    if (user is None) == (team is None):
        raise click.UsageError("give exactly one of --user and --team")
    return {"user_id": user, "team_id": team}


@click.group()
def permissions() -> None:
    """Roles, grants and policies of a tenant."""


# -------------------------------------------------------------------- roles


@permissions.group()
def roles() -> None:
    """List and change roles."""


@roles.command("list")
@tenant_option
@json_option
@click.pass_obj
def roles_list(obj: Any, slug: str, as_json: bool) -> None:
    """List the tenant's roles (system, plugin and custom) and what they grant."""
    found = _run(obj, slug, lambda p, ctx, service: service.list_roles(ctx))
    if as_json:
        echo_json([attrs.asdict(role) for role in found])
    else:
        print_table(["role", "kind", "permissions"], [[r.name, r.kind, ", ".join(r.permissions) or "-"] for r in found])


@roles.command("create")
@click.argument("name")
@click.option("--permission", "-p", "patterns", multiple=True, help="A permission pattern; repeat for several.")
@click.option("--description", default="")
@tenant_option
@click.pass_obj
def roles_create(obj: Any, name: str, patterns: tuple[str, ...], description: str, slug: str) -> None:
    """Create a custom role."""
    role = _run(obj, slug, lambda p, ctx, service: service.create_role(ctx, name, list(patterns), description))
    click.echo(f"created role {role.name}")


@roles.command("delete")
@click.argument("name")
@tenant_option
@click.pass_obj
def roles_delete(obj: Any, name: str, slug: str) -> None:
    """Delete a custom role and its grants."""
    _run(obj, slug, lambda p, ctx, service: service.delete_role(ctx, name))
    click.echo(f"deleted role {name}")


# ------------------------------------------------------------------- grants


@permissions.command("grants")
@click.option("--role", default=None)
@click.option("--user", default=None)
@click.option("--team", default=None)
@tenant_option
@json_option
@click.pass_obj
def grants_list(obj: Any, role: str | None, user: str | None, team: str | None, slug: str, as_json: bool) -> None:
    """List grants, optionally of one role or one user or team."""
    found = _run(obj, slug, lambda p, ctx, service: service.list_grants(ctx, role=role, user_id=user, team_id=team))
    if as_json:
        echo_json([attrs.asdict(g) for g in found])
    else:
        print_table(
            ["id", "role", "subject", "workspace"],
            [[g.id, g.role, f"{g.subject_type}:{g.subject_id}", g.workspace_id or "(tenant)"] for g in found],
        )


@permissions.command("grant")
@click.argument("role")
@click.option("--user", default=None)
@click.option("--team", default=None)
@click.option("--workspace", default=None, help="Grant in one workspace only.")
@tenant_option
@click.pass_obj
def grant(obj: Any, role: str, user: str | None, team: str | None, workspace: str | None, slug: str) -> None:
    """Grant a role to a user or team, tenant-wide or in one workspace."""
    subject = _subject(user, team)
    found = _run(obj, slug, lambda p, ctx, service: service.grant(ctx, role, workspace_id=workspace, **subject))
    click.echo(f"granted {found.role} to {found.subject_type} {found.subject_id} ({found.id})")


@permissions.command("revoke")
@click.argument("role")
@click.option("--user", default=None)
@click.option("--team", default=None)
@click.option("--workspace", default=None)
@tenant_option
@click.pass_obj
def revoke(obj: Any, role: str, user: str | None, team: str | None, workspace: str | None, slug: str) -> None:
    """Revoke a role from a user or team."""
    subject = _subject(user, team)
    _run(obj, slug, lambda p, ctx, service: service.revoke(ctx, role, workspace_id=workspace, **subject))
    click.echo(f"revoked {role}")


# ----------------------------------------------------------------- policies


@permissions.group()
def policies() -> None:
    """List and change ABAC policies (JSON files)."""


@policies.command("list")
@tenant_option
@click.pass_obj
def policies_list(obj: Any, slug: str) -> None:
    """Print the tenant's policies as JSON, plugin policies included."""
    rows = _run(obj, slug, lambda p, ctx, service: service.list_policies(ctx))
    echo_json([{**policy_to_json(row.policy), "source": row.source} for row in rows])


@policies.command("create")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@tenant_option
@click.pass_obj
def policies_create(obj: Any, path: str, slug: str) -> None:
    """Create the policies in a JSON file."""
    items = _read_policies(path)

    async def create(p: Platform, ctx: TenantContext, service: PermissionService) -> None:
        for policy in items:
            await service.create_policy(ctx, policy)

    _run(obj, slug, create)
    click.echo(f"created {len(items)} {'policy' if len(items) == 1 else 'policies'}")


@policies.command("update")
@click.argument("policy_id")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@tenant_option
@click.pass_obj
def policies_update(obj: Any, policy_id: str, path: str, slug: str) -> None:
    """Replace a policy with the one in a JSON file."""
    items = _read_policies(path)
    if len(items) != 1:
        raise click.UsageError("the file must hold exactly one policy")
    _run(obj, slug, lambda p, ctx, service: service.update_policy(ctx, policy_id, items[0]))
    click.echo(f"updated policy {policy_id}")


@policies.command("delete")
@click.argument("policy_id")
@tenant_option
@click.pass_obj
def policies_delete(obj: Any, policy_id: str, slug: str) -> None:
    """Delete a tenant policy."""
    _run(obj, slug, lambda p, ctx, service: service.delete_policy(ctx, policy_id))
    click.echo(f"deleted policy {policy_id}")


# ------------------------------------------------------------------- checks


@permissions.command("explain")
@click.argument("permission")
@click.option("--user", required=True)
@click.option("--resource", default=None, help="The resource's attributes as a JSON object.")
@tenant_option
@click.pass_obj
def explain(obj: Any, permission: str, user: str, resource: str | None, slug: str) -> None:
    """Explain whether a user holds a permission (roles from tokens are not known here)."""
    attributes = json.loads(resource) if resource else None
    if attributes is not None and not isinstance(attributes, dict):
        raise click.UsageError("--resource must be a JSON object")
    found = _run(obj, slug, lambda p, ctx, service: p.permissions.explain(ctx, permission, attributes, user_id=user))
    echo_json(
        {
            "allowed": found.decision.allowed,
            "reason": found.decision.reason,
            "decided_by": found.decision.decided_by,
            "roles": [attrs.asdict(r) for r in found.roles],
            "policies": [attrs.asdict(p) for p in found.policies],
        }
    )
