"""Decisions: a tenant's compiled model, a subject's grants, and ``authorize``/``explain`` over them.

The rule, for a permission key and an optional resource:

1. An applicable policy (its target matches the key) that meets an evaluation error denies.
2. An applicable ``deny`` policy whose condition holds denies (deny overrides allow).
3. A role in effect whose patterns match the key allows. The roles in effect are the tenant-wide
   ones (token roles, grants to the user and to their teams) plus those held in the workspace of
   the check: ``resource["workspace_id"]`` when the resource has one, else the request's.
4. An applicable ``allow`` policy whose condition holds allows (a conditional grant).
5. Otherwise deny.

Pure: no IO. :mod:`plexica.permissions.filtering` turns the same rule into SQL.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, final

import attrs

from plexica.permissions.abac import CompiledPolicy
from plexica.permissions.rbac import ADMIN_ROLE, WORKSPACE_ROLES, PatternSet, is_permission_key, matches
from plexica_sdk.types import Decision

__all__ = ["Explanation", "Grants", "PolicyOutcome", "RoleGrant", "Subject", "TenantModel"]

NO_GRANT: Final = "no role or policy grants this permission"


@attrs.frozen
class RoleGrant:
    """One role a subject holds: where (None: tenant-wide) and why (``token``, ``user``, ``team:<id>``,
    ``membership:<admin|member|viewer>``)."""

    role: str
    workspace_id: str | None
    source: str


def _str_set(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


def _grant_tuple(values: Iterable[RoleGrant]) -> tuple[RoleGrant, ...]:
    return tuple(values)


@final
@attrs.frozen(kw_only=True)
class Grants:
    """Everything the database says about a user's roles; what the cache stores per user."""

    user_id: str
    teams: frozenset[str] = attrs.field(default=frozenset(), converter=_str_set)
    roles: tuple[RoleGrant, ...] = attrs.field(default=(), converter=_grant_tuple)
    tenant_roles: frozenset[str] = attrs.field(init=False)
    workspace_roles: Mapping[str, frozenset[str]] = attrs.field(init=False)

    @tenant_roles.default
    def _tenant_roles(self) -> frozenset[str]:
        return frozenset(grant.role for grant in self.roles if grant.workspace_id is None)

    @workspace_roles.default
    def _workspace_roles(self) -> Mapping[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        for grant in self.roles:
            if grant.workspace_id is not None:
                found.setdefault(grant.workspace_id, set()).add(grant.role)
        return {ws: frozenset(roles) for ws, roles in found.items()}

    @classmethod
    def build(
        cls,
        user_id: str,
        *,
        teams: Iterable[str] = (),
        grants: Iterable[tuple[str, str | None, str]] = (),
        memberships: Mapping[str, str] | None = None,
    ) -> Grants:
        """Assemble grants from ``(role, workspace_id, source)`` rows and workspace memberships."""
        roles = [RoleGrant(role, ws, source) for role, ws, source in grants]
        for workspace_id, member_role in sorted((memberships or {}).items()):
            roles.extend(
                RoleGrant(role, workspace_id, f"membership:{member_role}")
                for role in WORKSPACE_ROLES.get(member_role, ())
            )
        return cls(user_id=user_id, teams=teams, roles=sorted(set(roles), key=_grant_order))

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user_id, "teams": sorted(self.teams), "roles": [attrs.astuple(g) for g in self.roles]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Grants:
        return cls(
            user_id=data["user"], teams=data["teams"], roles=[RoleGrant(r, ws, src) for r, ws, src in data["roles"]]
        )


def _grant_order(grant: RoleGrant) -> tuple[str, str, str]:
    return (grant.workspace_id or "", grant.role, grant.source)


@final
class TenantModel:
    """One tenant's roles and policies, compiled once per change of the tenant's version.

    Args:
        roles: role name → permission patterns (``tenant_admin`` always holds ``*``).
        policies: compiled policies; evaluated in id order.
        version: the tenant version this model was built at (opaque).
    """

    _PATTERN_SETS: Final = 4096

    def __init__(
        self,
        roles: Mapping[str, Iterable[str]],
        policies: Iterable[CompiledPolicy] = (),
        *,
        version: int | None = None,
    ) -> None:
        merged: dict[str, set[str]] = {ADMIN_ROLE: {"*"}}
        for name, patterns in roles.items():
            merged.setdefault(name, set()).update(patterns)
        self.roles: Mapping[str, frozenset[str]] = {name: frozenset(p) for name, p in merged.items()}
        self.policies: tuple[CompiledPolicy, ...] = tuple(sorted(policies, key=lambda p: p.id))
        self.version = version
        self._applicable: dict[str, tuple[tuple[CompiledPolicy, ...], tuple[CompiledPolicy, ...]]] = {}
        self._sets: OrderedDict[frozenset[str], PatternSet] = OrderedDict()

    def applicable(self, permission: str) -> tuple[tuple[CompiledPolicy, ...], tuple[CompiledPolicy, ...]]:
        """The ``(deny, allow)`` policies whose target matches ``permission``, in id order."""
        found = self._applicable.get(permission)
        if found is None:
            hits = [p for p in self.policies if matches(p.policy.target, permission)]
            found = (tuple(p for p in hits if p.deny), tuple(p for p in hits if not p.deny))
            if len(self._applicable) >= self._PATTERN_SETS:
                self._applicable.clear()
            self._applicable[permission] = found
        return found

    def patterns(self, roles: frozenset[str]) -> PatternSet:
        """The grants of a set of roles, built once per distinct set (bounded LRU)."""
        found = self._sets.get(roles)
        if found is None:
            found = PatternSet((role, p) for role in roles for p in self.roles.get(role, ()))
            self._sets[roles] = found
            if len(self._sets) > self._PATTERN_SETS:
                self._sets.popitem(last=False)
        return found


@attrs.frozen
class PolicyOutcome:
    """How one applicable policy came out: ``holds``, ``does-not-hold`` or ``error``."""

    id: str
    effect: str
    source: str
    outcome: Literal["holds", "does-not-hold", "error"]


@final
@attrs.frozen(kw_only=True)
class Explanation:
    """A decision with its working: the roles in effect, the deciding grant, each policy's outcome."""

    decision: Decision
    permission: str
    user_id: str
    workspace_id: str | None
    roles: tuple[RoleGrant, ...]
    granted_by: tuple[str, str] | None
    policies: tuple[PolicyOutcome, ...]


@final
class Subject:
    """A user as the engine sees them in one tenant, one request: roles, teams and attributes.

    Answers are memoized per permission and workspace when no applicable policy reads the
    resource, which makes a repeated check a dict lookup.

    Args:
        model: the tenant's compiled model.
        user_id: who.
        token_roles: roles from the user's token (tenant-wide).
        grants: roles and teams from the database.
        workspace_id: the request's workspace (``X-Workspace-ID``), if any.
        attributes: more ``subject.*`` attributes (``username``...).
        tenant: ``tenant.*`` attributes.
        environment: ``environment.*`` attributes (``time``, ``client_ip``...).
    """

    __slots__ = (
        "_attributes",
        "_memo",
        "_plain",
        "grants",
        "model",
        "tenant_roles",
        "token_roles",
        "user_id",
        "workspace_id",
    )

    def __init__(
        self,
        model: TenantModel,
        user_id: str,
        *,
        token_roles: Iterable[str] = (),
        grants: Grants | None = None,
        workspace_id: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        tenant: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.user_id = user_id
        self.grants = grants or Grants(user_id=user_id)
        self.token_roles = frozenset(token_roles)
        self.workspace_id = workspace_id
        self.tenant_roles = self.token_roles | self.grants.tenant_roles
        subject = {
            **(attributes or {}),
            "id": user_id,
            "roles": sorted(self.tenant_roles),
            "teams": sorted(self.grants.teams),
            "workspace_id": workspace_id,
        }
        self._attributes = {"subject": subject, "tenant": dict(tenant or {}), "environment": dict(environment or {})}
        self._memo: dict[tuple[str, str | None], Decision] = {}
        self._plain: dict[str, Decision] = {}  # checks without a resource

    def roles_in(self, workspace_id: str | None) -> frozenset[str]:
        """The roles in effect in a workspace (None: tenant-wide only)."""
        if workspace_id is None:
            return self.tenant_roles
        extra = self.grants.workspace_roles.get(workspace_id)
        return self.tenant_roles | extra if extra else self.tenant_roles

    def workspace_of(self, resource: Mapping[str, Any] | None) -> str | None:
        """The workspace a check happens in: the resource's, else the request's."""
        if resource is not None:
            found = resource.get("workspace_id")
            if isinstance(found, str):
                return found
        return self.workspace_id

    def attributes(self, permission: str, resource: Mapping[str, Any] | None) -> dict[str, Any]:
        """The attribute tree conditions are evaluated on."""
        return {**self._attributes, "action": permission, "resource": resource if resource is not None else {}}

    def authorize(self, permission: str, resource: Mapping[str, Any] | None = None) -> Decision:
        """Decide whether this subject may do ``permission`` (on ``resource``)."""
        if resource is None:  # the hot path: one dict lookup
            found = self._plain.get(permission)
            if found is not None:
                return found
            workspace = self.workspace_id
        else:
            workspace = self.workspace_of(resource)
        memo_key = (permission, workspace)
        found = self._memo.get(memo_key)
        if found is not None:
            return found
        if not is_permission_key(permission):
            return Decision(allowed=False, reason="not a permission key", decided_by=None)
        deny, allow = self.model.applicable(permission)
        decision = self._decide(permission, resource, workspace, deny, allow)
        if resource is None:
            self._plain[permission] = decision
        elif not any(p.uses_resource for p in deny) and not any(p.uses_resource for p in allow):
            self._memo[memo_key] = decision
        return decision

    def _decide(
        self,
        permission: str,
        resource: Mapping[str, Any] | None,
        workspace: str | None,
        deny: tuple[CompiledPolicy, ...],
        allow: tuple[CompiledPolicy, ...],
    ) -> Decision:
        attributes = self.attributes(permission, resource) if deny or allow else {}
        try:
            for policy in (*deny, *allow):
                if policy.errors(attributes):
                    return _errored(policy)
            for policy in deny:
                if policy.matches(attributes):
                    return Decision(
                        allowed=False, reason=f"policy {policy.id} denies", decided_by=f"policy:{policy.id}"
                    )
            grant = self.model.patterns(self.roles_in(workspace)).find(permission)
            if grant is not None:
                role, pattern = grant
                return Decision(allowed=True, reason=f"role {role} grants {pattern}", decided_by=f"role:{role}")
            for policy in allow:
                if policy.matches(attributes):
                    return Decision(allowed=True, reason=f"policy {policy.id} allows", decided_by=f"policy:{policy.id}")
        except Exception:  # any evaluation error denies; the policy module raises none on purpose
            return Decision(allowed=False, reason="the policies could not be evaluated", decided_by=None)
        return Decision(allowed=False, reason=NO_GRANT, decided_by=None)

    def explain(self, permission: str, resource: Mapping[str, Any] | None = None) -> Explanation:
        """The decision of :meth:`authorize` with its working."""
        workspace = self.workspace_of(resource)
        roles_in_effect = self.roles_in(workspace)
        held = [RoleGrant(role, None, "token") for role in sorted(self.token_roles)]
        held += [g for g in self.grants.roles if g.workspace_id is None or g.workspace_id == workspace]
        if not is_permission_key(permission):
            decision = Decision(allowed=False, reason="not a permission key", decided_by=None)
            return Explanation(
                decision=decision,
                permission=permission,
                user_id=self.user_id,
                workspace_id=workspace,
                roles=tuple(held),
                granted_by=None,
                policies=(),
            )
        deny, allow = self.model.applicable(permission)
        attributes = self.attributes(permission, resource)
        outcomes = []
        for policy in (*deny, *allow):
            outcome: Literal["holds", "does-not-hold", "error"]
            try:
                outcome = (
                    "error" if policy.errors(attributes) else "holds" if policy.matches(attributes) else "does-not-hold"
                )
            except Exception:
                outcome = "error"
            outcomes.append(PolicyOutcome(policy.id, policy.policy.effect, policy.source, outcome))
        return Explanation(
            decision=self._decide(permission, resource, workspace, deny, allow),
            permission=permission,
            user_id=self.user_id,
            workspace_id=workspace,
            roles=tuple(held),
            granted_by=self.model.patterns(roles_in_effect).find(permission),
            policies=tuple(outcomes),
        )


def _errored(policy: CompiledPolicy) -> Decision:
    return Decision(
        allowed=False, reason=f"policy {policy.id} could not be evaluated", decided_by=f"policy:{policy.id}"
    )
