"""JSON Schema from the attrs classes the converter structures, and route metadata for OpenAPI.

The host's ``/openapi.json`` describes a route's body and answer with the very classes its handler
structures and unstructures, so the document cannot drift from the code. :func:`json_schema`
covers the types Plexica uses (``str``, ``int``, ``float``, ``bool``, ``None``, ``Optional``,
unions, ``list``, ``tuple[X, ...]``, ``dict[str, X]``, ``Mapping``, ``Literal``, enums,
``datetime``, nested attrs classes, ``Any``) and carries attrs validators' bounds where JSON Schema
can say them (``min_len``/``max_len``, ``ge``/``gt``/``le``/``lt``, ``matches_re``, ``in_``). A
type it cannot express raises ``TypeError``: a schema that says less than the code is a lie.

A plugin attaches the same metadata to its handlers with :func:`api`::

    @plexica_sdk.api(request=NoteInput, response=Note, status=201)
    async def create_note(request): ...
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal, TypeVar, Union, get_args, get_origin

import attrs

__all__ = ["API_ATTRIBUTE", "Header", "Query", "RouteApi", "api", "json_schema", "route_api"]

#: The attribute :func:`api` sets on a handler.
API_ATTRIBUTE: Final = "__plexica_api__"

F = TypeVar("F", bound=Callable[..., Any])
_REF = "#/components/schemas/"


@attrs.frozen(kw_only=True)
class Query:
    """A query parameter: its name, JSON Schema and what it means."""

    name: str
    schema: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "string"})
    description: str = ""
    required: bool = False

    @classmethod
    def integer(
        cls, name: str, *, minimum: int | None = None, maximum: int | None = None, description: str = ""
    ) -> Query:
        """What :func:`plexica_sdk.query_int` reads: a whole number in range, or empty for the default."""
        number: dict[str, Any] = {"type": "integer"}
        if minimum is not None:
            number["minimum"] = minimum
        if maximum is not None:
            number["maximum"] = maximum
        return cls(name=name, schema={"anyOf": [number, {"type": "string", "maxLength": 0}]}, description=description)

    @classmethod
    def choice(cls, name: str, options: Sequence[str], *, description: str = "") -> Query:
        """One of ``options``, or empty for the default."""
        return cls(name=name, schema={"enum": [*options, ""]}, description=description)


@attrs.frozen(kw_only=True)
class Header:
    """A request header the route reads (``If-Match``)."""

    name: str
    schema: Mapping[str, Any] = attrs.field(factory=lambda: {"type": "string"})
    description: str = ""
    required: bool = False


@attrs.frozen(kw_only=True)
class RouteApi:
    """What a route takes and answers, for the OpenAPI document.

    Attributes:
        request: the attrs class (or type) of the JSON body; ``None``: no body.
        response: the type of the JSON answer; ``None``: no body (e.g. 204).
        status: the success status.
        query: the query parameters it reads.
        headers: the request headers it reads.
        errors: the client-error statuses it answers besides the ones every route may (401, 403,
            404, 429, 503), e.g. ``(409, 422)``; a body implies 413, 415 and 422.
        response_headers: headers of the success answer (``ETag``, ``Location``).
        public: no token needed.
    """

    request: Any = None
    response: Any = None
    status: int = 200
    query: tuple[Query, ...] = ()
    headers: tuple[Header, ...] = ()
    errors: tuple[int, ...] = ()
    response_headers: tuple[str, ...] = ()
    public: bool = False


def api(
    *,
    request: Any = None,
    response: Any = None,
    status: int = 200,
    query: Sequence[Query] = (),
    headers: Sequence[Header] = (),
    errors: Sequence[int] = (),
    response_headers: Sequence[str] = (),
    public: bool = False,
) -> Callable[[F], F]:
    """Attach :class:`RouteApi` metadata to a route handler (it changes nothing at run time)."""
    meta = RouteApi(
        request=request,
        response=response,
        status=status,
        query=tuple(query),
        headers=tuple(headers),
        errors=tuple(errors),
        response_headers=tuple(response_headers),
        public=public,
    )

    def attach(handler: F) -> F:
        setattr(handler, API_ATTRIBUTE, meta)
        return handler

    return attach


def route_api(handler: Any) -> RouteApi | None:
    """The metadata :func:`api` attached to ``handler``, if any."""
    meta = getattr(handler, API_ATTRIBUTE, None)
    return meta if isinstance(meta, RouteApi) else None


def json_schema(type_: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of ``type_``; attrs classes go into ``components`` and are referenced.

    Raises:
        TypeError: a type this function cannot express.
    """
    if type_ is Any or type_ is object:
        return {}
    if type_ is None or type_ is type(None):
        return {"type": "null"}
    if type_ is bool:
        return {"type": "boolean"}
    if type_ is int:
        return {"type": "integer"}
    if type_ is float:
        return {"type": "number"}
    if type_ is str:
        return {"type": "string"}
    if type_ is dt.datetime:
        return {"type": "string", "format": "date-time"}
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return {"enum": [member.value for member in type_]}
    if isinstance(type_, type) and attrs.has(type_):
        return _attrs_schema(type_, components)
    origin, args = get_origin(type_), get_args(type_)
    if origin is Literal:
        return {"enum": list(args)}
    if origin is Union or origin is types.UnionType:
        options = [json_schema(arg, components) for arg in args]
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin in (list, Sequence, typing.Sequence) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        return {"type": "array", "items": json_schema(args[0], components) if args else {}}
    if origin in (dict, Mapping, typing.Mapping):
        if args and args[0] is not str:
            raise TypeError(f"JSON object keys are strings, not {args[0]!r}")
        return {"type": "object", "additionalProperties": json_schema(args[1], components) if args else {}}
    if type_ is dict:
        return {"type": "object"}
    if type_ is list:
        return {"type": "array"}
    raise TypeError(f"no JSON Schema for {type_!r}")


