"""Wire protocol v1 encoding: every SDK error survives the trip as itself; nothing else can be smuggled in."""

from __future__ import annotations

import json

import pytest

from plexica_sdk import errors
from plexica_sdk.errors import (
    NotFoundError,
    PermissionDeniedError,
    PlexicaError,
    PluginCallError,
    ValidationError,
)
from plexica_sdk.remote import RPC_HOOKS, decode_problem, decode_result, encode_problem
from plexica_sdk.remote.wire import hook_argument_types
from plexica_sdk.types import ObjectInfo, PermissionDef

#: One instance of every SDK error class, with every attribute set.
SAMPLES: dict[str, PlexicaError] = {
    "PlexicaError": errors.PlexicaError("plain"),
    "SettingsError": errors.SettingsError(["a: bad", "b: worse"], path="plexica.toml"),
    "ValidationError": errors.ValidationError("bad", field="members[2].role", problems=["p1", "p2"]),
    "InvalidTenantSlugError": errors.InvalidTenantSlugError("Bad_Slug"),
    "PayloadTooLargeError": errors.PayloadTooLargeError(1024),
    "UnsupportedMediaTypeError": errors.UnsupportedMediaTypeError("text/plain"),
    "NotFoundError": errors.NotFoundError("no note", resource="note"),
    "TenantNotFoundError": errors.TenantNotFoundError("acme"),
    "ConflictError": errors.ConflictError("taken", resource="note"),
    "TenantError": errors.TenantError("odd", tenant_slug="acme"),
    "TenantSuspendedError": errors.TenantSuspendedError("acme"),
    "TenantContextMissingError": errors.TenantContextMissingError("a note query"),
    "AuthenticationError": errors.AuthenticationError("token expired"),
    "PermissionDeniedError": errors.PermissionDeniedError("notes:note:write", "role member"),
    "PluginError": errors.PluginError("broken", plugin="notes"),
    "PluginLoadError": errors.PluginLoadError("notes", "no manifest"),
    "PluginCallError": errors.PluginCallError("notes", "plexica_permissions", "raised"),
    "PluginAnswerError": errors.PluginAnswerError("notes", "a route", "not JSON"),
    "PluginUnavailableError": errors.PluginUnavailableError("notes", "a route", "connection refused"),
    "PluginTimeoutError": errors.PluginTimeoutError("notes", "plexica_resource_attributes", 2.5),
    "PluginContractError": errors.PluginContractError("notes", "undeclared", event_type="notes.x"),
    "EventError": errors.EventError("unknown type", event_type="notes.y"),
    "RateLimitedError": errors.RateLimitedError(2.5, policy="tenant"),
    "BackendUnavailableError": errors.BackendUnavailableError("redis", "timeout"),
    "MissingDependencyError": errors.MissingDependencyError("redis", "redis"),
}

STATUS = {
    "AuthenticationError": 401,
    "PermissionDeniedError": 403,
    "TenantSuspendedError": 403,
    "NotFoundError": 404,
    "TenantNotFoundError": 404,
    "ConflictError": 409,
    "PayloadTooLargeError": 413,
    "UnsupportedMediaTypeError": 415,
    "ValidationError": 422,
    "InvalidTenantSlugError": 422,
    "RateLimitedError": 429,
    "BackendUnavailableError": 503,
    "PluginUnavailableError": 503,
    "PluginTimeoutError": 504,
}


def test_the_samples_cover_every_sdk_error_class() -> None:
    classes = {name for name in errors.__all__ if issubclass(getattr(errors, name), PlexicaError)}
    assert set(SAMPLES) == classes


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sdk_error_round_trips_as_the_same_class_message_and_attributes(name: str) -> None:
    original = SAMPLES[name]
    status, body = encode_problem(original, plugin="notes", hook="plexica_permissions")
    assert status == STATUS.get(name, 500)
    assert body["status"] == status and body["error"] == name and body["type"].endswith("/" + name)
    wire = json.loads(json.dumps(body))  # it really is JSON
    decoded = decode_problem(status, wire, plugin="notes")
    assert type(decoded) is type(original)
    assert str(decoded) == str(original)
    assert {key: (list(v) if isinstance(v, tuple) else v) for key, v in vars(original).items()} == vars(decoded)
    with pytest.raises(type(original)):  # re-raisable host-side, caught by the same except clauses
        raise decoded


