"""The built-in ``core`` plugin: a valid plugin like any other, declaring the host's own contract."""

from __future__ import annotations

import pytest

from plexica.permissions.rbac import ADMIN_ROLE, MEMBER_ROLE, matches
from plexica.plugins.builtin import CorePlugin, builtin_plugins
from plexica.plugins.builtin.core import CORE_EVENT_TYPES, CORE_PERMISSIONS
from plexica.plugins.manifest import validate_manifest
from plexica_sdk.types import EventTypeDef, PluginManifest


def core_manifest() -> PluginManifest:
    return CorePlugin().plexica_manifest()


def test_the_built_ins_are_just_core() -> None:
    [(name, plugin)] = builtin_plugins()
    assert name == "core"
    assert isinstance(plugin, CorePlugin)


def test_the_core_manifest_passes_the_same_validation_as_any_plugin() -> None:
    manifest = core_manifest()
    assert validate_manifest(manifest, origin="builtin:core") is manifest
    assert manifest.name == "core"


def test_core_declares_its_permissions_and_event_types() -> None:
    manifest = core_manifest()
    assert manifest.permissions == CORE_PERMISSIONS
    assert manifest.event_types == CORE_EVENT_TYPES
    assert "core.tenant.created" in {event_type.type for event_type in manifest.event_types}


@pytest.mark.parametrize("event_type", CORE_EVENT_TYPES, ids=lambda event_type: event_type.type)
def test_every_core_event_type_has_a_payload_schema(event_type: EventTypeDef) -> None:
    assert event_type.schema


def test_core_default_roles_grant_only_core_permissions() -> None:
    roles = {role.name: role.permissions for role in core_manifest().default_roles}
    assert set(roles) == {MEMBER_ROLE, ADMIN_ROLE}
    keys = [permission.key for permission in CORE_PERMISSIONS]
    assert all(matches("core:*", key) for key in keys)
    assert set(roles[MEMBER_ROLE]) <= set(keys)
    assert roles[ADMIN_ROLE] == ("core:*",)
