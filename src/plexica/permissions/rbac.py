"""Role-based checks: pure functions over role → permission-pattern tables, no IO.

Permission keys are ``{plugin}:{resource}:{action}``. In a pattern, ``*`` matches one segment and
everything after it: ``notes:*`` grants every ``notes`` permission, ``*`` grants everything.
``tenant_admin`` holds every permission of its tenant.

:class:`PatternSet` is the fast form of a set of grants: a key is looked up by its prefixes in
two dicts, so a check costs a few dict lookups however many patterns the roles hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final, final

from plexica_sdk.types import PERMISSION_KEY_RE, Decision, RoleDef

__all__ = [
    "ADMIN_ROLE",
    "MEMBER_ROLE",
    "SYSTEM_ROLES",
    "WORKSPACE_ADMIN_ROLE",
    "WORKSPACE_MEMBER_ROLE",
    "WORKSPACE_ROLES",
    "WORKSPACE_VIEWER_ROLE",
    "PatternSet",
    "RoleTable",
    "is_permission_key",
    "is_permission_pattern",
    "matches",
]

ADMIN_ROLE: Final = "tenant_admin"
MEMBER_ROLE: Final = "member"
WORKSPACE_ADMIN_ROLE: Final = "workspace_admin"
WORKSPACE_MEMBER_ROLE: Final = "workspace_member"
WORKSPACE_VIEWER_ROLE: Final = "workspace_viewer"

#: A workspace membership role (admin > member > viewer) and the system roles it holds in that
#: workspace: each holds the roles of the ones below it.
WORKSPACE_ROLES: Final[Mapping[str, tuple[str, ...]]] = {
    "admin": (WORKSPACE_ADMIN_ROLE, WORKSPACE_MEMBER_ROLE, WORKSPACE_VIEWER_ROLE),
    "member": (WORKSPACE_MEMBER_ROLE, WORKSPACE_VIEWER_ROLE),
    "viewer": (WORKSPACE_VIEWER_ROLE,),
}

#: Roles every tenant has; they can be granted but not created, changed or deleted.
SYSTEM_ROLES: Final = frozenset(
    {ADMIN_ROLE, MEMBER_ROLE, WORKSPACE_ADMIN_ROLE, WORKSPACE_MEMBER_ROLE, WORKSPACE_VIEWER_ROLE}
)

_PREFIX_PATTERN_RE = re.compile(r"^(\*|[a-z][a-z0-9-]{1,62}:\*)$")


def is_permission_key(key: str) -> bool:
    """Whether ``key`` is a concrete permission key (three segments, no wildcard)."""
    return PERMISSION_KEY_RE.fullmatch(key) is not None and "*" not in key


def is_permission_pattern(pattern: str) -> bool:
    """Whether ``pattern`` may be granted: a key, or one with ``*`` segments (``*``, ``notes:*``)."""
    # fullmatch: ``$`` alone would let a trailing newline through.
    return PERMISSION_KEY_RE.fullmatch(pattern) is not None or _PREFIX_PATTERN_RE.fullmatch(pattern) is not None


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


def _prefix_of(pattern: str) -> str | None:
    """The segments before the first ``*`` (joined by ``:``), or None for a pattern without one."""
    parts = pattern.split(":")
    try:
        star = parts.index("*")
    except ValueError:
        return None
    return ":".join(parts[:star])


@final
class PatternSet:
    """Grants as ``(role, pattern)`` pairs, answering which pair grants a key, deterministically.

    When several pairs grant a key, the smallest ``(role, pattern)`` wins, which is what a walk
    over sorted roles and their sorted patterns finds first. Answers are memoized per key.

    Args:
        grants: ``(role, pattern)`` pairs.
    """

    __slots__ = ("_exact", "_memo", "_prefixes", "grants")

    _MEMO_LIMIT: Final = 4096

    def __init__(self, grants: Iterable[tuple[str, str]]) -> None:
        self.grants = frozenset(grants)
        self._exact: dict[str, tuple[str, str]] = {}
        self._prefixes: dict[str, tuple[str, str]] = {}
        for pair in self.grants:
            prefix = _prefix_of(pair[1])
            table, key = (self._exact, pair[1]) if prefix is None else (self._prefixes, prefix)
            current = table.get(key)
            if current is None or pair < current:
                table[key] = pair
        self._memo: dict[str, tuple[str, str] | None] = {}

    def __bool__(self) -> bool:
        return bool(self.grants)

    def find(self, key: str) -> tuple[str, str] | None:
        """The ``(role, pattern)`` that grants ``key``, or None."""
        try:
            return self._memo[key]
        except KeyError:
            pass
        found = self._exact.get(key)
        if self._prefixes:
            parts = key.split(":")
            for length in range(len(parts) + 1):
                candidate = self._prefixes.get(":".join(parts[:length]))
                if candidate is not None and (found is None or candidate < found):
                    found = candidate
        if len(self._memo) >= self._MEMO_LIMIT:
            self._memo.clear()
        self._memo[key] = found
        return found


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
