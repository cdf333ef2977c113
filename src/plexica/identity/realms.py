"""A tenant's identity realm as a step of the tenant lifecycle.

:class:`RealmStep` maps each lifecycle transition to one idempotent :class:`IdentityAdmin`
operation: provisioning creates the realm (and undoes its own half-made realm when that fails),
suspension disables it, resumption enables it, deletion removes it.
"""

from __future__ import annotations

import asyncio
import logging
import typing
from collections.abc import Callable, Collection, Sequence
from typing import Literal, Protocol

import attrs

from plexica.identity.keycloak import AdminUser, IdentityAdmin, RealmReport
from plexica.settings import KeycloakSettings
from plexica_sdk.errors import PlexicaError
from plexica_sdk.types import TenantInfo

__all__ = ["RealmOutcome", "RealmStep", "first_admin_from_settings", "reconcile_realms"]

logger = logging.getLogger(__name__)

#: Seconds a failed ``apply`` may spend deleting the realm it half-made.
UNDO_TIMEOUT_SECONDS = 30.0


class _Tenant(Protocol):
    """Anything naming a tenant: ``TenantContext`` in hooks, ``TenantInfo`` in the service."""

    @property
    def slug(self) -> str: ...


def first_admin_from_settings(settings: KeycloakSettings) -> Callable[[str], AdminUser]:
    """The first administrator of each new realm, as ``settings`` describe it (``{slug}`` filled in)."""

    def first_admin(slug: str) -> AdminUser:
        email = settings.first_admin_email
        return AdminUser(
            username=settings.first_admin_username,
            email=email.replace("{slug}", slug) if email else None,
            password=settings.first_admin_password,
            temporary=True,
        )

    return first_admin


@typing.final
class RealmStep:
    """The realm part of provisioning, suspension, resumption and deletion.

    Args:
        admin: the identity server's admin interface.
        first_admin: the first administrator of a tenant's new realm (None: create no user).
    """

    def __init__(self, admin: IdentityAdmin, *, first_admin: Callable[[str], AdminUser | None] | None = None) -> None:
        self.admin = admin
        self.first_admin = first_admin

    async def apply(self, tenant: _Tenant) -> RealmReport:
        """Create (or complete) the tenant's realm and its first administrator.

        On failure the realm is deleted before the error propagates, so a failed step leaves no
        realm behind even when the tenant's other steps are undone by someone else.

        Raises:
            BackendUnavailableError: the identity server is unreachable.
            IdentityAdminError: the identity server refused a part of the realm.
        """
        admin_user = self.first_admin(tenant.slug) if self.first_admin else None
        try:
            report = await self.admin.ensure_realm(tenant.slug, admin_user)
        except BaseException:
            # Also on cancellation (a hook timeout): the realm may exist half-configured.
            await self._undo_after_failure(tenant)
            raise
        logger.info("tenant realm ready", extra={"tenant": tenant.slug, "realm_created": report.created})
        return report

    async def _undo_after_failure(self, tenant: _Tenant) -> None:
        try:
            async with asyncio.timeout(UNDO_TIMEOUT_SECONDS):
                await self.admin.delete_realm(tenant.slug)
        except Exception:
            # The original error matters more; `plexica realms reconcile --prune` removes leftovers.
            logger.warning("could not delete the realm of a failed provisioning", extra={"tenant": tenant.slug})

    async def undo(self, tenant: _Tenant) -> None:
        """Remove what :meth:`apply` made: the realm (nothing if it does not exist)."""
        await self.admin.delete_realm(tenant.slug)

    async def suspend(self, tenant: _Tenant) -> None:
        """Disable the realm: nobody can log in or refresh a token until :meth:`resume`."""
        await self.admin.set_realm_enabled(tenant.slug, False)

    async def resume(self, tenant: _Tenant) -> None:
        """Enable the realm again."""
        await self.admin.set_realm_enabled(tenant.slug, True)

    async def delete(self, tenant: _Tenant) -> None:
        """Delete the realm with its users and clients (nothing if it does not exist)."""
        await self.admin.delete_realm(tenant.slug)