def _attrs_schema(cls: type, components: dict[str, Any]) -> dict[str, Any]:
    name = cls.__name__
    if name not in components:
        components[name] = {}  # a placeholder first: recursive classes refer to themselves
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            schema = dict(json_schema(hints.get(field.name, field.type), components))
            _apply_validator(schema, field.validator)
            if field.default is attrs.NOTHING:
                required.append(field.name)
            properties[field.name] = schema
        doc = (cls.__doc__ or "").strip().split("\n\n", 1)[0]
        components[name] = {
            "type": "object",
            **({"description": " ".join(doc.split())} if doc else {}),
            "properties": properties,
            **({"required": required} if required else {}),
            "additionalProperties": False,
        }
    return {"$ref": _REF + name}


def _apply_validator(schema: dict[str, Any], validator: Any) -> None:
    """Add what an attrs validator enforces to ``schema``, where JSON Schema can say it."""
    if validator is None:
        return
    kind = type(validator).__name__
    target = _non_null(schema)
    if kind == "_AndValidator":
        for inner in validator._validators:
            _apply_validator(schema, inner)
    elif kind == "_OptionalValidator":
        _apply_validator(schema, validator.validator)
    elif kind == "_MinLengthValidator":
        target["minItems" if target.get("type") == "array" else "minLength"] = validator.min_length
    elif kind == "_MaxLengthValidator":
        target["maxItems" if target.get("type") == "array" else "maxLength"] = validator.max_length
    elif kind == "_NumberValidator":
        key = {">=": "minimum", ">": "exclusiveMinimum", "<=": "maximum", "<": "exclusiveMaximum"}[validator.compare_op]
        target[key] = validator.bound
    elif kind == "_MatchesReValidator":
        pattern = validator.pattern.pattern if isinstance(validator.pattern, re.Pattern) else validator.pattern
        target["pattern"] = pattern if pattern.startswith("^") else f"^(?:{pattern})$"
    elif kind == "_InValidator":
        target["enum"] = list(validator.options)
    elif kind == "_DeepIterable":
        if validator.member_validator is not None and isinstance(target.get("items"), dict):
            items = dict(target["items"])
            _apply_validator(items, validator.member_validator)
            target["items"] = items
        _apply_validator(schema, validator.iterable_validator)


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an ``Optional``'s ``anyOf`` (edited in place), else ``schema`` itself."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [index for index, option in enumerate(options) if option != {"type": "null"}]
        if len(rest) == 1:
            options[rest[0]] = dict(options[rest[0]])
            return options[rest[0]]  # type: ignore[no-any-return]
    return schema
