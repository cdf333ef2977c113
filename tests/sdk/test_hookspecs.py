"""The hook specifications: names tell how a hook is called, and the contract stays remotable."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any

import pluggy
import pytest

from plexica_sdk import hookspecs, protocols
from plexica_sdk.markers import PROJECT_NAME, hookimpl, hookspec

SPECS: dict[str, Callable[..., Any]] = {
    name: function
    for name, function in vars(hookspecs).items()
    if inspect.isfunction(function) and hasattr(function, f"{PROJECT_NAME}_spec")
}
PROVIDERS = sorted(name for name in SPECS if name.endswith("_backend"))


def _spec_options(name: str) -> dict[str, Any]:
    options: dict[str, Any] = getattr(SPECS[name], f"{PROJECT_NAME}_spec")
    return options


def test_every_public_function_of_the_module_is_a_hookspec() -> None:
    functions = {name for name, value in vars(hookspecs).items() if inspect.isfunction(value)}
    assert functions == set(SPECS)


def test_the_hook_families_are_all_present() -> None:
    assert {
        "plexica_manifest",
        "plexica_tenant_provisioned",
        "plexica_permissions",
        "plexica_resource_attributes",
        "plexica_subscriptions",
        "plexica_cache_backend",
        "plexica_object_store_backend",
        "plexica_routes",
    } <= set(SPECS)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_names_start_with_plexica(name: str) -> None:
    assert name.startswith("plexica_")


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_hook_is_documented(name: str) -> None:
    assert inspect.getdoc(SPECS[name])


@pytest.mark.parametrize("name", PROVIDERS)
def test_provider_hooks_are_firstresult(name: str) -> None:
    assert _spec_options(name)["firstresult"] is True


@pytest.mark.parametrize("name", sorted(set(SPECS) - set(PROVIDERS)))
def test_only_provider_hooks_are_firstresult(name: str) -> None:
    # A hook that may be async can't be firstresult: an un-awaited coroutine is never None.
    assert _spec_options(name)["firstresult"] is False


@pytest.mark.parametrize("name", sorted(SPECS))
def test_no_hook_is_historic(name: str) -> None:
    assert _spec_options(name)["historic"] is False


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_annotation_resolves(name: str) -> None:
    # Annotations are strings (``from __future__ import annotations``); a typo would only show here.
    namespace = {**vars(hookspecs), **{n: getattr(protocols, n) for n in protocols.__all__}}
    typing.get_type_hints(SPECS[name], globalns=namespace)


def test_pluggy_accepts_the_specs() -> None:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    assert all(getattr(pm.hook, name).spec is not None for name in SPECS)


def test_markers_belong_to_the_plexica_project() -> None:
    assert PROJECT_NAME == "plexica"
    assert hookspec.project_name == PROJECT_NAME
    assert hookimpl.project_name == PROJECT_NAME


def test_hookimpl_marks_a_function_for_the_plexica_project() -> None:
    @hookimpl
    def plexica_permissions() -> list[str]:
        return []

    assert getattr(plexica_permissions, f"{PROJECT_NAME}_impl")["optionalhook"] is False
