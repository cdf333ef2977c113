"""The Plexica plugin SDK: the contract between the host and its plugins.

It imports no database, broker or cloud library, so a remote plugin needs only this package.
"""

from __future__ import annotations

from typing import Any

from plexica_sdk.context import current
from plexica_sdk.converter import converter, structure, unstructure
from plexica_sdk.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ConflictError,
    EventError,
    InvalidTenantSlugError,
    MissingDependencyError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PlexicaError,
    PluginCallError,
    PluginContractError,
    PluginError,
    PluginLoadError,
    RateLimitedError,
    SettingsError,
    TenantContextMissingError,
    TenantError,
    TenantNotFoundError,
    TenantSuspendedError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from plexica_sdk.http import host, json_body, query_int
from plexica_sdk.markers import hookimpl, hookspec
from plexica_sdk.protocols import Cache, Host, ObjectStore, PluginObjects
from plexica_sdk.schema import Header, Query, api
from plexica_sdk.types import (
    Decision,
    Event,
    EventTypeDef,
    FrontendDef,
    FrontendModule,
    MenuItem,
    ObjectInfo,
    PermissionDef,
    PluginInfo,
    PluginManifest,
    Policy,
    Principal,
    RoleDef,
    RouteRateLimit,
    StorageNamespace,
    Subscription,
    TenantContext,
    TenantInfo,
)

__all__ = [
    "AuthenticationError",
    "BackendUnavailableError",
    "Cache",
    "ConflictError",
    "Decision",
    "Event",
    "EventError",
    "EventTypeDef",
    "FrontendDef",
    "FrontendModule",
    "Header",
    "Host",
    "InvalidTenantSlugError",
    "MenuItem",
    "MissingDependencyError",
    "NotFoundError",
    "ObjectInfo",
    "ObjectStore",
    "PayloadTooLargeError",
    "PermissionDef",
    "PermissionDeniedError",
    "PlexicaError",
    "PluginCallError",
    "PluginContractError",
    "PluginError",
    "PluginInfo",
    "PluginLoadError",
    "PluginManifest",
    "PluginObjects",
    "Policy",
    "Principal",
    "Query",
    "RateLimitedError",
    "RoleDef",
    "RouteRateLimit",
    "SettingsError",
    "StorageNamespace",
    "Subscription",
    "TenantContext",
    "TenantContextMissingError",
    "TenantError",
    "TenantInfo",
    "TenantNotFoundError",
    "TenantSuspendedError",
    "UnsupportedMediaTypeError",
    "ValidationError",
    "api",
    "converter",
    "current",
    "hookimpl",
    "hookspec",
    "host",
    "json_body",
    "query_int",
    "structure",
    "unstructure",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("plexica-sdk")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
