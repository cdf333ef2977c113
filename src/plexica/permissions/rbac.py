"""Role-based checks: pure functions over role → permission-pattern tables, no IO.

Permission keys are ``{plugin}:{resource}:{action}``. In a pattern, ``*`` matches one segment and
everything after it: ``notes:*`` grants every ``notes`` permission, ``*`` grants everything.
``tenant_admin`` holds every permission of its tenant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import final

from plexica_sdk.types import Decision, RoleDef

__all__ = ["ADMIN_ROLE", "MEMBER_ROLE", "RoleTable", "matches"]

ADMIN_ROLE = "tenant_admin"
MEMBER_ROLE = "member"


def matches(pattern: str, key: str) -> bool:
    """Whether permission ``pattern`` grants ``key``."""
    if pattern == key:
        return True
    wanted = key.split(":")
    for index, part in enumerate(pattern.split(":")):
        if part == "*":
            return True
        if index >= len(wanted) or part != wanted[index]:
            return False
    return False


@final
class RoleTable:
    """Which permission patterns each role grants, merged from every plugin's default roles."""

    def __init__(self, roles: Iterable[RoleDef]) -> None:
        grants: dict[str, set[str]] = {ADMIN_ROLE: {"*"}}
        for role in roles:
            grants.setdefault(role.name, set()).update(role.permissions)
        self.grants: Mapping[str, frozenset[str]] = {name: frozenset(p) for name, p in grants.items()}

    def check(self, roles: Iterable[str], permission: str) -> Decision:
        """Decide ``permission`` for a holder of ``roles``; the decision names the deciding role."""
        for role in sorted(set(roles)):
            for pattern in sorted(self.grants.get(role, ())):
                if matches(pattern, permission):
                    return Decision(allowed=True, reason=f"role {role} grants {pattern}", decided_by=f"role:{role}")
        return Decision(allowed=False, reason="no role grants this permission", decided_by=None)
