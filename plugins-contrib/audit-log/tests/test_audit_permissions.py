"""Who may read, export and purge the trail: the roles over HTTP, and the same rules as a policy table."""

from __future__ import annotations

import pytest
from audit_support import assert_problem
from plexica_plugin_audit_log import AuditLogPlugin

from plexica_sdk.testing import PolicyCase, PolicySubject, ProvisionedTenant, RunningHost, policy_table

pytestmark = pytest.mark.anyio

member = PolicySubject(id="ann", roles=("member",))
auditor = PolicySubject(id="aud", roles=("auditor",))
admin = PolicySubject(id="root", roles=("tenant_admin",))

test_default_roles = policy_table(
    AuditLogPlugin(),
    [
        PolicyCase(member, "audit-log:entry:read", expected=False, id="member-cannot-read"),
        PolicyCase(auditor, "audit-log:entry:read", expected=True, id="auditor-reads"),
        PolicyCase(auditor, "audit-log:entry:export", expected=True, id="auditor-exports"),
        PolicyCase(auditor, "audit-log:entry:purge", expected=False, id="auditor-cannot-purge"),
        PolicyCase(admin, "audit-log:entry:purge", expected=True, id="admin-purges"),
    ],
)


@pytest.mark.parametrize(
    ("method", "path", "roles", "status"),
    [
        ("GET", "/entries", ("member",), 403),
        ("GET", "/export", ("member",), 403),
        ("POST", "/purge", ("member",), 403),
        ("POST", "/purge", ("auditor",), 403),
        ("GET", "/entries", ("auditor",), 200),
        ("GET", "/export", ("auditor",), 200),
        ("GET", "/entries", ("tenant_admin",), 200),
        ("POST", "/purge", ("tenant_admin",), 200),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, tuple) else str(value),
)
async def test_routes_need_their_permission(
    plexica_host: RunningHost, tenant: ProvisionedTenant, method: str, path: str, roles: tuple[str, ...], status: int
) -> None:
    response = await plexica_host.client.request(method, plexica_host.url(path), headers=tenant.headers("u", roles))
    if status == 403:
        assert_problem(response, 403)
    else:
        assert response.status_code == status, response.text


async def test_reading_without_a_token_is_a_401_problem(plexica_host: RunningHost, tenant: ProvisionedTenant) -> None:
    response = await plexica_host.client.get(plexica_host.url("/entries"), headers={"X-Tenant-ID": tenant.slug})
    assert_problem(response, 401)
