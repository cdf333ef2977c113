"""The one converter: every value type survives a trip through JSON, and bad data is reported per field."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plexica_sdk.converter import structure, unstructure
from plexica_sdk.errors import ValidationError
from plexica_sdk.types import (
    Decision,
    Event,
    EventTypeDef,
    FrontendDef,
    PermissionDef,
    PluginManifest,
    Principal,
    RoleDef,
    Subscription,
    TenantInfo,
)
from tests.sdk.samples import SAMPLES, WHEN

# No example database: the tests must not leave a .hypothesis directory in the work tree.
fast = settings(max_examples=60, deadline=None, database=None)


async def on_note_created(event: Event, host: Any) -> None:
    """A subscription handler for the tests."""


def _through_json(value: Any) -> Any:
    return json.loads(json.dumps(unstructure(value)))


@pytest.mark.parametrize("sample", SAMPLES.values(), ids=SAMPLES.keys())
def test_every_value_type_round_trips_through_json(sample: Any) -> None:
    assert structure(_through_json(sample), type(sample)) == sample


def test_datetimes_travel_as_iso_8601_strings() -> None:
    assert unstructure(SAMPLES["event"])["time"] == "2025-03-14T15:09:26.535897+00:00"


def test_structure_accepts_datetime_objects_as_they_are() -> None:
    data = unstructure(SAMPLES["tenant-info"]) | {"created_at": WHEN}
    assert structure(data, TenantInfo).created_at == WHEN


def test_tuples_travel_as_lists() -> None:
    assert unstructure(SAMPLES["principal"])["roles"] == ["member", "editor"]


def test_subscription_travels_as_its_name_without_the_handler() -> None:
    subscription = Subscription(event_type="notes.note.*", handler=on_note_created, max_attempts=5)
    assert unstructure(subscription) == {"event_type": "notes.note.*", "name": "on_note_created", "max_attempts": 5}


def test_subscriptions_inside_containers_also_drop_the_handler() -> None:
    subscription = Subscription(event_type="notes.note.*", handler=on_note_created, name="audit")
    assert unstructure([subscription]) == [{"event_type": "notes.note.*", "name": "audit", "max_attempts": None}]


# ------------------------------------------------------------------ bad data


def test_structure_reports_every_bad_field_at_once() -> None:
    with pytest.raises(ValidationError) as excinfo:
        structure({"slug": "acme", "status": "bogus", "extra": 1}, TenantInfo)
    problems = excinfo.value.problems
    assert "id: required field missing" in problems
    assert "name: required field missing" in problems
    assert "schema: required field missing" in problems
    assert any(problem.startswith("status: ") and "bogus" in problem for problem in problems)
    assert "extra: unknown field" in problems
    assert len(problems) == 5
    # Each problem names its field: the paths are the data's, never the class's name.
    assert sorted(str(field) for field in excinfo.value.fields) == ["extra", "id", "name", "schema", "status"]


def test_validation_error_names_the_first_bad_field_and_joins_the_problems() -> None:
    with pytest.raises(ValidationError) as excinfo:
        structure({"id": "u-1", "roles": 3}, Principal)
    error = excinfo.value
    assert error.field == "roles"
    assert str(error) == "; ".join(error.problems)


def test_a_bad_nested_value_is_reported_with_its_path() -> None:
    data = unstructure(SAMPLES["plugin-manifest"])
    data["permissions"][1] = {"description": "no key"}
    with pytest.raises(ValidationError) as excinfo:
        structure(data, PluginManifest)
    assert excinfo.value.problems == ["permissions[1].key: required field missing"]
    assert excinfo.value.field == "permissions[1].key"


def test_a_bad_datetime_is_reported_for_its_field() -> None:
    data = unstructure(SAMPLES["tenant-info"]) | {"created_at": "yesterday"}
    with pytest.raises(ValidationError) as excinfo:
        structure(data, TenantInfo)
    assert excinfo.value.field == "created_at"


@pytest.mark.parametrize(
    "data",
    [None, 42, "principal", ["u-1"]],
    ids=["null", "number", "string", "list"],
)
def test_structure_of_a_non_object_raises_validation_error(data: Any) -> None:
    with pytest.raises(ValidationError):
        structure(data, Principal)


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        ({"allowed": "false", "reason": "x"}, Decision),
        ({"allowed": 0, "reason": "x"}, Decision),
        ({"id": "u-1", "roles": "tenant_admin"}, Principal),
        ({"name": "editor", "permissions": "notes:note:read"}, RoleDef),
    ],
    ids=["string-for-bool", "number-for-bool", "string-for-role-list", "string-for-permission-list"],
)
def test_structure_rejects_values_of_the_wrong_json_type_instead_of_coercing(data: Any, cls: type) -> None:
    # bool("false") is True and tuple("tenant_admin") is a tuple of letters: coercing would
    # silently turn a remote "no" into a "yes", or a role into characters.
    with pytest.raises(ValidationError):
        structure(data, cls)


# ---------------------------------------------------------------- properties

text = st.text(max_size=20)
json_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)
times = st.datetimes(timezones=st.just(dt.UTC)) | st.datetimes()

events = st.builds(
    Event,
    type=text,
    source=text,
    data=json_values,
    id=text,
    specversion=text,
    time=times,
    subject=st.none() | text,
    datacontenttype=text,
    tenantid=st.none() | text,
    workspaceid=st.none() | text,
    userid=st.none() | text,
    traceid=st.none() | text,
    schemaversion=st.integers(),
)

manifests = st.builds(
    PluginManifest,
    name=text,
    version=text,
    description=text,
    requires=st.dictionaries(text, text, max_size=3),
    permissions=st.lists(st.builds(PermissionDef, key=text, description=text), max_size=3),
    default_roles=st.lists(st.builds(RoleDef, name=text, permissions=st.lists(text, max_size=3)), max_size=3),
    event_types=st.lists(
        st.builds(
            EventTypeDef,
            type=text,
            description=text,
            schema=st.none() | st.dictionaries(text, json_values, max_size=3),
            version=st.integers(),
        ),
        max_size=3,
    ),
    config_schema=st.none() | st.dictionaries(text, json_values, max_size=3),
    frontend=st.none() | st.builds(FrontendDef, remote_entry=text, exposed_modules=st.lists(text, max_size=3)),
)


@fast
@given(events)
def test_any_event_round_trips_through_json(event: Event) -> None:
    assert structure(_through_json(event), Event) == event


@fast
@given(manifests)
def test_any_manifest_round_trips_through_json(manifest: PluginManifest) -> None:
    assert structure(_through_json(manifest), PluginManifest) == manifest


@fast
@given(manifests)
def test_unstructured_manifest_has_exactly_the_attribute_names(manifest: PluginManifest) -> None:
    assert set(unstructure(manifest)) == {field.name for field in attrs.fields(PluginManifest)}


@attrs.frozen(kw_only=True)
class _Member:
    user_id: str = attrs.field(validator=attrs.validators.max_len(5))
    role: Literal["admin", "member"] = "member"


@attrs.frozen(kw_only=True)
class _Team:
    title: str = attrs.field(validator=attrs.validators.min_len(1))
    members: tuple[_Member, ...] = ()
    size: int = attrs.field(default=0, validator=attrs.validators.in_(range(10)))


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {"title": "t", "members": [{"user_id": "a"}, {"user_id": "b"}, {"user_id": "c", "role": "x"}]},
            "members[2].role",
        ),
        ({"title": "t", "members": [{"user_id": "toolong"}]}, "members[0].user_id"),  # a validator, in __init__
        ({"title": ""}, "title"),
        ({"title": "t", "size": 12}, "size"),  # in_ passes the attribute itself
        ({"title": "t", "members": [{"user_id": "a", "colour": "red"}]}, "members[0].colour"),
        ({"title": "t", "members": "ab"}, "members"),
        ([1], "body"),
    ],
    ids=["literal", "validator", "min-length", "in", "unknown-field", "string-for-list", "not-an-object"],
)
def test_every_problem_names_the_field_path_in_the_data(data: object, field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        structure(data, _Team)
    assert excinfo.value.field == field
    assert excinfo.value.fields == [field]
    assert excinfo.value.problems[0].startswith(f"{field}: ")
