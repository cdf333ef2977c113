"""A plugin that stalls provisioning at a chosen hook, so a test can ``kill -9`` the host right there.

Loaded by ``plexica tenants create`` children of ``test_provisioning_kill``: with
``PLEXICA_FAULT_STALL=<hook>`` and ``PLEXICA_FAULT_MARKER=<file>`` set, the hook writes the file
(the test's signal that provisioning reached it) and waits for the SIGKILL. Without them it does
nothing, so a re-run (and the test's own host) provisions normally.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from plexica_sdk import Host, PluginManifest, hookimpl
from plexica_sdk.types import TenantContext

__all__ = ["StallPlugin"]


async def _stall(hook: str, tenant: TenantContext) -> None:
    marker = os.environ.get("PLEXICA_FAULT_MARKER")
    if os.environ.get("PLEXICA_FAULT_STALL") == hook and marker:
        await asyncio.to_thread(Path(marker).write_text, tenant.slug)
        await asyncio.sleep(3600)  # until the test kills the process


class StallPlugin:
    """``stall``: no routes, no tables; two provisioning hooks that may stop the host."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="stall", version="1.0.0", description="stalls provisioning for the fault suite")

    @hookimpl
    async def plexica_plugin_installed(self, tenant: TenantContext, version: str, host: Host) -> None:
        await _stall("plexica_plugin_installed", tenant)

    @hookimpl
    async def plexica_tenant_provisioned(self, tenant: TenantContext, host: Host) -> None:
        await _stall("plexica_tenant_provisioned", tenant)
