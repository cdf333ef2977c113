"""JSON Schema from attrs classes (``plexica_sdk.schema``): what the host's ``/openapi.json`` is made of."""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any, Literal

import attrs
import jsonschema
import pytest

from plexica_sdk import api
from plexica_sdk.converter import structure, unstructure
from plexica_sdk.errors import ValidationError
from plexica_sdk.schema import Query, RouteApi, json_schema, route_api


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen(kw_only=True)
class Tag:
    """A label on an item."""

    label: str = attrs.field(validator=attrs.validators.matches_re(r"[a-z]+"))


@attrs.frozen(kw_only=True)
class Item:
    """An item with every kind of field the core API uses."""

    name: str = attrs.field(validator=[attrs.validators.min_len(1), attrs.validators.max_len(10)])
    count: int = attrs.field(default=0, validator=[attrs.validators.ge(0), attrs.validators.lt(100)])
    ratio: float = 0.5
    done: bool = False
    note: str | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.max_len(5)))
    role: Literal["admin", "member"] = "member"
    colour: Colour = Colour.RED
    tags: tuple[Tag, ...] = attrs.field(default=(), validator=attrs.validators.max_len(3))
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    at: dt.datetime | None = None


def test_attrs_classes_become_referenced_objects_with_their_validators_bounds() -> None:
    components: dict[str, Any] = {}
    assert json_schema(Item, components) == {"$ref": "#/components/schemas/Item"}
    item = components["Item"]
    assert item["required"] == ["name"] and item["additionalProperties"] is False
    assert item["description"] == "An item with every kind of field the core API uses."
    props = item["properties"]
    assert props["name"] == {"type": "string", "minLength": 1, "maxLength": 10}
    assert props["count"] == {"type": "integer", "minimum": 0, "exclusiveMaximum": 100}
    assert props["note"] == {"anyOf": [{"type": "string", "maxLength": 5}, {"type": "null"}]}
    assert props["role"] == {"enum": ["admin", "member"]}
    assert props["colour"] == {"enum": ["red", "blue"]}
    assert props["tags"] == {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}, "maxItems": 3}
    assert props["extra"] == {"type": "object", "additionalProperties": {}}
    assert props["at"] == {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
    assert components["Tag"]["properties"]["label"] == {"type": "string", "pattern": "^(?:[a-z]+)$"}


@pytest.mark.parametrize(
    "data",
    [
        {"name": "ok", "count": 3, "tags": [{"label": "abc"}], "at": "2026-01-01T00:00:00+00:00"},
        {"name": "x" * 11},
        {"name": "ok", "count": 100},
        {"name": "ok", "tags": [{"label": "ABC"}]},
        {"name": "ok", "surprise": 1},
        {"name": "ok", "role": "owner"},
        {"count": 1},
    ],
)
def test_the_schema_and_the_converter_agree_on_what_is_valid(data: dict[str, Any]) -> None:
    components: dict[str, Any] = {}
    json_schema(Item, components)
    schema = _refs_to_defs({**components["Item"], "$defs": components})
    schema_ok = jsonschema.Draft202012Validator(schema).is_valid(data)
    try:
        structure(data, Item)
    except ValidationError:
        converter_ok = False
    else:
        converter_ok = True
    assert schema_ok == converter_ok


def test_unstructured_values_fit_their_schema() -> None:
    components: dict[str, Any] = {}
    json_schema(Item, components)
    schema = {**components["Item"], "$defs": components}
    rebased = _refs_to_defs(schema)
    value = Item(name="n", tags=(Tag(label="a"),), at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), colour=Colour.BLUE)
    jsonschema.validate(unstructure(value), rebased, cls=jsonschema.Draft202012Validator)


def _refs_to_defs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            key: (value.replace("#/components/schemas/", "#/$defs/") if key == "$ref" else _refs_to_defs(value))
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_refs_to_defs(value) for value in schema]
    return schema


def test_a_type_json_schema_cannot_express_is_refused() -> None:
    with pytest.raises(TypeError, match="keys are strings"):
        json_schema(dict[int, str], {})
    with pytest.raises(TypeError, match="no JSON Schema"):
        json_schema(complex, {})


def test_api_attaches_metadata_and_changes_nothing_else() -> None:
    async def handler(request: object) -> str:
        return "same"

    decorated = api(request=Item, response=Tag, status=201, query=(Query.integer("limit", minimum=1),))(handler)
    assert decorated is handler
    meta = route_api(handler)
    assert isinstance(meta, RouteApi) and meta.request is Item and meta.status == 201
    assert meta.query[0].schema == {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "maxLength": 0}]}
    assert route_api(lambda request: None) is None
