"""The audit-log plugin: every core and plugin event, kept per tenant, append-only and queryable."""

from __future__ import annotations

from plexica_plugin_audit_log.plugin import AuditLogPlugin

__all__ = ["AuditLogPlugin"]
