"""The permission engine over HTTP and the CLI: checks, explanations, roles, grants, policies."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from plexica.cli.main import main
from tests.e2e.conftest import Host
from tests.e2e.test_kernel import assert_problem

pytestmark = pytest.mark.anyio

API = "/api/core/v1"


def headers(host: Host, user: str, roles: tuple[str, ...] = ("member",), tenant: str = "acme") -> dict[str, str]:
    return host.auth(host.token(tenant, user=user, roles=roles))


async def test_anyone_checks_their_own_permissions(host: Host) -> None:
    ann = headers(host, "ann")
    read = await host.client.post(f"{API}/permissions/check", json={"permission": "notes:note:read"}, headers=ann)
    assert read.status_code == 200 and read.json() == {"permission": "notes:note:read", "allowed": True}
    write = await host.client.post(f"{API}/permissions/check", json={"permission": "notes:note:write"}, headers=ann)
    assert write.json()["allowed"] is False
    explained = await host.client.post(
        f"{API}/permissions/explain", json={"permission": "notes:note:read"}, headers=ann
    )
    body = explained.json()
    assert (body["allowed"], body["decided_by"], body["granted_by"]) == (
        True,
        "role:member",
        ["member", "notes:note:read"],
    )
    assert {"role": "member", "workspace_id": None, "source": "token"} in body["roles"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"permission": "notes:*"}, "permission"),
        ({"permission": 3}, "permission"),
        ({"permission": "notes:note:read", "resource": [1]}, "resource"),
        ({"permission": "notes:note:read", "user_id": 7}, "user_id"),
    ],
    ids=["wildcard", "not-a-string", "resource-not-an-object", "user-not-a-string"],
)
async def test_bad_questions_are_422_naming_the_field(host: Host, payload: dict[str, Any], field: str) -> None:
    response = await host.client.post(f"{API}/permissions/check", json=payload, headers=headers(host, "ann"))
    assert assert_problem(response, 422)["errors"][0]["field"] == field


async def test_only_inspectors_ask_about_other_users(host: Host) -> None:
    question = {"permission": "notes:note:read", "user_id": "bob"}
    denied = await host.client.post(f"{API}/permissions/explain", json=question, headers=headers(host, "ann"))
    assert "core:permission:inspect" not in json.dumps(assert_problem(denied, 403))
    admin = headers(host, "root", ("tenant_admin",))
    answer = await host.client.post(f"{API}/permissions/explain", json=question, headers=admin)
    assert answer.status_code == 200
    assert (answer.json()["user_id"], answer.json()["allowed"]) == ("bob", False)  # bob's token roles are unknown
    own = await host.client.post(
        f"{API}/permissions/check", json={**question, "user_id": "ann"}, headers=headers(host, "ann")
    )
    assert own.json()["allowed"] is True  # asking about oneself needs nothing


async def test_a_role_granted_through_the_api_works_at_once_and_its_revocation_too(host: Host) -> None:
    admin = headers(host, "root", ("tenant_admin",))
    bob = headers(host, "bob")
    created = await host.client.post(
        f"{API}/roles", json={"name": "note-writer", "permissions": ["notes:note:write"]}, headers=admin
    )
    assert created.status_code == 201 and created.json()["kind"] == "custom"
    assert_problem(await host.client.post("/api/plugins/notes/notes", json={"title": "x"}, headers=bob), 403)

    granted = await host.client.post(f"{API}/roles/note-writer/grants", json={"user_id": "bob"}, headers=admin)
    assert granted.status_code == 201 and granted.json()["created_by"] == "root"
    assert (await host.client.post("/api/plugins/notes/notes", json={"title": "x"}, headers=bob)).status_code == 201
    listed = await host.client.get(f"{API}/roles/note-writer/grants", headers=admin)
    assert [g["subject_id"] for g in listed.json()["items"]] == ["bob"]

    revoked = await host.client.delete(f"{API}/roles/note-writer/grants/{granted.json()['id']}", headers=admin)
    assert revoked.status_code == 204
    assert_problem(await host.client.post("/api/plugins/notes/notes", json={"title": "y"}, headers=bob), 403)
    assert_problem(await host.client.delete(f"{API}/roles/note-writer/grants/nope", headers=admin), 404)

    # Tenant isolation: globex has no such role, and its bob is not acme's bob.
    globex_admin = headers(host, "root", ("tenant_admin",), tenant="globex")
    assert_problem(await host.client.get(f"{API}/roles/note-writer", headers=globex_admin), 404)


async def test_roles_are_listed_for_role_readers_only(host: Host) -> None:
    assert_problem(await host.client.get(f"{API}/roles", headers=headers(host, "ann")), 403)
    listed = await host.client.get(f"{API}/roles", headers=headers(host, "root", ("tenant_admin",)))
    kinds = {role["name"]: role["kind"] for role in listed.json()["items"]}
    assert kinds["tenant_admin"] == "system" and kinds["notes-editor"] == "plugin"
    admin = headers(host, "root", ("tenant_admin",))
    assert_problem(await host.client.delete(f"{API}/roles/member", headers=admin), 409)
    bad = await host.client.post(f"{API}/roles", json={"name": "x-y", "permissions": ["nope"]}, headers=admin)
    assert assert_problem(bad, 422)["errors"][0]["field"] == "permissions[0]"


async def test_policies_through_the_api(host: Host, caplog: pytest.LogCaptureFixture) -> None:
    admin = headers(host, "root", ("tenant_admin",))
    editor = headers(host, "eve", ("member", "notes-editor"))
    no_eve = {
        "id": "no-eve",
        "effect": "deny",
        "target": "notes:note:write",
        "condition": {"attribute": "subject.id", "operator": "equals", "value": "eve"},
    }
    created = await host.client.post(f"{API}/policies", json=no_eve, headers=admin)
    assert created.status_code == 201 and created.json()["source"] == "tenant"
    with caplog.at_level(logging.INFO, logger="plexica.permissions.decisions"):
        refused = await host.client.post("/api/plugins/notes/notes", json={"title": "x"}, headers=editor)
    assert "notes:note:write" not in json.dumps(assert_problem(refused, 403))
    logged = [r for r in caplog.records if r.name == "plexica.permissions.decisions"]
    assert logged and logged[-1].__dict__["permission"] == "notes:note:write"
    assert logged[-1].__dict__["decided_by"] == "policy:no-eve"

    updated = await host.client.put(
        f"{API}/policies/no-eve", json={**no_eve, "condition": {"not": no_eve["condition"]}}, headers=admin
    )
    assert updated.status_code == 200
    assert (await host.client.post("/api/plugins/notes/notes", json={"title": "x"}, headers=editor)).status_code == 201
    assert (await host.client.delete(f"{API}/policies/no-eve", headers=admin)).status_code == 204
    assert (await host.client.get(f"{API}/policies", headers=admin)).json()["items"] == []
    assert_problem(await host.client.get(f"{API}/policies", headers=editor), 403)


def deep(levels: int) -> dict[str, Any]:
    node: dict[str, Any] = {"attribute": "subject.id", "operator": "exists"}
    for _ in range(levels - 1):
        node = {"not": node}
    return node


@pytest.mark.parametrize(
    ("condition", "field"),
    [
        ({"all": [{"attribute": "subject.id", "operator": "matches", "value": "x"}]}, "condition.all[0].operator"),
        (deep(6), "condition" + ".not" * 5),
        ({"any": [{"attribute": "subject.id", "operator": "exists"}] * 51}, "condition.any[50]"),
        ({"attribute": "subject.id", "operator": "in", "value": ["x" * 1000] * 70}, "condition"),
    ],
    ids=["operator", "too-deep", "too-many-leaves", "too-large"],
)
async def test_invalid_policies_are_422_naming_the_path(host: Host, condition: dict[str, Any], field: str) -> None:
    policy = {"id": "bad", "effect": "deny", "target": "notes:*", "condition": condition}
    response = await host.client.post(f"{API}/policies", json=policy, headers=headers(host, "root", ("tenant_admin",)))
    assert assert_problem(response, 422)["errors"][0]["field"] == field


# ----------------------------------------------------------------------- CLI


def test_the_cli_manages_roles_grants_and_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], anyio_backend: str
) -> None:
    settings = tmp_path / "plexica.toml"
    settings.write_text(f'environment = "test"\ndata_dir = "{tmp_path / "data"}"\nload_entry_points = false\n')

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(["--settings", str(settings), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    assert run("tenants", "create", "acme")[0] == 0
    code, out, _ = run("permissions", "roles", "create", "auditor", "-p", "core:*", "--tenant", "acme")
    assert code == 0 and "created role auditor" in out
    code, out, _ = run("permissions", "roles", "list", "--tenant", "acme", "--json")
    assert {r["name"]: r["kind"] for r in json.loads(out)}["auditor"] == "custom"
    assert run("permissions", "grant", "auditor", "--user", "bob", "--tenant", "acme")[0] == 0
    code, out, _ = run("permissions", "grants", "--tenant", "acme", "--json")
    assert [(g["role"], g["subject_id"]) for g in json.loads(out)] == [("auditor", "bob")]
    code, out, _ = run("permissions", "explain", "core:tenant:read", "--user", "bob", "--tenant", "acme")
    assert json.loads(out)["decided_by"] == "role:auditor"

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"id": "lock", "effect": "deny", "target": "core:*"}))
    assert run("permissions", "policies", "create", str(policy), "--tenant", "acme")[0] == 0
    code, out, _ = run("permissions", "explain", "core:tenant:read", "--user", "bob", "--tenant", "acme")
    assert json.loads(out)["decided_by"] == "policy:lock"
    policy.write_text(json.dumps({"id": "lock", "effect": "deny", "target": "core:user:*"}))
    assert run("permissions", "policies", "update", "lock", str(policy), "--tenant", "acme")[0] == 0
    code, out, _ = run("permissions", "policies", "list", "--tenant", "acme")
    assert json.loads(out)[0]["target"] == "core:user:*"

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "effect": "deny", "target": "*", "condition": {"all": [{"op": 1}]}}]))
    code, _, err = run("permissions", "policies", "create", str(bad), "--tenant", "acme")
    assert code == 1 and "condition.all[0]: unknown key" in err
    bad.write_text(json.dumps([{"id": "x", "effect": "sometimes", "target": "*"}]))
    code, _, err = run("permissions", "policies", "create", str(bad), "--tenant", "acme")
    assert code == 1 and "effect" in err

    assert run("permissions", "policies", "delete", "lock", "--tenant", "acme")[0] == 0
    assert run("permissions", "revoke", "auditor", "--user", "bob", "--tenant", "acme")[0] == 0
    code, _, err = run("permissions", "grant", "auditor", "--tenant", "acme")
    assert code != 0 and "--user" in err
    assert run("permissions", "roles", "delete", "auditor", "--tenant", "acme")[0] == 0


async def test_team_and_user_changes_reach_the_permission_cache_at_once(host: Host) -> None:
    admin = headers(host, "root", ("tenant_admin",))
    carol = headers(host, "carol")
    await host.client.get(f"{API}/me", headers=carol)  # carol's profile exists from her first request
    team = await host.client.post(f"{API}/teams", json={"name": "Writers"}, headers=admin)
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]
    role = await host.client.post(
        f"{API}/roles", json={"name": "team-writer", "permissions": ["notes:note:write"]}, headers=admin
    )
    assert role.status_code == 201, role.text
    grant = await host.client.post(f"{API}/roles/team-writer/grants", json={"team_id": team_id}, headers=admin)
    assert grant.status_code == 201, grant.text

    # Warm carol's cached permissions while she is outside the team.
    assert_problem(await host.client.post("/api/plugins/notes/notes", json={"title": "x"}, headers=carol), 403)
    joined = await host.client.post(f"{API}/teams/{team_id}/members", json={"user_id": "carol"}, headers=admin)
    assert joined.status_code in (200, 201, 204), joined.text
    assert (await host.client.post("/api/plugins/notes/notes", json={"title": "x"}, headers=carol)).status_code == 201

    left = await host.client.delete(f"{API}/teams/{team_id}/members/carol", headers=admin)
    assert left.status_code == 204, left.text
    assert_problem(await host.client.post("/api/plugins/notes/notes", json={"title": "y"}, headers=carol), 403)
