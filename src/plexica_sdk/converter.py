"""The one cattrs converter that turns value types into JSON-ready data and back.

The remote adapter, the HTTP API and the event envelope all use it, so a value looks the same
wherever it travels. Datetimes are ISO 8601 strings, tuples are lists, and a ``Subscription``'s
handler travels as its name only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

import cattrs
from cattrs.preconf.json import make_converter

from plexica_sdk.errors import ValidationError
from plexica_sdk.types import Subscription

__all__ = ["converter", "structure", "unstructure"]

T = TypeVar("T")

converter = make_converter(forbid_extra_keys=True)


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
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        problems = (
            cattrs.transform_error(exc, path=cls.__name__)
            if isinstance(exc, cattrs.BaseValidationError)
            else [f"{cls.__name__}: {exc}"]
        )
        field = problems[0].split(" @ ", 1)[-1] if " @ " in problems[0] else None
        raise ValidationError("; ".join(problems), field=field, problems=problems) from exc
