"""Value types: frozen, keyword-only, with the few behaviours they carry."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from plexica_sdk import types
from plexica_sdk.types import (
    PERMISSION_KEY_RE,
    PLUGIN_NAME_RE,
    Event,
    FrontendDef,
    PermissionDef,
    PluginInfo,
    PluginManifest,
    Principal,
    RoleDef,
    Subscription,
    TenantContext,
)
from tests.sdk.samples import SAMPLES

VALUE_TYPES = [getattr(types, name) for name in types.__all__ if attrs.has(getattr(types, name))]


async def on_note_created(event: Event, host: Any) -> None:
    """A subscription handler for the tests."""


def test_samples_cover_every_value_type() -> None:
    assert {type(sample) for sample in SAMPLES.values()} | {Subscription} == set(VALUE_TYPES)


@pytest.mark.parametrize("cls", VALUE_TYPES, ids=lambda cls: cls.__name__)
def test_value_types_take_keyword_arguments_only(cls: type) -> None:
    assert all(field.kw_only for field in attrs.fields(cls))


@pytest.mark.parametrize("sample", SAMPLES.values(), ids=SAMPLES.keys())
def test_a_value_cannot_be_changed_after_creation(sample: Any) -> None:
    first_field = attrs.fields(type(sample))[0].name
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        setattr(sample, first_field, None)


def test_principal_repr_keeps_personal_data_out() -> None:
    principal = Principal(id="u-1", email="ada@example.com", name="Ada Lovelace", username="ada")
    assert "ada@example.com" not in repr(principal)
    assert "Ada Lovelace" not in repr(principal)
    assert "u-1" in repr(principal)


@pytest.mark.parametrize(
    "build",
    [
        lambda given: Principal(id="u-1", roles=given).roles,
        lambda given: RoleDef(name="editor", permissions=given).permissions,
        lambda given: FrontendDef(remote_entry="/x.js", exposed_modules=given).exposed_modules,
        lambda given: PluginInfo(name="notes", version="1.0.0", permissions=given).permissions,
    ],
    ids=["principal-roles", "role-permissions", "frontend-modules", "plugin-info-permissions"],
)
def test_string_lists_become_tuples(build: Callable[[list[str]], tuple[str, ...]]) -> None:
    assert build(["a", "b"]) == ("a", "b")


def test_tenant_context_derives_cache_prefix_and_bucket_from_the_slug() -> None:
    ctx = TenantContext(tenant_id="t-1", slug="acme", schema="tenant_acme")
    assert ctx.cache_prefix == "tenant:{acme}:"
    assert ctx.bucket == "tenant-acme"


def test_tenant_context_defaults_to_an_active_standard_tenant_without_user() -> None:
    ctx = TenantContext(tenant_id="t-1", slug="acme", schema="tenant_acme")
    assert (ctx.plan, ctx.status, ctx.user, ctx.workspace_id) == ("standard", "active", None, None)


def test_permission_def_knows_its_plugin() -> None:
    assert PermissionDef(key="notes:note:read").plugin == "notes"


def test_events_get_a_fresh_uuid_and_an_aware_utc_time() -> None:
    before = dt.datetime.now(dt.UTC)
    first, second = Event(type="notes.note.created", source="notes"), Event(type="notes.note.created", source="notes")
    assert first.id != second.id
    assert uuid.UUID(first.id).version == 4
    assert first.time.tzinfo is not None
    assert before <= first.time <= dt.datetime.now(dt.UTC)


def test_events_are_cloudevents_1_0_json_by_default() -> None:
    event = Event(type="notes.note.created", source="notes")
    assert (event.specversion, event.datacontenttype, event.schemaversion) == ("1.0", "application/json", 1)


def test_subscription_is_named_after_its_handler_by_default() -> None:
    subscription = Subscription(event_type="notes.note.created", handler=on_note_created)
    assert subscription.name == "on_note_created"
    assert subscription.max_attempts is None  # the host's events.max_attempts applies


def test_subscription_name_can_be_given() -> None:
    subscription = Subscription(event_type="notes.*", handler=on_note_created, name="audit")
    assert subscription.name == "audit"


def test_subscriptions_compare_without_their_handler_and_hide_it_from_repr() -> None:
    async def other(event: Event, host: Any) -> None:
        """Another handler."""

    first = Subscription(event_type="notes.*", handler=on_note_created, name="audit")
    second = Subscription(event_type="notes.*", handler=other, name="audit")
    assert first == second
    assert "handler" not in repr(first)


def test_manifest_sequences_become_tuples_and_requires_is_not_shared() -> None:
    first = PluginManifest(name="notes", version="1.0.0", permissions=[PermissionDef(key="notes:note:read")])
    second = PluginManifest(name="tasks", version="1.0.0")
    assert first.permissions == (PermissionDef(key="notes:note:read"),)
    assert first.requires is not second.requires


@pytest.mark.parametrize(
    "name",
    ["ab", "notes", "crm-sync", "a1", "a" * 63],
    ids=["two-chars", "word", "dashed", "digit", "63-chars"],
)
def test_plugin_name_pattern_accepts(name: str) -> None:
    assert PLUGIN_NAME_RE.match(name)


@pytest.mark.parametrize(
    "name",
    ["a", "Notes", "1notes", "-notes", "notes_app", "notes.app", "a" * 64, ""],
    ids=["one-char", "uppercase", "leading-digit", "leading-dash", "underscore", "dot", "64-chars", "empty"],
)
def test_plugin_name_pattern_rejects(name: str) -> None:
    assert not PLUGIN_NAME_RE.match(name)


@pytest.mark.parametrize(
    "key",
    ["notes:note:read", "notes:note_item:mark-done", "notes:note:*", "notes:*:*", "crm-sync:deal:read"],
    ids=["plain", "underscore-and-dash", "action-wildcard", "resource-wildcard", "dashed-plugin"],
)
def test_permission_key_pattern_accepts(key: str) -> None:
    assert PERMISSION_KEY_RE.match(key)


@pytest.mark.parametrize(
    "key",
    ["notes:note", "notes:note:read:extra", "Notes:note:read", "notes:Note:read", "notes::read", "notes:1note:read"],
    ids=["two-segments", "four-segments", "uppercase-plugin", "uppercase-resource", "empty-segment", "digit-first"],
)
def test_permission_key_pattern_rejects(key: str) -> None:
    assert not PERMISSION_KEY_RE.match(key)
