"""Discovery: built-ins, entry points, settings paths and objects, in a stable order."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from plexica.plugins.builtin.core import CorePlugin
from plexica.plugins.discovery import ENTRY_POINT_GROUP, PluginSource, discover, load_object
from plexica_sdk.errors import PluginLoadError
from tests.plexica.plugins.helpers import ManifestPlugin


class NotesPlugin(ManifestPlugin):
    def __init__(self) -> None:
        super().__init__("notes")


class TasksPlugin(ManifestPlugin):
    def __init__(self) -> None:
        super().__init__("tasks")


class Namespace:
    class Nested(ManifestPlugin):
        def __init__(self) -> None:
            super().__init__("nested")


INSTANCE = ManifestPlugin("instance")

HERE = __name__
TEST_ENTRY_POINTS = ("zeta-notes", "alpha-tasks", "broken")


def install_entry_points(directory: Path, monkeypatch: pytest.MonkeyPatch, **entries: str) -> None:
    """Put a distribution declaring ``entries`` in the ``plexica.plugins`` group on ``sys.path``."""
    dist_info = directory / "plexica_test_plugins-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: plexica-test-plugins\nVersion: 1.0\n")
    lines = [f"{name} = {value}" for name, value in entries.items()]
    (dist_info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n" + "\n".join(lines) + "\n")
    monkeypatch.syspath_prepend(str(directory))


def ours(sources: list[PluginSource]) -> list[PluginSource]:
    """The sources from this test's entry points (the environment may install other plugins)."""
    return [s for s in sources if s.origin.removeprefix("entry-point:") in TEST_ENTRY_POINTS]


# ----------------------------------------------------------------- discover


def test_without_anything_else_only_the_built_ins_are_found() -> None:
    sources = discover(use_entry_points=False)
    assert [(s.origin, s.mode) for s in sources] == [("builtin:core", "builtin")]
    assert isinstance(sources[0].obj, CorePlugin)


def test_objects_are_instantiated_when_classes_and_kept_when_instances() -> None:
    sources = discover(objects=[NotesPlugin, INSTANCE], use_entry_points=False)
    _, notes, instance = sources
    assert isinstance(notes.obj, NotesPlugin)
    assert instance.obj is INSTANCE
    assert {s.mode for s in (notes, instance)} == {"embedded"}
    assert instance.origin == "object:ManifestPlugin"


@pytest.mark.parametrize(
    ("obj", "origin"),
    [(NotesPlugin, "object:NotesPlugin"), (NotesPlugin(), "object:NotesPlugin"), (sys.modules[HERE], f"object:{HERE}")],
    ids=["class", "instance", "module"],
)
def test_object_origin_names_the_plugin_class_or_module(obj: object, origin: str) -> None:
    # The origin names the plugin in load errors raised before its manifest is read.
    [_, source] = discover(objects=[obj], use_entry_points=False)
    assert source.origin == origin


def test_paths_are_imported_and_classes_instantiated() -> None:
    [_, notes, nested, instance] = discover(
        paths=[f"{HERE}:NotesPlugin", f"{HERE}:Namespace.Nested", f"{HERE}:INSTANCE"], use_entry_points=False
    )
    assert isinstance(notes.obj, NotesPlugin)
    assert isinstance(nested.obj, Namespace.Nested)
    assert instance.obj is INSTANCE
    assert notes.origin == f"settings:{HERE}:NotesPlugin"
    assert notes.mode == "embedded"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (":NotesPlugin", "expected 'module:attribute'"),
        ("tests.plexica.plugins.no_such_module:Plugin", "cannot import"),
        (f"{HERE}:NoSuchPlugin", "cannot import"),
        (f"{HERE}:Namespace.Missing", "cannot import"),
    ],
    ids=["no-module", "missing-module", "missing-attribute", "missing-nested-attribute"],
)
def test_a_bad_path_is_a_load_error_naming_the_path(path: str, message: str) -> None:
    with pytest.raises(PluginLoadError, match=message) as excinfo:
        discover(paths=[path], use_entry_points=False)
    assert excinfo.value.plugin == path


def test_order_is_built_ins_then_entry_points_then_paths_then_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_entry_points(tmp_path, monkeypatch, **{"zeta-notes": f"{HERE}:NotesPlugin"})
    sources = discover(paths=[f"{HERE}:TasksPlugin"], objects=[INSTANCE])
    origins = [s.origin for s in sources]
    positions = [
        origins.index("builtin:core"),
        origins.index("entry-point:zeta-notes"),
        origins.index(f"settings:{HERE}:TasksPlugin"),
        origins.index("object:ManifestPlugin"),
    ]
    assert positions == sorted(positions)
    assert positions[0] == 0
    assert positions[-1] == len(sources) - 1


def test_entry_points_are_loaded_sorted_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(
        tmp_path, monkeypatch, **{"zeta-notes": f"{HERE}:NotesPlugin", "alpha-tasks": f"{HERE}:TasksPlugin"}
    )
    found = ours(discover())
    assert [s.origin for s in found] == ["entry-point:alpha-tasks", "entry-point:zeta-notes"]
    assert [type(s.obj) for s in found] == [TasksPlugin, NotesPlugin]
    assert {s.mode for s in found} == {"embedded"}


def test_disabled_entry_points_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(
        tmp_path, monkeypatch, **{"zeta-notes": f"{HERE}:NotesPlugin", "alpha-tasks": f"{HERE}:TasksPlugin"}
    )
    assert [s.origin for s in ours(discover(disabled=["zeta-notes"]))] == ["entry-point:alpha-tasks"]


def test_entry_points_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(tmp_path, monkeypatch, **{"zeta-notes": f"{HERE}:NotesPlugin"})
    assert not any(s.origin.startswith("entry-point:") for s in discover(use_entry_points=False))


def test_a_broken_entry_point_is_a_load_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(tmp_path, monkeypatch, broken="tests.plexica.plugins.no_such_module:Plugin")
    with pytest.raises(PluginLoadError, match="failed to import") as excinfo:
        discover()
    assert excinfo.value.plugin == "broken"


def test_a_disabled_broken_entry_point_is_not_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_entry_points(tmp_path, monkeypatch, broken="tests.plexica.plugins.no_such_module:Plugin")
    assert ours(discover(disabled=["broken"])) == []


# -------------------------------------------------------------- load_object


def test_load_object_of_a_bare_module_path_returns_the_module() -> None:
    assert load_object(HERE) is sys.modules[HERE]


def test_load_object_instantiates_a_class() -> None:
    assert isinstance(load_object(f"{HERE}:NotesPlugin"), NotesPlugin)
