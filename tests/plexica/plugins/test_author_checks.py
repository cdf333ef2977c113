"""Author mistakes refused when the host is built, each naming the plugin and the fix (issue 12, item 6)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from plexica_sdk.errors import PluginLoadError
from plexica_sdk.markers import hookimpl
from plexica_sdk.types import EventTypeDef, PermissionDef, RoleDef, Subscription
from tests.plexica.plugins.helpers import ManifestPlugin, manager_of

READ = PermissionDef(key="notes:note:read")
CREATED = EventTypeDef(type="notes.note.created")


def handler(event: Any, host: Any) -> None:
    """A subscription handler that does nothing."""


class Subscriber(ManifestPlugin):
    def __init__(self, name: str, *patterns: str, **manifest: Any) -> None:
        super().__init__(name, **manifest)
        self.patterns = patterns

    @hookimpl
    def plexica_subscriptions(self) -> Sequence[Subscription]:
        return [Subscription(event_type=pattern, handler=handler) for pattern in self.patterns]


class Migrating(ManifestPlugin):
    def __init__(self, location: Path) -> None:
        super().__init__("notes")
        self.location = location

    @hookimpl
    def plexica_tenant_migrations(self) -> str:
        return str(self.location)


class Misspelled(ManifestPlugin):
    def plexica_tenant_provisoned(self, tenant: Any) -> None:
        """One letter short of plexica_tenant_provisioned: pluggy would never call it."""


class MarkedMisspelled(ManifestPlugin):
    @hookimpl
    def plexica_route(self) -> list[Any]:
        return []


class Renamed(ManifestPlugin):
    @hookimpl(specname="plexica_routes")
    def plexica_routes_v2(self) -> list[Any]:
        return []


def refused(*plugins: object) -> PluginLoadError:
    with pytest.raises(PluginLoadError) as caught:
        manager_of(*plugins)
    return caught.value


def test_a_default_role_granting_an_undefined_permission_is_refused() -> None:
    error = refused(
        ManifestPlugin(permissions=[READ], default_roles=[RoleDef(name="member", permissions=["notes:note:raed"])])
    )
    assert error.plugin == "notes"
    assert "default role 'member' grants 'notes:note:raed', which no plugin defines" in str(error)
    assert "did you mean 'notes:note:read'?" in str(error)


@pytest.mark.parametrize(
    "granted", ["notes:note:read", "notes:*", "*", "core:workspace:read"], ids=["key", "prefix", "all", "core"]
)
def test_default_roles_may_grant_existing_permissions_and_patterns(granted: str) -> None:
    manager = manager_of(
        ManifestPlugin(permissions=[READ], default_roles=[RoleDef(name="member", permissions=[granted])])
    )
    assert manager.get("notes") is not None


def test_a_pattern_covering_no_permission_is_refused() -> None:
    error = refused(
        ManifestPlugin(permissions=[READ], default_roles=[RoleDef(name="member", permissions=["billing:*"])])
    )
    assert "grants 'billing:*'" in str(error)


def test_a_subscription_to_an_undeclared_type_is_refused() -> None:
    error = refused(ManifestPlugin(event_types=[CREATED]), Subscriber("tasks", "notes.note.craeted"))
    assert error.plugin == "tasks"
    assert "listens to 'notes.note.craeted', which no plugin declares" in str(error)
    assert "did you mean 'notes.note.created'?" in str(error)


@pytest.mark.parametrize(
    "pattern",
    ["notes.note.created", "notes.*", "notes.note.*", "core.tenant.created", "core.*"],
)
def test_subscriptions_to_declared_types_and_loaded_plugins_load(pattern: str) -> None:
    manager = manager_of(ManifestPlugin(event_types=[CREATED]), Subscriber("tasks", pattern))
    assert manager.get("tasks") is not None


def test_a_pattern_for_a_plugin_that_is_not_loaded_is_refused() -> None:
    assert "listens to 'billing.*'" in str(refused(Subscriber("tasks", "billing.*")))


def test_an_unknown_core_type_is_refused() -> None:
    assert "listens to 'core.tenant.exploded'" in str(refused(Subscriber("tasks", "core.tenant.exploded")))


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (lambda root: root / "missing", "which is not a folder"),
        (lambda root: (root / "file.py").touch() or root / "file.py", "which is not a folder"),
        (lambda root: root, "has no versions/ folder"),
        (lambda root: (root / "versions").mkdir() or root / "versions", "return its parent"),
    ],
    ids=["missing", "a-file", "no-versions", "the-versions-folder-itself"],
)
def test_a_migrations_path_that_is_not_an_alembic_folder_is_refused(
    tmp_path: Path, layout: Callable[[Path], Path], message: str
) -> None:
    error = refused(Migrating(layout(tmp_path)))
    assert error.plugin == "notes"
    assert message in str(error)


def test_a_folder_holding_versions_loads(tmp_path: Path) -> None:
    (tmp_path / "versions").mkdir()
    loaded = manager_of(Migrating(tmp_path)).get("notes")
    assert loaded is not None
    assert loaded.tenant_migrations == str(tmp_path)


@pytest.mark.parametrize(
    ("plugin", "attribute", "suggestion"),
    [
        (Misspelled(), "plexica_tenant_provisoned", "did you mean plexica_tenant_provisioned?"),
        (MarkedMisspelled(), "plexica_route", "did you mean plexica_routes?"),
    ],
    ids=["unmarked", "marked"],
)
def test_a_misspelled_hook_is_refused_by_plugin_name(plugin: object, attribute: str, suggestion: str) -> None:
    error = refused(plugin)
    assert error.plugin == "notes"
    assert f"{attribute} is not a Plexica hook ({suggestion})" in str(error)
    assert " object at 0x" not in str(error)  # the plugin's name, not its repr


def test_a_hook_renamed_with_specname_loads() -> None:
    assert manager_of(Renamed()).get("notes") is not None
