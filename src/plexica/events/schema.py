"""A fast pre-check for the JSON Schemas event payloads usually have.

``jsonschema`` spends tens of microseconds on even a two-property object, as much as sending the
event; every publish validates. ``compile_precheck`` turns the common subset of Draft 2020-12
(``type``, ``properties``, ``required``, ``additionalProperties``, ``items``, ``enum``, ``const``,
bounds, lengths, ``pattern``) into plain closures. It is only ever trusted to say *valid*: a
``False`` means "ask jsonschema", which stays the judge and writes the error. Schemas using
anything else get no pre-check. Pure: no IO.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sized
from typing import Any, Final, cast

__all__ = ["Check", "compile_precheck"]

Check = Callable[[Any], bool]

_DRAFT_2020_12: Final = "https://json-schema.org/draft/2020-12/schema"
_ANNOTATIONS: Final = frozenset(
    {"$schema", "$comment", "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)
_TYPES: Final[Mapping[str, Check]] = {
    "object": lambda v: type(v) is dict,
    "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str,
    "boolean": lambda v: type(v) is bool,
    "null": lambda v: v is None,
    "number": lambda v: type(v) is int or type(v) is float,
    "integer": lambda v: type(v) is int or (type(v) is float and v.is_integer()),
}
_BOUNDS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "minimum": lambda v, b: v >= b,
    "maximum": lambda v, b: v <= b,
    "exclusiveMinimum": lambda v, b: v > b,
    "exclusiveMaximum": lambda v, b: v < b,
}
_SIZES: Final[Mapping[str, tuple[type, Callable[[int, int], bool]]]] = {
    "minLength": (str, lambda n, b: n >= b),
    "maxLength": (str, lambda n, b: n <= b),
    "minItems": (list, lambda n, b: n >= b),
    "maxItems": (list, lambda n, b: n <= b),
    "minProperties": (dict, lambda n, b: n >= b),
    "maxProperties": (dict, lambda n, b: n <= b),
}


class _Unsupported(Exception):
    """The schema uses something the pre-check does not model."""


def compile_precheck(schema: Mapping[str, Any] | bool) -> Check | None:
    """A function returning ``True`` only for data ``jsonschema`` accepts, or ``None`` if the schema is out of reach."""
    if isinstance(schema, Mapping) and schema.get("$schema", _DRAFT_2020_12) != _DRAFT_2020_12:
        return None  # other drafts give keywords other meanings
    try:
        return _compile(schema)
    except _Unsupported:
        return None


def _scalar(value: Any) -> bool:
    return value is None or type(value) in (str, bool, int, float)


def _same(a: Any, b: Any) -> bool:
    """JSON equality for scalars: ``True`` is not ``1`` (containers are left to jsonschema)."""
    if type(a) is bool or type(b) is bool or a is None or b is None:
        return type(a) is type(b) and a == b
    return bool(a == b) and (type(a) is str) == (type(b) is str)


def _compile(schema: Mapping[str, Any] | bool) -> Check:
    if schema is True:
        return lambda value: True
    if not isinstance(schema, Mapping):
        raise _Unsupported  # ``false`` rejects everything: jsonschema reports it
    checks: list[Check] = []
    for keyword, argument in schema.items():
        if keyword in _ANNOTATIONS or keyword == "format":  # ``format`` only annotates in 2020-12
            continue
        checks.append(_keyword(keyword, argument, schema))
    if not checks:
        return lambda value: True
    if len(checks) == 1:
        return checks[0]

    def every(value: Any) -> bool:  # loops, not all(generator): this runs per publish
        for check in checks:  # noqa: SIM110
            if not check(value):
                return False
        return True

    return every


def _keyword(keyword: str, argument: Any, schema: Mapping[str, Any]) -> Check:
    if keyword == "type":
        names = [argument] if isinstance(argument, str) else list(argument)
        if any(name not in _TYPES for name in names):
            raise _Unsupported
        tests = [_TYPES[name] for name in names]
        if len(tests) == 1:
            return tests[0]
        return lambda value: any(test(value) for test in tests)
    if keyword in ("enum", "const"):
        options = list(argument) if keyword == "enum" else [argument]
        if not all(_scalar(option) for option in options):
            raise _Unsupported
        return lambda value: _scalar(value) and any(_same(value, option) for option in options)
    if keyword in _BOUNDS:
        bound, test = argument, _BOUNDS[keyword]
        if type(bound) not in (int, float):
            raise _Unsupported
        return lambda value: type(value) not in (int, float) or test(value, bound)
    if keyword in _SIZES:
        kind, compare = _SIZES[keyword]
        if type(argument) is not int:
            raise _Unsupported
        return lambda value: type(value) is not kind or compare(len(cast(Sized, value)), argument)
    if keyword == "pattern":
        regex = re.compile(argument)  # jsonschema uses Python's re.search as well
        return lambda value: type(value) is not str or regex.search(value) is not None
    if keyword == "required":
        names = list(argument)
        return lambda value: type(value) is not dict or all(name in value for name in names)
    if keyword == "properties":
        properties = [(name, _compile(sub)) for name, sub in argument.items()]

        def each_property(value: Any) -> bool:
            if type(value) is dict:
                for name, check in properties:
                    if name in value and not check(value[name]):
                        return False
            return True

        return each_property
    if keyword == "additionalProperties":
        if "patternProperties" in schema:
            raise _Unsupported
        known = frozenset(schema.get("properties", ()))
        if argument is False:
            return lambda value: type(value) is not dict or known.issuperset(value)
        extra = _compile(argument)
        return lambda value: type(value) is not dict or all(extra(v) for k, v in value.items() if k not in known)
    if keyword == "items":
        if "prefixItems" in schema or not isinstance(argument, Mapping | bool):
            raise _Unsupported
        item = _compile(argument)
        return lambda value: type(value) is not list or all(item(v) for v in value)
    raise _Unsupported
