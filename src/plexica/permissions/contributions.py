"""What plugins contribute to each tenant: permission definitions, default role grants, policies.

Read once from the plugin manager when the engine is built; a plugin policy that does not
validate, or that targets another plugin's permissions, stops start-up like any bad contribution.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, final

import attrs

from plexica.permissions.abac import compile_policy
from plexica.permissions.conditions import policy_to_json
from plexica.permissions.decision import TenantModel
from plexica.permissions.rbac import SYSTEM_ROLES
from plexica_sdk.errors import PluginCallError, PluginLoadError, ValidationError
from plexica_sdk.types import PermissionDef, Policy, RoleDef

__all__ = ["PluginContribution", "contributions_of", "static_model"]


@final
@attrs.frozen(kw_only=True)
class PluginContribution:
    """What one plugin brings to each tenant that installs it."""

    name: str
    version: str
    builtin: bool
    permissions: tuple[PermissionDef, ...]
    roles: tuple[RoleDef, ...]
    policies: tuple[Policy, ...]

    @property
    def fingerprint(self) -> str:
        data = {
            "version": self.version,
            "permissions": [[p.key, p.description] for p in self.permissions],
            "roles": [[r.name, sorted(r.permissions), r.description] for r in self.roles],
            "policies": [policy_to_json(p) for p in self.policies],
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def contributions_of(plugins: Any) -> dict[str, PluginContribution]:
    """Every loaded plugin's contribution; plugin policies are validated here, at start-up.

    Raises:
        PluginLoadError: a plugin's policy is invalid or targets another plugin's permissions.
    """
    try:
        policies = plugins.collect("plexica_policies")
    except PluginCallError as exc:  # a contribution hook that fails stops start-up
        raise PluginLoadError(exc.plugin, str(exc)) from exc
    found = {}
    for name, loaded in plugins.plugins.items():
        own = tuple(policies.get(name) or ())
        for policy in own:
            if not isinstance(policy, Policy):
                raise PluginLoadError(name, f"plexica_policies() returned {type(policy).__name__}, not a Policy")
            if not (policy.target == f"{name}:*" or policy.target.startswith(f"{name}:")):
                raise PluginLoadError(name, f"policy {policy.id!r} must target {name}:... permissions")
            try:
                compile_policy(policy)
            except ValidationError as exc:
                raise PluginLoadError(name, f"policy {policy.id!r}: {exc.field}: {exc}") from exc
        found[name] = PluginContribution(
            name=name,
            version=loaded.manifest.version,
            builtin=loaded.is_builtin,
            permissions=tuple(loaded.permissions),
            roles=tuple(loaded.default_roles),
            policies=own,
        )
    return found


def static_model(
    contributions: Iterable[PluginContribution],
    *,
    roles: Iterable[RoleDef] = (),
    policies: Iterable[Policy] = (),
) -> TenantModel:
    """A tenant model with every given plugin installed, plus tenant ``roles`` and ``policies``.

    What a tenant's model would be without the database: for plugin authors' policy tests.

    Raises:
        ValidationError: a tenant policy is invalid.
    """
    grants: dict[str, set[str]] = {role: set() for role in SYSTEM_ROLES}
    compiled = []
    for contribution in contributions:
        for role in contribution.roles:
            grants.setdefault(role.name, set()).update(role.permissions)
        source = f"plugin:{contribution.name}"
        compiled += [
            compile_policy(attrs.evolve(p, id=f"{contribution.name}:{p.id}"), source=source)
            for p in contribution.policies
        ]
    for role in roles:
        grants.setdefault(role.name, set()).update(role.permissions)
    compiled += [compile_policy(policy) for policy in policies]
    return TenantModel(grants, compiled, version=0)
