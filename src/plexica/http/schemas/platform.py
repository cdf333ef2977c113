"""Bodies of ``/me``, ``/plugins``, plugin configuration, the dead-letter queue, ``/health`` and ``/ready``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from plexica.observability.health import CheckStatus, HealthStatus
from plexica.plugins.frontend import FrontendManifest

__all__ = [
    "DeadLetterFull",
    "DeadLetterList",
    "DeadLetterSummary",
    "FrontendManifest",
    "Health",
    "HealthCheck",
    "Me",
    "PluginConfig",
    "PluginItem",
    "PluginList",
    "Ready",
]


@attrs.frozen(kw_only=True)
class Me:
    """Who the token says the caller is; ``tenant`` and ``workspace`` are those the request addressed."""

    id: str
    username: str | None
    roles: tuple[str, ...]
    is_super_admin: bool
    tenant: str | None
    workspace: str | None


@attrs.frozen(kw_only=True)
class PluginItem:
    """A plugin of this host, and whether the caller's tenant has it installed."""

    name: str
    version: str
    description: str
    mode: Literal["builtin", "embedded", "remote"]
    permissions: tuple[str, ...]
    requires: Mapping[str, str]
    installed: bool


@attrs.frozen(kw_only=True)
class PluginList:
    items: tuple[PluginItem, ...]


@attrs.frozen(kw_only=True)
class PluginConfig:
    """A plugin's configuration in the caller's tenant (defaults filled in) and the JSON Schema it follows."""

    plugin: str
    config: Mapping[str, Any]
    schema: Mapping[str, Any]


@attrs.frozen(kw_only=True)
class DeadLetterSummary:
    """An event a subscription gave up on, where it came from and the last error."""

    id: str
    event_id: str
    event_type: str
    tenant_id: str | None
    plugin: str
    subscription: str
    topic: str
    partition: int | None
    offset: int | None
    key: str | None
    attempts: int
    error: str
    failed_at: dt.datetime


@attrs.frozen(kw_only=True)
class DeadLetterFull(DeadLetterSummary):
    """A dead letter with its event (CloudEvents JSON) and envelope headers as ``[name, value]`` pairs."""

    event: Mapping[str, Any]
    headers: tuple[tuple[str, ...], ...]


@attrs.frozen(kw_only=True)
class DeadLetterList:
    items: tuple[DeadLetterSummary, ...]


@attrs.frozen(kw_only=True)
class HealthCheck:
    status: CheckStatus
    latency_ms: float
    required: bool
    detail: str | None = None


@attrs.frozen(kw_only=True)
class Health:
    """The overall status; ``checks`` and ``plugins`` only for a health token or a super-admin."""

    status: HealthStatus
    checks: Mapping[str, HealthCheck] = attrs.field(factory=dict)
    plugins: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Ready:
    status: Literal["ready"]
