"""Who may do what with notes: the default roles over HTTP, and the same rules as a policy table."""

from __future__ import annotations

import httpx2
import pytest
from plexica_plugin_notes import NotesPlugin

from plexica_sdk.testing import PolicyCase, PolicySubject, ProvisionedTenant, RunningHost, policy_table

pytestmark = pytest.mark.anyio

member = PolicySubject(id="ann", roles=("member",))
editor = PolicySubject(id="bob", roles=("notes-editor",))
nobody = PolicySubject(id="eve", roles=())

test_default_roles = policy_table(
    NotesPlugin(),
    [
        PolicyCase(member, "notes:note:read", expected=True, id="member-reads"),
        PolicyCase(member, "notes:note:write", expected=False, id="member-cannot-write"),
        PolicyCase(editor, "notes:note:write", expected=True, id="editor-writes"),
        PolicyCase(editor, "notes:note:read", expected=True, id="editor-reads"),
        PolicyCase(nobody, "notes:note:read", expected=False, id="no-role-no-read"),
    ],
)


@pytest.mark.parametrize(
    ("roles", "status"),
    [(("member",), 403), (("member", "notes-editor"), 201)],
    ids=["member-is-refused", "editor-creates"],
)
async def test_creating_a_note_needs_the_editor_role(
    plexica_host: RunningHost,
    client: httpx2.AsyncClient,
    tenant: ProvisionedTenant,
    roles: tuple[str, ...],
    status: int,
) -> None:
    response = await client.post(plexica_host.url("/notes"), json={"title": "t"}, headers=tenant.headers(roles=roles))
    assert response.status_code == status, response.text


async def test_reading_without_a_token_is_401(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant
) -> None:
    response = await client.get(plexica_host.url("/notes"), headers={"X-Tenant-ID": tenant.slug})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_token_for_names_user_roles_and_tenant(
    plexica_host: RunningHost,
    client: httpx2.AsyncClient,
    two_tenants: tuple[ProvisionedTenant, ProvisionedTenant],
    token_for: object,
) -> None:
    a, b = two_tenants
    token = plexica_host.token_for("carol", ["member", "notes-editor"], b)
    created = await client.post(
        plexica_host.url("/notes"), json={"title": "b's"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201 and created.json()["author_id"] == "carol"
    in_a = (await client.get(plexica_host.url("/notes"), headers=a.headers())).json()["items"]
    assert created.json()["id"] not in [item["id"] for item in in_a]
