"""The event types plugins declare, and the check every publish goes through.

A plugin may only publish the types it declared in its manifest, each with an optional JSON Schema
for ``data``. Schemas are compiled once at registration, with a fast pre-check for the common
subset (see :mod:`plexica.events.schema`), so publishing pays only for validation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, final

import attrs
import jsonschema
import jsonschema.exceptions
import jsonschema.protocols
import jsonschema.validators

from plexica.events.envelope import check_event_type, owner_of
from plexica.events.schema import Check, compile_precheck
from plexica.events.topics import GLOBAL
from plexica_sdk.errors import EventError, PluginContractError
from plexica_sdk.types import PLUGIN_NAME_RE, EventTypeDef

__all__ = ["EventTypeRegistry"]

_RESERVED: Final = frozenset({GLOBAL})  # ``global.*`` topics carry tenant-less events


@attrs.frozen
class _Entry:
    plugin: str
    definition: EventTypeDef
    validator: jsonschema.protocols.Validator | None
    precheck: Check | None  # says "valid" quickly for common schemas; jsonschema judges the rest


def _where(error: jsonschema.exceptions.ValidationError) -> str:
    return "data" + "".join(f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)


@final
class EventTypeRegistry:
    """Event types by name, each owned by one plugin."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def register(self, plugin: str, definition: EventTypeDef) -> None:
        """Declare that ``plugin`` publishes ``definition.type``. Registering the same definition again is a no-op.

        Raises:
            EventError: the name is invalid or not under ``{plugin}.``, the plugin name is invalid or
                reserved, the schema is not a valid JSON Schema, or the type is already registered
                differently (by this or another plugin).
        """
        event_type = check_event_type(definition.type)
        if not PLUGIN_NAME_RE.match(plugin) or plugin in _RESERVED:
            raise EventError(f"invalid or reserved plugin name {plugin[:80]!r}", event_type=event_type)
        if owner_of(event_type) != plugin:
            raise EventError(f"plugin {plugin!r} may only declare event types under '{plugin}.'", event_type=event_type)
        existing = self._entries.get(event_type)
        if existing is not None:
            if existing.plugin == plugin and existing.definition == definition:
                return
            raise EventError(
                f"event type {event_type!r} is already registered by {existing.plugin!r}", event_type=event_type
            )
        validator: jsonschema.protocols.Validator | None = None
        precheck: Check | None = None
        if definition.schema is not None:
            schema = dict(definition.schema)  # the stubs type schemas as dicts; manifests give any mapping
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            try:
                cls.check_schema(schema)
            except jsonschema.exceptions.SchemaError as exc:
                raise EventError(f"schema of {event_type!r} is invalid: {exc.message}", event_type=event_type) from exc
            validator = cls(schema)
            precheck = compile_precheck(schema)
        self._entries[event_type] = _Entry(plugin, definition, validator, precheck)

    def register_all(self, plugin: str, definitions: Iterable[EventTypeDef]) -> None:
        """Register every type of a plugin's manifest (``manifest.event_types``)."""
        for definition in definitions:
            self.register(plugin, definition)

    def unregister(self, plugin: str) -> None:
        """Forget every type ``plugin`` declared (it was unloaded or is being upgraded)."""
        self._entries = {name: entry for name, entry in self._entries.items() if entry.plugin != plugin}

    def get(self, event_type: str) -> EventTypeDef | None:
        """The definition of ``event_type``, or ``None`` when nobody declared it."""
        entry = self._entries.get(event_type)
        return None if entry is None else entry.definition

    def types(self) -> list[str]:
        """Every registered event type, sorted."""
        return sorted(self._entries)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._entries

    def validate(self, plugin: str, event_type: str, data: Any) -> EventTypeDef:
        """Check that ``plugin`` may publish ``event_type`` with ``data``, and return its definition.

        Error messages name the failing location and schema rule, never the offending value, which
        may be personal data.

        These are the publishing plugin's own mistakes, never its caller's: the HTTP edge answers
        them as a 500 and logs them with the plugin's name.

        Raises:
            PluginContractError: (an ``EventError``) the type is unknown, owned by another plugin, or
                ``data`` fails its schema.
        """
        entry = self._entries.get(event_type)
        if entry is None:
            raise PluginContractError(
                plugin,
                f"unknown event type {event_type[:150]!r}: declare it in the plugin manifest",
                event_type=event_type,
            )
        if entry.plugin != plugin:
            raise PluginContractError(
                plugin,
                f"plugin {plugin!r} may not publish {event_type!r}, which belongs to {entry.plugin!r}",
                event_type=event_type,
            )
        if (
            entry.validator is not None
            and not (entry.precheck is not None and entry.precheck(data))
            and not entry.validator.is_valid(data)
        ):
            error = jsonschema.exceptions.best_match(entry.validator.iter_errors(data))
            rule = f"{error.validator}={error.validator_value!r}"[:200]
            raise PluginContractError(
                plugin, f"payload of {event_type!r} fails its schema at {_where(error)}: {rule}", event_type=event_type
            )
        return entry.definition
