"""Manifest validation and dependency ordering (pure functions)."""

from __future__ import annotations

from typing import Any

import pytest

from plexica.plugins.manifest import load_order, validate_manifest
from plexica_sdk.errors import PluginLoadError
from plexica_sdk.types import EventTypeDef, PermissionDef, PluginManifest


def manifest(name: str = "notes", version: str = "1.0.0", **fields: Any) -> PluginManifest:
    return PluginManifest(name=name, version=version, **fields)


# ---------------------------------------------------------- validate_manifest


def test_a_valid_manifest_is_returned_as_it_is() -> None:
    valid = manifest(
        permissions=[PermissionDef(key="notes:note:read")],
        event_types=[EventTypeDef(type="notes.note.created")],
        requires={"core": ">=0.1,<1"},
    )
    assert validate_manifest(valid, origin="object:Notes") is valid


def test_something_else_than_a_manifest_is_rejected_naming_the_origin() -> None:
    with pytest.raises(PluginLoadError, match="returned dict, not PluginManifest") as excinfo:
        validate_manifest({"name": "notes"}, origin="entry-point:notes")
    assert excinfo.value.plugin == "entry-point:notes"


@pytest.mark.parametrize(
    "name",
    ["a", "Notes", "1notes", "-notes", "notes_app", "a" * 64, "notes\n"],
    ids=["too-short", "uppercase", "leading-digit", "leading-dash", "underscore", "too-long", "trailing-newline"],
)
def test_an_invalid_name_is_rejected_naming_the_origin_and_the_name(name: str) -> None:
    with pytest.raises(PluginLoadError) as excinfo:
        validate_manifest(manifest(name=name), origin="object:Notes")
    assert excinfo.value.plugin == "object:Notes"
    assert repr(name) in str(excinfo.value)


@pytest.mark.parametrize(
    "version",
    ["0.1.0", "1.2.3", "10.20.30", "1.0.0-alpha.1", "1.0.0-rc.1+build.7", "1.0.0+20250314"],
    ids=["zero-major", "plain", "multi-digit", "prerelease", "prerelease-and-build", "build"],
)
def test_semantic_versions_are_accepted(version: str) -> None:
    assert validate_manifest(manifest(version=version), origin="x").version == version


@pytest.mark.parametrize(
    "version",
    ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", "1.0.0-", "", "latest", "1.0.0\n"],
    ids=[
        "two-parts",
        "v-prefix",
        "leading-zero",
        "four-parts",
        "empty-prerelease",
        "empty",
        "word",
        "trailing-newline",
    ],
)
def test_a_non_semver_version_is_rejected_naming_the_plugin(version: str) -> None:
    with pytest.raises(PluginLoadError, match="is not a semantic version") as excinfo:
        validate_manifest(manifest(version=version), origin="x")
    assert excinfo.value.plugin == "notes"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("billing:invoice:read", "must start with 'notes:'"),
        ("notes:*:read", "must look like 'notes:resource:action'"),
        ("notes:note:*", "must look like 'notes:resource:action'"),
        ("notes:note", "must look like 'notes:resource:action'"),
        ("notes:Note:read", "must look like 'notes:resource:action'"),
        ("notes:note:read\n", "must look like 'notes:resource:action'"),
    ],
    ids=["other-plugin", "wildcard-resource", "wildcard-action", "two-segments", "uppercase", "trailing-newline"],
)
def test_a_bad_permission_is_rejected_naming_the_plugin(key: str, message: str) -> None:
    with pytest.raises(PluginLoadError, match=message) as excinfo:
        validate_manifest(manifest(permissions=[PermissionDef(key=key)]), origin="x")
    assert excinfo.value.plugin == "notes"


@pytest.mark.parametrize(
    "event_type",
    ["billing.invoice.paid", "notes.created", "notes-pro.note.created"],
    ids=["other-plugin", "no-entity", "plugin-with-same-prefix"],
)
def test_a_bad_event_type_is_rejected_naming_the_plugin(event_type: str) -> None:
    with pytest.raises(PluginLoadError, match=r"must look like 'notes\.entity\.verb'") as excinfo:
        validate_manifest(manifest(event_types=[EventTypeDef(type=event_type)]), origin="x")
    assert excinfo.value.plugin == "notes"


