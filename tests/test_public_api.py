"""The public API: every package façade lists its names in a sorted, complete ``__all__``.

Packages are found on disk (without importing them), so a new package is checked as soon as it
defines ``__all__``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

TOP_LEVEL = ("plexica", "plexica_sdk")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None
    assert spec.submodule_search_locations is not None
    return Path(next(iter(spec.submodule_search_locations)))


def _defines_all(init: Path) -> bool:
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(target, ast.Name) and target.id == "__all__" for target in targets):
            return True
    return False


def _facade_packages() -> list[str]:
    found = []
    for top in TOP_LEVEL:
        root = _package_dir(top)
        for init in sorted(root.rglob("__init__.py")):
            parts = init.parent.relative_to(root.parent).parts
            if init.parent == root or _defines_all(init):
                found.append(".".join(parts))
    return found


FACADES = _facade_packages()


def _ruff_sort_key(name: str) -> tuple[int, tuple[str | int, ...]]:
    """The order ``ruff``'s RUF022 keeps: CONSTANTS, then Classes, then the rest, naturally sorted."""
    group = 0 if len(name) > 1 and name.isupper() else 1 if name[:1].isupper() else 2
    natural = tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))
    return group, natural


def _load(name: str) -> ModuleType:
    return importlib.import_module(name)


def _all_of(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    assert names is not None, f"{module.__name__} defines no __all__"
    assert isinstance(names, list | tuple)
    return list(names)


def test_the_top_level_packages_and_the_area_facades_are_checked() -> None:
    assert {"plexica", "plexica_sdk", "plexica.plugins", "plexica.permissions"} <= set(FACADES)


@pytest.mark.parametrize("package", FACADES)
def test_all_is_sorted(package: str) -> None:
    names = _all_of(_load(package))
    assert names == sorted(names, key=_ruff_sort_key)


@pytest.mark.parametrize("package", FACADES)
def test_all_has_no_duplicates(package: str) -> None:
    names = _all_of(_load(package))
    assert len(names) == len(set(names))


@pytest.mark.parametrize("package", FACADES)
def test_every_name_in_all_resolves(package: str) -> None:
    module = _load(package)
    missing = [name for name in _all_of(module) if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("package", FACADES)
def test_all_lists_every_public_class_and_function_defined_in_the_package(package: str) -> None:
    module = _load(package)
    unlisted = [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and (value.__module__ == package or value.__module__.startswith(f"{package}."))
        and name not in _all_of(module)
    ]
    assert unlisted == []


@pytest.mark.parametrize("package", FACADES)
def test_facade_uses_no_star_import(package: str) -> None:
    init = _package_dir(package.split(".")[0]).parent.joinpath(*package.split("."), "__init__.py")
    tree = ast.parse(init.read_text(encoding="utf-8"))
    star_imports = [
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names)
    ]
    assert star_imports == []


@pytest.mark.parametrize("package", TOP_LEVEL)
def test_version_comes_from_the_installed_distribution(package: str) -> None:
    module = _load(package)
    assert module.__version__ == importlib.metadata.version("plexica")


@pytest.mark.parametrize("package", TOP_LEVEL)
def test_unknown_attribute_still_raises_attribute_error(package: str) -> None:
    module = _load(package)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = module.no_such_name
