"""RealmStep, reconcile_realms and the realm plugin's wiring, over an in-memory identity admin."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import attrs
import pytest

from plexica.identity.keycloak import AdminUser, IdentityAdminError, RealmReport
from plexica.identity.realm_plugin import PLUGIN_NAME, RealmPlugin, build_realm_plugin
from plexica.identity.realms import RealmStep, first_admin_from_settings, reconcile_realms
from plexica.platform import Platform
from plexica.settings import KeycloakSettings, Settings, load_settings
from plexica_sdk.errors import BackendUnavailableError
from plexica_sdk.types import TenantContext, TenantInfo

pytestmark = pytest.mark.anyio


@attrs.define(slots=False)
class MemoryIdentityAdmin:
    """Realms as a dict: slug → enabled. ``fail_on`` makes one operation fail for one slug."""

    realms: dict[str, bool] = attrs.Factory(dict)
    users: dict[str, AdminUser | None] = attrs.Factory(dict)
    fail_on: tuple[str, str] | None = None
    hang_on: tuple[str, str] | None = None
    calls: list[tuple[str, str]] = attrs.Factory(list)

    async def _enter(self, operation: str, slug: str) -> None:
        self.calls.append((operation, slug))
        if self.hang_on == (operation, slug):
            await asyncio.sleep(3600)
        if self.fail_on == (operation, slug):
            raise IdentityAdminError(f"refused to {operation} {slug}", realm=f"tenant-{slug}")

    async def ensure_realm(self, slug: str, admin_user: AdminUser | None) -> RealmReport:
        created = slug not in self.realms
        self.realms[slug] = True  # the realm exists before the user is made, as in Keycloak
        await self._enter("ensure", slug)
        self.users[slug] = admin_user
        return RealmReport(realm=f"tenant-{slug}", created=created)

    async def set_realm_enabled(self, slug: str, enabled: bool) -> bool:
        await self._enter("enable" if enabled else "disable", slug)
        if slug not in self.realms:
            raise IdentityAdminError(f"realm tenant-{slug} does not exist", status=404)
        changed = self.realms[slug] is not enabled
        self.realms[slug] = enabled
        return changed

    async def delete_realm(self, slug: str) -> bool:
        await self._enter("delete", slug)
        return self.realms.pop(slug, None) is not None

    async def reconcile_realm(self, slug: str) -> RealmReport:
        await self._enter("reconcile", slug)
        created = slug not in self.realms
        self.realms.setdefault(slug, True)
        return RealmReport(realm=f"tenant-{slug}", created=created)

    async def realm_exists(self, slug: str) -> bool:
        return slug in self.realms

    async def tenant_realms(self) -> list[str]:
        return sorted(self.realms)


def tenant(slug: str, status: Any = "active") -> TenantInfo:
    return TenantInfo(id=f"id-{slug}", slug=slug, name=slug, status=status, schema=f"tenant_{slug}")


def ctx(slug: str) -> TenantContext:
    return TenantContext(tenant_id=f"id-{slug}", slug=slug, schema=f"tenant_{slug}")


# ------------------------------------------------------------------------------ RealmStep


async def test_apply_creates_the_realm_with_the_first_admin() -> None:
    admin = MemoryIdentityAdmin()
    step = RealmStep(admin, first_admin=lambda slug: AdminUser(username="boss", email=f"boss@{slug}.test"))
    report = await step.apply(ctx("acme"))
    assert report.created and admin.realms == {"acme": True}
    first = admin.users["acme"]
    assert first is not None and first.username == "boss" and first.email == "boss@acme.test"


async def test_a_failed_apply_deletes_the_half_made_realm_and_reraises() -> None:
    admin = MemoryIdentityAdmin(fail_on=("ensure", "acme"))
    with pytest.raises(IdentityAdminError, match="refused to ensure acme"):
        await RealmStep(admin).apply(ctx("acme"))
    assert admin.realms == {}
    assert admin.calls[-1] == ("delete", "acme")


async def test_a_cancelled_apply_still_deletes_the_half_made_realm() -> None:
    admin = MemoryIdentityAdmin(hang_on=("ensure", "acme"))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):  # what a hook timeout does to the step
            await RealmStep(admin).apply(ctx("acme"))
    assert admin.realms == {}


async def test_the_original_error_wins_when_the_cleanup_fails_too(caplog: pytest.LogCaptureFixture) -> None:
    class Unreachable(MemoryIdentityAdmin):
        async def delete_realm(self, slug: str) -> bool:
            raise BackendUnavailableError("identity", "down")

    admin = Unreachable(fail_on=("ensure", "acme"))
    with pytest.raises(IdentityAdminError):
        await RealmStep(admin).apply(ctx("acme"))
    assert "could not delete the realm" in caplog.text


async def test_suspend_resume_and_delete_map_to_realm_operations() -> None:
    admin = MemoryIdentityAdmin(realms={"acme": True})
    step = RealmStep(admin)
    await step.suspend(ctx("acme"))
    assert admin.realms == {"acme": False}
    await step.resume(ctx("acme"))
    assert admin.realms == {"acme": True}
    await step.delete(ctx("acme"))
    await step.undo(ctx("acme"))  # idempotent: deleting twice is fine
    assert admin.realms == {}


def test_first_admin_from_settings_fills_in_the_slug() -> None:
    settings = KeycloakSettings(
        url="http://kc.test", first_admin_username="owner", first_admin_email="owner@{slug}.test"
    )
    first = first_admin_from_settings(settings)("acme")
    assert (first.username, first.email, first.password, first.temporary) == ("owner", "owner@acme.test", None, True)
    assert first_admin_from_settings(KeycloakSettings(url="http://kc.test"))("acme").email is None


def test_admin_users_keep_passwords_and_emails_out_of_their_repr() -> None:
    shown = repr(AdminUser(username="boss", email="boss@acme.test", password="s3cret"))
    assert "s3cret" not in shown and "boss@acme.test" not in shown


# ------------------------------------------------------------------------- reconcile


def realm_name(slug: str) -> str:
    return f"tenant-{slug}"


async def test_reconcile_follows_each_tenants_status() -> None:
    admin = MemoryIdentityAdmin(realms={"active-one": False, "paused": True})
    tenants = [tenant("active-one"), tenant("paused", "suspended"), tenant("new-one")]
    tenants.append(tenant("mid-way", "provisioning"))
    outcomes = {o.tenant: o for o in await reconcile_realms(admin, tenants, realm_name=realm_name)}
    assert admin.realms == {"active-one": True, "paused": False, "new-one": True}
    assert outcomes["active-one"].result == "updated" and outcomes["active-one"].changes == ("realm enabled",)
    assert outcomes["paused"].result == "updated" and outcomes["paused"].changes == ("realm disabled",)
    assert outcomes["new-one"].result == "created"
    assert outcomes["mid-way"].result == "skipped" and ("reconcile", "mid-way") not in admin.calls
    again = await reconcile_realms(admin, tenants, realm_name=realm_name)
    assert [o.result for o in again] == ["unchanged", "skipped", "unchanged", "unchanged"]


async def test_one_failing_realm_does_not_stop_the_others() -> None:
    admin = MemoryIdentityAdmin(realms={"good": True, "bad": True}, fail_on=("reconcile", "bad"))
    outcomes = await reconcile_realms(admin, [tenant("good"), tenant("bad")], realm_name=realm_name)
    assert [(o.tenant, o.result) for o in outcomes] == [("bad", "failed"), ("good", "unchanged")]
    assert outcomes[0].error == "refused to reconcile bad"


async def test_prune_deletes_only_realms_without_a_tenant() -> None:
    admin = MemoryIdentityAdmin(realms={"kept": True, "orphan": True, "other-orphan": True})
    tenants = [tenant("kept"), tenant("mid-way", "provisioning")]
    outcomes = await reconcile_realms(admin, tenants, realm_name=realm_name, prune=True, only={"kept", "orphan"})
    assert [(o.tenant, o.result) for o in outcomes] == [("kept", "unchanged"), ("orphan", "deleted")]
    assert sorted(admin.realms) == ["kept", "other-orphan"]  # outside `only`: left alone
    unpruned = await reconcile_realms(admin, tenants, realm_name=realm_name)
    assert "other-orphan" not in {o.tenant for o in unpruned}


# ---------------------------------------------------------------------------- wiring


def settings(tmp_path: Path, **keycloak: Any) -> Settings:
    auth = {"keycloak": {"url": "http://127.0.0.1:1", **keycloak}} if keycloak else {}
    return load_settings(environ={}, data_dir=str(tmp_path), load_entry_points=False, auth=auth)


@pytest.mark.parametrize(
    "keycloak",
    [{}, {"admin_username": "admin"}, {"admin_password": "x"}],
    ids=["no-keycloak", "no-password", "no-username"],
)
def test_no_realm_plugin_without_admin_credentials(tmp_path: Path, keycloak: dict[str, str]) -> None:
    assert build_realm_plugin(settings(tmp_path, **keycloak) if keycloak else settings(tmp_path)) is None
    assert Platform(settings(tmp_path)).plugins.get(PLUGIN_NAME) is None


def test_no_realm_plugin_when_tenants_share_one_realm(tmp_path: Path) -> None:
    shared = settings(tmp_path, admin_username="admin", admin_password="x", strategy="organizations")
    assert build_realm_plugin(shared) is None


def test_the_platform_registers_the_realm_plugin_with_admin_credentials(tmp_path: Path) -> None:
    platform = Platform(settings(tmp_path, admin_username="admin", admin_password="pa55-word"))
    loaded = platform.plugins.get(PLUGIN_NAME)
    assert loaded is not None and isinstance(loaded.obj, RealmPlugin)
    assert "pa55-word" not in repr(platform.settings.auth.keycloak)
