"""Decisions over a compiled model: roles in effect, workspaces, deny overrides, explanations."""

from __future__ import annotations

from typing import Any

from plexica.permissions.abac import compile_policy
from plexica.permissions.decision import Grants, Subject, TenantModel
from plexica.permissions.rbac import ADMIN_ROLE, WORKSPACE_ADMIN_ROLE, WORKSPACE_VIEWER_ROLE
from plexica_sdk.types import Policy

ROLES = {
    "member": ["notes:note:read"],
    "editor": ["notes:note:*"],
    WORKSPACE_VIEWER_ROLE: ["tasks:task:read"],
    WORKSPACE_ADMIN_ROLE: ["tasks:*"],
}
OWN_NOTES = Policy(
    id="authors-edit-own",
    effect="allow",
    target="notes:note:write",
    condition={"attribute": "resource.author_id", "operator": "equals", "value": {"ref": "subject.id"}},
)
LOCKED = Policy(
    id="locked",
    effect="deny",
    target="notes:*",
    condition={"attribute": "resource.locked", "operator": "equals", "value": True},
)


def subject(*policies: Policy, token_roles: tuple[str, ...] = ("member",), **grants: Any) -> Subject:
    model = TenantModel(ROLES, [compile_policy(p) for p in policies])
    return Subject(model, "ann", token_roles=token_roles, grants=Grants.build("ann", **grants), workspace_id="ws-1")


def test_a_role_grants_and_the_decision_names_it() -> None:
    decision = subject().authorize("notes:note:read")
    assert (decision.allowed, decision.decided_by, decision.reason) == (
        True,
        "role:member",
        "role member grants notes:note:read",
    )


def test_nothing_granted_is_denied_without_a_decider() -> None:
    decision = subject().authorize("notes:note:write")
    assert not decision.allowed and decision.decided_by is None


def test_malformed_keys_are_denied() -> None:
    assert not subject(token_roles=(ADMIN_ROLE,)).authorize("notes:*").allowed
    assert not subject(token_roles=(ADMIN_ROLE,)).authorize("notes:note:read\n").allowed


def test_workspace_grants_apply_in_their_workspace_only() -> None:
    s = subject(grants=[("editor", "ws-2", "user")])
    assert not s.authorize("notes:note:write").allowed  # the request is in ws-1
    assert s.authorize("notes:note:write", {"workspace_id": "ws-2"}).allowed
    assert not s.authorize("notes:note:write", {"workspace_id": "ws-3"}).allowed


def test_workspace_membership_roles_are_hierarchical() -> None:
    admin = subject(memberships={"ws-1": "admin"})
    assert admin.authorize("tasks:task:delete").decided_by == f"role:{WORKSPACE_ADMIN_ROLE}"
    assert admin.authorize("tasks:task:read").allowed  # the admin also holds viewer's grants
    viewer = subject(memberships={"ws-1": "viewer"})
    assert viewer.authorize("tasks:task:read").allowed
    assert not viewer.authorize("tasks:task:delete").allowed
    assert not viewer.authorize("tasks:task:read", {"workspace_id": "ws-9"}).allowed


def test_team_grants_count() -> None:
    s = subject(teams=["t1"], grants=[("editor", None, "team:t1")])
    assert s.authorize("notes:note:write").allowed
    assert s.authorize("notes:note:write").decided_by == "role:editor"


def test_a_policy_adds_a_conditional_grant() -> None:
    s = subject(OWN_NOTES)
    assert s.authorize("notes:note:write", {"author_id": "ann"}).decided_by == "policy:authors-edit-own"
    assert not s.authorize("notes:note:write", {"author_id": "bob"}).allowed
    assert not s.authorize("notes:note:write").allowed


def test_deny_overrides_every_allow_even_tenant_admin() -> None:
    s = subject(OWN_NOTES, LOCKED, token_roles=(ADMIN_ROLE,))
    decision = s.authorize("notes:note:write", {"author_id": "ann", "locked": True})
    assert (decision.allowed, decision.decided_by) == (False, "policy:locked")
    assert s.authorize("notes:note:write", {"author_id": "ann", "locked": False}).allowed


def test_an_evaluation_error_denies_even_when_a_role_grants() -> None:
    sized = Policy(
        id="small",
        effect="allow",
        target="notes:*",
        condition={"attribute": "resource.size", "operator": "lt", "value": 3},
    )
    s = subject(sized, token_roles=("editor",))
    decision = s.authorize("notes:note:read", {"size": "large"})
    assert (decision.allowed, decision.decided_by) == (False, "policy:small")
    assert s.authorize("notes:note:read", {"size": 10}).allowed  # the role grants; the policy just doesn't add


def test_policy_attributes_cover_subject_tenant_action_and_environment() -> None:
    condition = {
        "all": [
            {"attribute": "tenant.plan", "operator": "equals", "value": "pro"},
            {"attribute": "action", "operator": "starts_with", "value": "notes:"},
            {"attribute": "environment.hour", "operator": "lt", "value": 18},
            {"attribute": "subject.teams", "operator": "contains", "value": "night"},
        ]
    }
    model = TenantModel(ROLES, [compile_policy(Policy(id="p", effect="allow", target="*", condition=condition))])
    grants = Grants.build("ann", teams=["night"])
    s = Subject(model, "ann", grants=grants, tenant={"plan": "pro"}, environment={"hour": 9})
    assert s.authorize("notes:note:write").decided_by == "policy:p"
    late = Subject(model, "ann", grants=grants, tenant={"plan": "pro"}, environment={"hour": 20})
    assert not late.authorize("notes:note:write").allowed


def test_explain_agrees_and_shows_its_working() -> None:
    s = subject(OWN_NOTES, LOCKED, teams=["t1"], grants=[("editor", "ws-1", "team:t1")])
    resource = {"author_id": "ann", "locked": True, "workspace_id": "ws-1"}
    explanation = s.explain("notes:note:write", resource)
    assert explanation.decision == s.authorize("notes:note:write", resource)
    assert explanation.granted_by == ("editor", "notes:note:*")
    assert {(r.role, r.source) for r in explanation.roles} == {("member", "token"), ("editor", "team:t1")}
    assert [(p.id, p.outcome) for p in explanation.policies] == [("locked", "holds"), ("authors-edit-own", "holds")]


def test_grants_survive_their_json_form() -> None:
    grants = Grants.build("ann", teams=["t"], grants=[("editor", None, "user")], memberships={"ws": "member"})
    assert Grants.from_json(grants.to_json()) == grants