@pytest.mark.parametrize(
    ("requires", "message"),
    [({"Billing": ">=1"}, "unknown-looking plugin name 'Billing'"), ({"billing": ">>1"}, "not a version range")],
    ids=["bad-name", "bad-range"],
)
def test_a_bad_requirement_is_rejected_naming_the_plugin(requires: dict[str, str], message: str) -> None:
    with pytest.raises(PluginLoadError, match=message) as excinfo:
        validate_manifest(manifest(requires=requires), origin="x")
    assert excinfo.value.plugin == "notes"


# ----------------------------------------------------------------- load_order


def test_every_plugin_comes_after_the_plugins_it_requires() -> None:
    order = load_order(
        [
            manifest("reports", requires={"tasks": ">=1", "notes": ">=1"}),
            manifest("tasks", requires={"notes": ">=1"}),
            manifest("notes"),
        ]
    )
    assert order == ["notes", "tasks", "reports"]


def test_independent_plugins_keep_the_discovery_order() -> None:
    assert load_order([manifest("zeta"), manifest("alpha"), manifest("mid")]) == ["zeta", "alpha", "mid"]


def test_built_ins_come_first_even_when_discovered_last() -> None:
    order = load_order([manifest("notes"), manifest("tasks"), manifest("core", "0.1.0")], builtin=["core"])
    assert order == ["core", "notes", "tasks"]


def test_built_in_names_without_a_manifest_are_ignored() -> None:
    assert load_order([manifest("notes")], builtin=["core"]) == ["notes"]


def test_a_duplicate_name_is_rejected_naming_it() -> None:
    with pytest.raises(PluginLoadError, match="another plugin with the same name") as excinfo:
        load_order([manifest("notes"), manifest("tasks"), manifest("notes", "2.0.0")])
    assert excinfo.value.plugin == "notes"


def test_a_missing_dependency_is_rejected_naming_the_plugin_and_the_dependency() -> None:
    with pytest.raises(PluginLoadError, match="requires plugin 'billing', which is not installed") as excinfo:
        load_order([manifest("notes", requires={"billing": ">=1"})])
    assert excinfo.value.plugin == "notes"


@pytest.mark.parametrize(
    ("installed", "wanted"),
    [("0.9.0", ">=1.0"), ("2.0.0", ">=1,<2"), ("1.0.0", "==1.0.1")],
    ids=["too-old", "too-new", "pinned-other"],
)
def test_a_dependency_version_out_of_range_is_rejected(installed: str, wanted: str) -> None:
    with pytest.raises(PluginLoadError, match=f"requires billing {wanted}, but version {installed} is installed") as e:
        load_order([manifest("billing", installed), manifest("notes", requires={"billing": wanted})])
    assert e.value.plugin == "notes"


@pytest.mark.parametrize(
    ("installed", "wanted"),
    [("1.4.2", ">=1.0,<2"), ("2.0.0-rc.1", ">=1.0"), ("1.0.0+build.7", "==1.0.0"), ("3.0.0", "")],
    ids=["in-range", "prerelease", "build-metadata", "any-version"],
)
def test_a_dependency_version_in_range_is_accepted(installed: str, wanted: str) -> None:
    order = load_order([manifest("notes", requires={"billing": wanted}), manifest("billing", installed)])
    assert order == ["billing", "notes"]


def test_a_semver_prerelease_that_pep_440_cannot_compare_is_reported_for_the_dependency() -> None:
    with pytest.raises(PluginLoadError, match="not comparable") as excinfo:
        load_order([manifest("billing", "1.0.0-nightly"), manifest("notes", requires={"billing": ">=1"})])
    assert excinfo.value.plugin == "billing"


@pytest.mark.parametrize(
    "manifests",
    [
        [manifest("notes", requires={"tasks": ""}), manifest("tasks", requires={"notes": ""})],
        [
            manifest("notes", requires={"tasks": ""}),
            manifest("tasks", requires={"reports": ""}),
            manifest("reports", requires={"notes": ""}),
        ],
        [manifest("notes", requires={"notes": ""})],
        [manifest("other"), manifest("notes", requires={"tasks": ""}), manifest("tasks", requires={"notes": ""})],
    ],
    ids=["two-plugins", "three-plugins", "self", "behind-an-unrelated-plugin"],
)
def test_a_dependency_cycle_is_rejected_naming_a_plugin_in_it(manifests: list[PluginManifest]) -> None:
    with pytest.raises(PluginLoadError, match="dependency cycle") as excinfo:
        load_order(manifests)
    cycle = str(excinfo.value).split("dependency cycle: ", 1)[1].split(" -> ")
    assert cycle[0] == cycle[-1] == excinfo.value.plugin
    assert set(cycle) <= {m.name for m in manifests if m.requires}