def test_a_plugin_bug_travels_as_plugin_call_error_without_its_message() -> None:
    status, body = encode_problem(KeyError("tenant acme's secret row"), plugin="notes", hook="plexica_policies")
    assert status == 500
    decoded = decode_problem(status, body, plugin="notes")
    assert isinstance(decoded, PluginCallError)
    assert decoded.hook == "plexica_policies" and "KeyError" in str(decoded)
    assert "secret" not in json.dumps(body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"error": "SystemExit", "detail": "bye"}, id="not-an-sdk-class"),
        pytest.param({"error": "KeyboardInterrupt"}, id="base-exception"),
        pytest.param({"title": "Bad Gateway"}, id="no-error-name"),
        pytest.param("<html>502</html>", id="not-json-object"),
        pytest.param(None, id="empty"),
    ],
)
def test_anything_but_an_sdk_error_decodes_as_plugin_call_error(body: object) -> None:
    decoded = decode_problem(502, body, plugin="notes")
    assert type(decoded) is errors.PluginAnswerError and isinstance(decoded, PluginCallError)
    assert decoded.plugin == "notes"


def test_subclasses_stay_catchable_by_their_bases() -> None:
    status, body = encode_problem(errors.TenantNotFoundError("acme"), plugin="notes")
    decoded = decode_problem(status, body, plugin="notes")
    assert isinstance(decoded, NotFoundError) and isinstance(decoded, errors.TenantError)
    assert isinstance(
        decode_problem(403, encode_problem(PermissionDeniedError("x"), plugin="n")[1], plugin="n"), PlexicaError
    )


def test_results_are_structured_by_the_hooks_return_type() -> None:
    assert decode_result("plexica_permissions", [{"key": "notes:note:read"}]) == (PermissionDef(key="notes:note:read"),)
    assert decode_result("plexica_resource_attributes", {"owner": "u-1"}) == {"owner": "u-1"}
    assert decode_result("plexica_resource_attributes", None) is None
    assert decode_result("plexica_tenant_provisioned", None) is None
    with pytest.raises(ValidationError):
        decode_result("plexica_tenant_provisioned", {"surprise": 1})
    with pytest.raises(ValidationError):
        decode_result("plexica_permissions", [{"key": "x", "unknown": 1}])


def test_tenant_and_host_are_never_wire_arguments_and_local_hooks_are_not_remote() -> None:
    assert hook_argument_types("plexica_object_uploaded") == {"key": str, "info": ObjectInfo}
    assert hook_argument_types("plexica_plugin_upgraded") == {"from_version": str, "to_version": str}
    for hook in ("plexica_routes", "plexica_cache_backend", "plexica_tenant_migrations", "no_such_hook"):
        assert hook not in RPC_HOOKS
        with pytest.raises(NotFoundError):
            hook_argument_types(hook)


class AddressRefusedError(errors.ValidationError):
    """A plugin's own error class, as the webhooks plugin defines one."""


def test_a_plugins_own_subclass_of_an_sdk_error_travels_as_that_sdk_error() -> None:
    status, body = encode_problem(AddressRefusedError("the URL must use https", field="url"), plugin="webhooks")

    assert (status, body["error"], body["detail"]) == (422, "ValidationError", "the URL must use https")
    decoded = decode_problem(status, json.loads(json.dumps(body)), plugin="webhooks")
    assert type(decoded) is errors.ValidationError and str(decoded) == "the URL must use https"