@attrs.frozen(kw_only=True)
class RealmOutcome:
    """What reconciling one tenant's realm did.

    ``result``: ``created`` / ``updated`` / ``unchanged`` (the tenant's realm), ``deleted`` (a
    realm without a tenant, with ``--prune``), ``skipped`` (the tenant is being provisioned or
    deleted: its lifecycle owns the realm) or ``failed`` (``error`` says why).
    """

    tenant: str
    realm: str
    status: str
    result: Literal["created", "updated", "unchanged", "deleted", "skipped", "failed"]
    changes: tuple[str, ...] = ()
    error: str | None = None


async def _reconcile_one(admin: IdentityAdmin, tenant: TenantInfo, realm: str) -> RealmOutcome:
    if tenant.status not in ("active", "suspended"):
        return RealmOutcome(tenant=tenant.slug, realm=realm, status=tenant.status, result="skipped")
    try:
        report = await admin.reconcile_realm(tenant.slug)
        enabled = tenant.status == "active"
        toggled = await admin.set_realm_enabled(tenant.slug, enabled)
    except PlexicaError as exc:
        return RealmOutcome(tenant=tenant.slug, realm=realm, status=tenant.status, result="failed", error=str(exc))
    changes = (*report.changes, *([f"realm {'enabled' if enabled else 'disabled'}"] if toggled else []))
    result: Literal["created", "updated", "unchanged"] = (
        "created" if report.created else "updated" if changes else "unchanged"
    )
    return RealmOutcome(tenant=tenant.slug, realm=realm, status=tenant.status, result=result, changes=changes)


async def _prune_one(admin: IdentityAdmin, slug: str, realm: str) -> RealmOutcome:
    try:
        await admin.delete_realm(slug)
    except PlexicaError as exc:
        return RealmOutcome(tenant=slug, realm=realm, status="none", result="failed", error=str(exc))
    return RealmOutcome(tenant=slug, realm=realm, status="none", result="deleted")


async def reconcile_realms(
    admin: IdentityAdmin,
    tenants: Sequence[TenantInfo],
    *,
    realm_name: Callable[[str], str],
    prune: bool = False,
    only: Collection[str] | None = None,
    concurrency: int = 4,
) -> list[RealmOutcome]:
    """Re-apply the realm template to every active or suspended tenant's realm.

    A missing realm is created (without a first administrator: that belongs to provisioning);
    active tenants' realms are enabled and suspended tenants' realms disabled. With ``prune``,
    realms named by the template whose tenant is not in ``tenants`` (deleted, or left behind by a
    provisioning that crashed before it could undo) are deleted. One tenant's failure is reported
    in its outcome and does not stop the others.

    Args:
        admin: the identity server's admin interface.
        tenants: the registry's tenants (not deleted).
        realm_name: the realm of a tenant slug.
        prune: also delete realms that belong to no tenant.
        only: restrict everything to these tenant slugs.
        concurrency: realms worked on at once.

    Raises:
        BackendUnavailableError: with ``prune``, the realms could not be listed.
        IdentityAdminError: with ``prune``, the identity server refused to list the realms.
    """
    selected = [tenant for tenant in tenants if only is None or tenant.slug in only]
    orphans: list[str] = []
    if prune:
        known = {tenant.slug for tenant in tenants}
        orphans = [slug for slug in await admin.tenant_realms() if slug not in known and (only is None or slug in only)]
    limit = asyncio.Semaphore(concurrency)

    async def reconcile(tenant: TenantInfo) -> RealmOutcome:
        async with limit:
            return await _reconcile_one(admin, tenant, realm_name(tenant.slug))

    async def remove(slug: str) -> RealmOutcome:
        async with limit:
            return await _prune_one(admin, slug, realm_name(slug))

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(reconcile(tenant)) for tenant in selected]
        tasks += [group.create_task(remove(slug)) for slug in orphans]
    return sorted((task.result() for task in tasks), key=lambda outcome: outcome.tenant)
