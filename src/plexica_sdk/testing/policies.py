"""Policy tables: a plugin's (subject, action, resource, expected) cases, run with pytest.

::

    from plexica_sdk.testing import PolicyCase, PolicySubject, policy_table

    ann = PolicySubject(id="ann", roles=("member",))
    test_note_policies = policy_table(
        NotesPlugin(),
        [
            PolicyCase(ann, "notes:note:read", expected=True, id="members-read"),
            PolicyCase(ann, "notes:note:write", {"author_id": "ann"}, expected=True, id="authors-edit-own"),
            PolicyCase(ann, "notes:note:write", {"author_id": "bob"}, expected=False, id="not-others"),
        ],
    )

Each case runs through the host's own decision code with the plugin (and the built-in ``core``)
installed: the plugin's permissions, default roles and ``plexica_policies``, plus any tenant
``roles`` and ``policies`` the table adds. No database is involved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, final

import attrs

from plexica_sdk.types import Decision, Policy, RoleDef

__all__ = ["PolicyCase", "PolicySubject", "PolicyTable", "policy_table"]


def _tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class PolicySubject:
    """A user for a policy case.

    Attributes:
        id: the user id (``subject.id``).
        roles: tenant-wide roles (as from the token or grants).
        teams: team ids (``subject.teams``).
        workspace_roles: ``{workspace_id: "admin" | "member" | "viewer"}`` memberships.
        workspace_id: the request's workspace (``X-Workspace-ID``).
        attributes: more ``subject.*`` attributes.
    """

    id: str = "user"
    roles: tuple[str, ...] = attrs.field(default=("member",), converter=_tuple)
    teams: tuple[str, ...] = attrs.field(default=(), converter=_tuple)
    workspace_roles: Mapping[str, str] = attrs.field(factory=dict)
    workspace_id: str | None = None
    attributes: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class PolicyCase:
    """One row of a policy table: may ``subject`` do ``action`` on ``resource``?

    Attributes:
        subject: the user (a bare string is a user of that id with the ``member`` role).
        action: the permission key.
        resource: the resource's attributes (``resource.*``), or None.
        expected: whether the decision must allow.
        id: the pytest id (default: built from the other fields).
        decided_by: when set, the deciding role or policy must be this (``role:member``,
            ``policy:notes:authors-edit-own``).
        environment: ``environment.*`` attributes (``time``, ``client_ip``...).
    """

    subject: PolicySubject | str
    action: str
    resource: Mapping[str, Any] | None = None
    expected: bool = attrs.field(default=True, kw_only=True)
    id: str | None = attrs.field(default=None, kw_only=True)
    decided_by: str | None = attrs.field(default=None, kw_only=True)
    environment: Mapping[str, Any] | None = attrs.field(default=None, kw_only=True)

    @property
    def user(self) -> PolicySubject:
        return PolicySubject(id=self.subject) if isinstance(self.subject, str) else self.subject

    def label(self) -> str:
        if self.id is not None:
            return self.id
        verdict = "allowed" if self.expected else "denied"
        return f"{self.user.id}-{self.action}-{verdict}"


@final
class PolicyTable:
    """Decides policy cases with the given plugins installed in one tenant.

    Args:
        plugins: plugin objects (as given to the host).
        roles: tenant roles to add (``RoleDef``).
        policies: tenant policies to add.
        tenant: ``tenant.*`` attributes.

    Raises:
        PluginLoadError: a plugin cannot be loaded (the same checks as the host's).
        ValidationError: a tenant policy is invalid.
    """

    def __init__(
        self,
        plugins: object | Sequence[object],
        *,
        roles: Iterable[RoleDef] = (),
        policies: Iterable[Policy] = (),
        tenant: Mapping[str, Any] | None = None,
    ) -> None:
        from plexica.permissions.contributions import contributions_of, static_model
        from plexica.plugins import PluginManager, discover

        objects = list(plugins) if isinstance(plugins, list | tuple) else [plugins]
        manager = PluginManager(discover(objects=objects, use_entry_points=False))
        self.model = static_model(contributions_of(manager).values(), roles=roles, policies=policies)
        self.tenant = dict(tenant or {"id": "tenant-id", "slug": "test", "plan": "standard"})

    def decide(self, case: PolicyCase) -> Decision:
        """The host's decision for ``case``."""
        from plexica.permissions.decision import Grants, Subject

        user = case.user
        grants = Grants.build(user.id, teams=user.teams, memberships=dict(user.workspace_roles))
        subject = Subject(
            self.model,
            user.id,
            token_roles=user.roles,
            grants=grants,
            workspace_id=user.workspace_id,
            attributes=user.attributes,
            tenant=self.tenant,
            environment=case.environment,
        )
        return subject.authorize(case.action, case.resource)

    def check(self, case: PolicyCase) -> None:
        """Assert that ``case`` comes out as expected, with the decision in the message."""
        decision = self.decide(case)
        if decision.allowed != case.expected:
            verdict = "allow" if case.expected else "deny"
            raise AssertionError(f"{case.label()}: expected {verdict}, got {decision}")
        if case.decided_by is not None and decision.decided_by != case.decided_by:
            raise AssertionError(f"{case.label()}: expected decided_by={case.decided_by!r}, got {decision}")


def policy_table(
    plugins: object | Sequence[object],
    cases: Sequence[PolicyCase],
    *,
    roles: Iterable[RoleDef] = (),
    policies: Iterable[Policy] = (),
    tenant: Mapping[str, Any] | None = None,
) -> Callable[[PolicyCase], None]:
    """A pytest test, parametrized over ``cases``; assign it to a ``test_*`` name in a test module.

    The table (plugins loaded, policies compiled) is built once, when the test module is
    collected, so a bad plugin or policy fails collection with the host's error.
    """
    import pytest

    table = PolicyTable(plugins, roles=roles, policies=policies, tenant=tenant)

    def test_policy_case(case: PolicyCase) -> None:
        table.check(case)

    marker = pytest.mark.parametrize("case", list(cases), ids=[case.label() for case in cases])
    return marker(test_policy_case)
