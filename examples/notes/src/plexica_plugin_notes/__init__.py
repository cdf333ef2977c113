"""The notes example plugin: one table per tenant, CRUD routes, an event, a subscription."""

from __future__ import annotations

from plexica_plugin_notes.plugin import NotesPlugin

__all__ = ["NotesPlugin"]
