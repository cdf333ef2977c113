"""The audit-log tests use the ``plexica_sdk.testing`` pytest plugin, with a second plugin to audit.

``probe`` (in ``audit_support``) stands for any other plugin: ``POST /api/plugins/probe/things``
publishes ``probe.thing.happened`` as the caller, so the tests see the audit trail pick up a
plugin's event (not only the core's) through the real bus.
"""

from __future__ import annotations

import pytest
from audit_support import ProbePlugin
from plexica_plugin_audit_log import AuditLogPlugin


@pytest.fixture
def plexica_plugins() -> list[object]:
    return [AuditLogPlugin(), ProbePlugin()]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
