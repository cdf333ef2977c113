"""The one cattrs converter that turns value types into JSON-ready data and back.

The remote adapter, the HTTP API and the event envelope all use it, so a value looks the same
wherever it travels. Datetimes are ISO 8601 strings, tuples are lists, and a ``Subscription``'s
handler travels as its name only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, get_args, get_origin

import cattrs
from cattrs.cols import homogenous_tuple_structure_factory
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
        ValidationError: the data does not fit ``cls``; ``problems`` has one line per field.
    """
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError, AttributeError) as exc:
        problems = (
            cattrs.transform_error(exc, path=cls.__name__)
            if isinstance(exc, cattrs.BaseValidationError)
            else [f"{cls.__name__}: {exc}"]
        )
        field = problems[0].split(" @ ", 1)[-1] if " @ " in problems[0] else None
        raise ValidationError("; ".join(problems), field=field, problems=problems) from exc
