"""The one cattrs converter that turns value types into JSON-ready data and back.

The remote adapter, the HTTP API and the event envelope all use it, so a value looks the same
wherever it travels. Datetimes are ISO 8601 strings, tuples are lists, and a ``Subscription``'s
handler travels as its name only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs
import cattrs.v
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.errors import CattrsError, ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.preconf.json import make_converter

from plexica_sdk.errors import ValidationError
from plexica_sdk.types import Subscription

__all__ = ["build_converter", "converter", "structure", "unstructure"]

T = TypeVar("T")


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_bool(value: Any, _: type) -> bool:
    # bool("false") is True: only JSON booleans are booleans.
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _is_homogeneous_tuple(cls: Any) -> bool:
    args = get_args(cls)
    return get_origin(cls) is tuple and len(args) == 2 and args[1] is Ellipsis


def _strict_tuple_factory(cls: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    base = homogenous_tuple_structure_factory(cls, conv)

    def structure_tuple(value: Any, type_: Any) -> Any:
        # tuple("tenant_admin") is a tuple of letters: a string or an object is never a list.
        if isinstance(value, str | bytes | Mapping):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return base(value, type_)

    return structure_tuple


def build_converter() -> cattrs.Converter:
    """A JSON converter that refuses to coerce: no strings for lists, no "false" for booleans."""
    conv = make_converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook_factory(_is_homogeneous_tuple, _strict_tuple_factory)
    return conv


converter = build_converter()


def _structure_datetime(value: Any, _: type) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


converter.register_structure_hook(dt.datetime, _structure_datetime)
converter.register_unstructure_hook(dt.datetime, lambda value: value.isoformat())


def _unstructure_subscription(value: Subscription) -> dict[str, Any]:
    return {"event_type": value.event_type, "name": value.name, "max_attempts": value.max_attempts}


# A predicate hook: resolving Subscription's annotations would need the Host protocol at runtime.
converter.register_unstructure_hook_func(lambda cls: cls is Subscription, _unstructure_subscription)


def unstructure(value: Any) -> Any:
    """Turn a value type (or builtins holding them) into JSON-ready data."""
    return converter.unstructure(value)


def structure(data: Any, cls: type[T]) -> T:
    """Build ``cls`` from JSON-ready data.

    Raises:
        ValidationError: the data does not fit ``cls``; ``problems`` has one line per field, each
            ``"<path>: <what is wrong>"`` with the field's path in the data (``members[2].role``;
            ``body`` for the whole value), and ``fields`` the paths, line for line.
    """
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
        found = _field_errors(exc, "")
        fields = [path or "body" for path, _ in found]
        problems = [f"{field}: {message}" for field, (_, message) in zip(fields, found, strict=True)]
        raise ValidationError("; ".join(problems), field=fields[0], problems=problems, fields=fields) from exc


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _field_errors(exc: BaseException, path: str) -> list[tuple[str, str]]:
    """``(path, message)`` for every leaf error under ``exc``, paths written as the data is (no class names)."""
    if isinstance(exc, IterableValidationError):
        indexed, unplaced = exc.group_exceptions()
        found = [item for inner, index in indexed for item in _field_errors(inner, f"{path}[{index.index!r}]")]
        return found + [(path, _describe(inner)) for inner in unplaced]
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        found = [item for inner, note in with_notes for item in _field_errors(inner, _join(path, note.name))]
        names = _field_names(exc.cl)
        for inner in without:
            if isinstance(inner, ForbiddenExtraKeysError):
                found.extend((_join(path, key), "unknown field") for key in sorted(inner.extra_fields))
            else:
                # An attrs validator ran in __init__, outside cattrs' per-field bookkeeping: find its field.
                field = _validator_field(inner, names)
                found.append((_join(path, field) if field else path, _describe(inner)))
        return found
    return [(path, _describe(exc))]


def _field_names(cls: Any) -> frozenset[str]:
    return frozenset(field.name for field in attrs.fields(cls)) if attrs.has(cls) else frozenset()


_QUOTED_NAME = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")


def _validator_field(exc: BaseException, names: frozenset[str]) -> str | None:
    """The field an attrs validator complained about: its ``Attribute`` argument, else the quoted name."""
    for arg in exc.args[1:]:
        if isinstance(arg, attrs.Attribute):
            return arg.name
    message = str(exc.args[0]) if exc.args else ""
    return next((name for name in _QUOTED_NAME.findall(message) if name in names), None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ValidationError):
        return str(exc)
    if isinstance(exc, ValueError | TypeError | CattrsError) and exc.args and isinstance(exc.args[0], str):
        message = exc.args[0]
        if " not in literal " in message:
            value, _, allowed = message.partition(" not in literal ")
            return f"{value[:64]!r} is not one of {allowed.removeprefix('typing.Literal')}"
        return message
    return cattrs.v.format_exception(exc, None)
