"""The error tree: its shape matches the drawing in the module docstring, context travels as attributes."""

from __future__ import annotations

import builtins
import re

import pytest

from plexica_sdk import errors
from plexica_sdk.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConflictError,
    EventError,
    InvalidTenantSlugError,
    MissingDependencyError,
    NotFoundError,
    PermissionDeniedError,
    PlexicaError,
    PluginCallError,
    PluginError,
    PluginLoadError,
    SettingsError,
    TenantContextMissingError,
    TenantError,
    TenantNotFoundError,
    TenantSuspendedError,
    ValidationError,
)


def _drawn_tree() -> list[tuple[str, str | None, list[str]]]:
    """(class, drawn parent, "also" bases) for every node of the docstring's tree."""
    assert errors.__doc__ is not None
    nodes: list[tuple[str, str | None, list[str]]] = []
    parents: dict[int, str] = {}
    for line in errors.__doc__.splitlines():
        match = re.match(r"^(?P<indent>[\s│├└─]*?)(?P<name>[A-Z]\w+Error)(?:\s+\(also (?P<also>[\w, ]+)\))?", line)
        if match is None:
            continue
        depth = len(match["indent"])
        parents[depth] = match["name"]
        parent = max((d for d in parents if d < depth), default=None)
        also = [name.strip() for name in match["also"].split(",")] if match["also"] else []
        nodes.append((match["name"], parents[parent] if parent is not None else None, also))
    return nodes


TREE = _drawn_tree()


def test_docstring_tree_draws_every_error_class() -> None:
    drawn = {name for name, _, _ in TREE}
    assert drawn == set(errors.__all__)


@pytest.mark.parametrize(("name", "parent", "also"), TREE, ids=[name for name, _, _ in TREE])
def test_each_error_subclasses_what_the_docstring_tree_draws(name: str, parent: str | None, also: list[str]) -> None:
    cls = getattr(errors, name)
    if parent is None:
        assert cls is PlexicaError
    else:
        assert issubclass(cls, getattr(errors, parent))
    for base in also:
        assert issubclass(cls, getattr(errors, base, None) or getattr(builtins, base))


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_a_plexica_error_named_error(name: str) -> None:
    cls = getattr(errors, name)
    assert issubclass(cls, PlexicaError)
    assert name.endswith("Error")


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (SettingsError(["x"]), ValueError),
        (ValidationError("bad"), ValueError),
        (InvalidTenantSlugError("Bad"), ValueError),
        (NotFoundError("gone"), LookupError),
        (TenantNotFoundError("acme"), LookupError),
        (MissingDependencyError("redis", "redis"), ImportError),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
def test_errors_are_catchable_as_their_builtin_category(error: PlexicaError, category: type[Exception]) -> None:
    with pytest.raises(category):
        raise error


def test_settings_error_lists_every_problem_and_the_file() -> None:
    error = SettingsError(["a bad", "b bad"], path="plexica.toml")
    assert error.problems == ["a bad", "b bad"]
    assert error.path == "plexica.toml"
    assert str(error) == "invalid settings in plexica.toml: a bad; b bad"


def test_settings_error_without_a_file_says_so_without_a_path() -> None:
    assert str(SettingsError(["a bad"])) == "invalid settings: a bad"


def test_validation_error_problems_default_to_the_message() -> None:
    error = ValidationError("name is required", field="name")
    assert error.field == "name"
    assert error.problems == ["name is required"]


def test_invalid_tenant_slug_error_is_a_validation_and_tenant_error_for_the_slug_field() -> None:
    error = InvalidTenantSlugError("Acme")
    assert isinstance(error, ValidationError)
    assert isinstance(error, TenantError)
    assert error.tenant_slug == "Acme"
    assert error.field == "slug"
    assert error.problems == [str(error)]
    assert "'Acme'" in str(error)


def test_invalid_tenant_slug_error_message_stays_short_for_a_huge_slug() -> None:
    error = InvalidTenantSlugError("x" * 10_000)
    assert error.tenant_slug == "x" * 10_000
    assert len(str(error)) < 300


def test_tenant_not_found_error_names_the_slug_and_the_resource() -> None:
    error = TenantNotFoundError("acme")
    assert isinstance(error, TenantError)
    assert error.tenant_slug == "acme"
    assert error.resource == "tenant"
    assert str(error) == "no tenant with slug 'acme'"


def test_tenant_suspended_error_names_the_slug() -> None:
    error = TenantSuspendedError("acme")
    assert error.tenant_slug == "acme"
    assert "'acme'" in str(error)


def test_tenant_context_missing_error_says_what_needed_the_context() -> None:
    assert str(TenantContextMissingError("loading notes")) == "loading notes needs a tenant context and none is set"


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (PermissionDeniedError("notes:note:read"), "permission 'notes:note:read' denied"),
        (
            PermissionDeniedError("notes:note:read", "no role grants it"),
            "permission 'notes:note:read' denied: no role grants it",
        ),
        (BackendUnavailableError("redis"), "redis is unavailable"),
        (BackendUnavailableError("redis", "connection refused"), "redis is unavailable: connection refused"),
    ],
    ids=["denied", "denied-with-explanation", "unavailable", "unavailable-with-reason"],
)
def test_optional_explanations_are_appended_only_when_given(error: PlexicaError, message: str) -> None:
    assert str(error) == message


def test_permission_denied_error_keeps_permission_and_explanation_as_attributes() -> None:
    error = PermissionDeniedError("notes:note:read", "no role grants it")
    assert (error.permission, error.explanation) == ("notes:note:read", "no role grants it")


def test_plugin_load_error_names_the_plugin_and_the_reason() -> None:
    error = PluginLoadError("notes", "bad manifest")
    assert isinstance(error, PluginError)
    assert (error.plugin, error.reason) == ("notes", "bad manifest")
    assert str(error) == "plugin 'notes' cannot be loaded: bad manifest"


def test_plugin_call_error_names_the_plugin_the_hook_and_the_reason() -> None:
    error = PluginCallError("notes", "plexica_tenant_provisioned", "timed out")
    assert isinstance(error, PluginError)
    assert (error.plugin, error.hook, error.reason) == ("notes", "plexica_tenant_provisioned", "timed out")
    assert str(error) == "plugin 'notes' failed in plexica_tenant_provisioned: timed out"


def test_missing_dependency_error_says_which_extra_to_install() -> None:
    error = MissingDependencyError("redis", "redis.asyncio")
    assert (error.extra, error.module) == ("redis", "redis.asyncio")
    assert "pip install 'plexica[redis]'" in str(error)


@pytest.mark.parametrize(
    ("error", "attribute", "value"),
    [
        (NotFoundError("no such note", resource="note"), "resource", "note"),
        (ConflictError("duplicate", resource="note"), "resource", "note"),
        (TenantError("broken", tenant_slug="acme"), "tenant_slug", "acme"),
        (EventError("unknown type", event_type="notes.note.created"), "event_type", "notes.note.created"),
        (AuthenticationError("token expired"), "reason", "token expired"),
    ],
    ids=["not-found", "conflict", "tenant", "event", "authentication"],
)
def test_context_travels_as_attributes(error: PlexicaError, attribute: str, value: str) -> None:
    assert getattr(error, attribute) == value
