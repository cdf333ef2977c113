"""The payload pre-check never accepts what jsonschema rejects, and accepts the usual payloads."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped, unused-ignore]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plexica.events.schema import compile_precheck

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object", "properties": {"seq": {"type": "integer"}, "body": {"type": "string"}}, "required": ["seq"]},
    {"type": ["object", "null"], "additionalProperties": False, "properties": {"a": {"enum": [1, "x", True, None]}}},
    {"type": "object", "additionalProperties": {"type": "number", "minimum": 0, "exclusiveMaximum": 10}},
    {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^[a-c]+$"}},
    {"type": "array", "minItems": 1, "maxItems": 2, "items": {"const": 0}},
    {"properties": {"n": {"type": "integer", "maximum": 5}}, "minProperties": 1, "maxProperties": 2},
    {"type": "boolean", "title": "a flag", "format": "anything"},
]

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-20, 20)
    | st.floats(-20, 20)
    | st.sampled_from(["", "a", "abc", "x", "abcd"])
)
keys = st.sampled_from(["seq", "body", "a", "n", "z"])
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3), max_leaves=8
)


@pytest.mark.parametrize("schema", SCHEMAS, ids=[f"schema-{i}" for i in range(len(SCHEMAS))])
@settings(max_examples=300, deadline=None)
@given(value=values)
def test_precheck_only_accepts_what_jsonschema_accepts(schema: dict[str, Any], value: Any) -> None:
    check = compile_precheck(schema)
    assert check is not None
    if check(value):
        assert jsonschema.Draft202012Validator(schema).is_valid(value)


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        (SCHEMAS[0], {"seq": 1, "body": "x" * 1000}),
        (SCHEMAS[0], {"seq": 2.0}),
        (SCHEMAS[1], {"a": None}),
        (SCHEMAS[1], None),
        (SCHEMAS[2], {"p": 0, "q": 9.5}),
        (SCHEMAS[3], ["ab", "c"]),
        (SCHEMAS[4], [0, 0.0]),
        (SCHEMAS[5], {"n": 5, "other": "x"}),
    ],
)
def test_precheck_accepts_usual_valid_payloads(schema: dict[str, Any], value: Any) -> None:
    check = compile_precheck(schema)

    assert check is not None and check(value)


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/x", "$defs": {"x": {"type": "string"}}},
        {"anyOf": [{"type": "string"}]},
        {"type": "array", "items": [{"type": "string"}]},
        {"type": "object", "patternProperties": {"^a": {}}, "additionalProperties": False},
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
        {"properties": {"a": False}},
        {"enum": [[1], {"a": 1}]},
    ],
    ids=["ref", "any-of", "tuple-items", "pattern-properties", "draft-07", "false-schema", "container-enum"],
)
def test_schemas_beyond_the_subset_get_no_precheck(schema: dict[str, Any]) -> None:
    assert compile_precheck(schema) is None
