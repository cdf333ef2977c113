"""Author mistakes caught when the host is built, each a ``PluginLoadError`` naming the plugin and the fix.

Without these checks the mistakes are silent (a default role granting a permission nobody
defines, a subscription nobody's events reach) or late (a wrong migrations path fails at the first
tenant creation with Alembic's text; a misspelled hook is never called). Pure, apart from looking
at the migrations folder on disk.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plexica.plugins.builtin.core import CORE_EVENT_TYPES, CORE_PERMISSIONS
from plexica_sdk import hookspecs
from plexica_sdk.errors import PluginLoadError
from plexica_sdk.markers import PROJECT_NAME

if TYPE_CHECKING:
    from plexica.plugins.manager import LoadedPlugin

__all__ = ["HOOK_NAMES", "check_hook_names", "check_migrations", "check_roles_and_subscriptions"]

#: Every hook a plugin may implement, from the specifications.
HOOK_NAMES = frozenset(
    name for name, value in vars(hookspecs).items() if name.startswith("plexica_") and callable(value)
)
_IMPL_ATTRIBUTE = PROJECT_NAME + "_impl"


def check_hook_names(plugin: str, obj: object) -> None:
    """Refuse a ``plexica_*`` callable that is no hook: a misspelling pluggy would silently never call.

    Raises:
        PluginLoadError: naming the attribute and the closest hook ("did you mean ...").
    """
    for attribute in sorted(dir(obj)):
        if not attribute.startswith("plexica_") or attribute in HOOK_NAMES:
            continue
        try:
            value = inspect.getattr_static(obj, attribute)
        except AttributeError:  # pragma: no cover - dir() listed it
            continue
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if not callable(value):
            continue
        options = getattr(value, _IMPL_ATTRIBUTE, None)
        if isinstance(options, Mapping) and options.get("specname") in HOOK_NAMES:
            continue  # ``@hookimpl(specname=...)``: another name on purpose
        close = difflib.get_close_matches(attribute, HOOK_NAMES, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see docs/hooks.md for the hooks"
        raise PluginLoadError(
            plugin, f"{attribute} is not a Plexica hook ({hint}); rename it, or drop the 'plexica_' prefix"
        )


def check_migrations(plugin: str, location: str) -> None:
    """The folder ``plexica_tenant_migrations()`` returns must hold an Alembic ``versions/`` folder.

    Raises:
        PluginLoadError: the path is missing, is a file, is the ``versions/`` folder itself, or has none.
    """
    path = Path(location)
    if path.name == "versions" and path.is_dir() and not (path / "versions").is_dir():
        raise PluginLoadError(
            plugin,
            f"plexica_tenant_migrations() returned the versions/ folder {location!r}: return its parent, "
            f"{str(path.parent)!r}",
        )
    if not path.is_dir():
        raise PluginLoadError(
            plugin,
            f"plexica_tenant_migrations() returned {location!r}, which is not a folder: return the folder "
            "that holds the plugin's Alembic versions/ folder (e.g. str(Path(__file__).parent / 'migrations'))",
        )
    if not (path / "versions").is_dir():
        raise PluginLoadError(
            plugin,
            f"migrations folder {location!r} has no versions/ folder: put the plugin's Alembic revisions in "
            f"{str(path / 'versions')!r}",
        )


def check_roles_and_subscriptions(plugins: Iterable[LoadedPlugin]) -> None:
    """Default roles grant only permissions that exist; subscriptions name event types that are declared.

    "Exist" and "declared" mean: by the core or by any loaded plugin, so one plugin may grant or
    subscribe to another's.

    Raises:
        PluginLoadError: naming the plugin, the role or subscription, and the closest known name.
    """
    loaded = list(plugins)
    permissions = {p.key for p in CORE_PERMISSIONS} | {p.key for plugin in loaded for p in plugin.permissions}
    event_types = {e.type for e in CORE_EVENT_TYPES} | {e.type for plugin in loaded for e in plugin.event_types}
    owners = {"core"} | {plugin.name for plugin in loaded}
    for plugin in loaded:
        for role in plugin.default_roles:
            for pattern in role.permissions:
                if not any(_grants(pattern, key) for key in permissions):
                    raise PluginLoadError(
                        plugin.name,
                        f"default role {role.name!r} grants {pattern!r}, which no plugin defines: "
                        f"{_suggest(pattern, permissions, 'declare it in the manifest permissions')}",
                    )
        for subscription in plugin.subscriptions:
            pattern = subscription.event_type
            if not _subscribable(pattern, event_types, owners):
                raise PluginLoadError(
                    plugin.name,
                    f"subscription {subscription.name or pattern!r} listens to {pattern!r}, which no plugin "
                    f"declares: {_suggest(pattern, event_types, 'declare it in the publishing plugin')}",
                )


def _grants(pattern: str, key: str) -> bool:
    """``plexica.permissions.rbac.matches``, restated: importing it here would tie plugins to permissions."""
    wanted = key.split(":")
    for index, part in enumerate(pattern.split(":")):
        if part == "*":
            return True
        if index >= len(wanted) or part != wanted[index]:
            return False
    return len(wanted) == len(pattern.split(":"))


def _subscribable(pattern: str, declared: set[str], owners: set[str]) -> bool:
    """An exact type must be declared; a ``prefix.*`` pattern must cover a declared type or a loaded plugin's."""
    if not pattern.endswith(".*"):
        return pattern in declared
    prefix = pattern[:-1]
    return pattern.split(".", 1)[0] in owners or any(name.startswith(prefix) for name in declared)


def _suggest(name: str, known: Any, otherwise: str) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else otherwise
