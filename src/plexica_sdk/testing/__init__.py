"""Testing Plexica plugins: a pytest plugin, a test host, the isolation kit, a fake host, policy tables.

Importing this package imports no host, database or web library: the pytest plugin
(:mod:`plexica_sdk.testing.plugin`, loaded through the ``pytest11`` entry point) is loaded in every
pytest run where Plexica is installed, and imports the host only when a test asks for one.
See ``docs/testing-plugins.md``.
"""

from __future__ import annotations

from plexica_sdk.testing.events import Delivery, EventLog, EventRecorder
from plexica_sdk.testing.fake import FakeCache, FakeHost, FakeObjects
from plexica_sdk.testing.host import (
    ProvisionedTenant,
    ProvisionedWorkspace,
    RunningHost,
    build_settings,
    host_environ,
    start_host,
)
from plexica_sdk.testing.isolation import CANARY, Call, IsolationError, IsolationKit, IsolationReport
from plexica_sdk.testing.modes import available_plugin_modes, register_plugin_mode
from plexica_sdk.testing.policies import PolicyCase, PolicySubject, PolicyTable, policy_table
from plexica_sdk.testing.problems import assert_problem

__all__ = [
    "CANARY",
    "Call",
    "Delivery",
    "EventLog",
    "EventRecorder",
    "FakeCache",
    "FakeHost",
    "FakeObjects",
    "IsolationError",
    "IsolationKit",
    "IsolationReport",
    "PolicyCase",
    "PolicySubject",
    "PolicyTable",
    "ProvisionedTenant",
    "ProvisionedWorkspace",
    "RunningHost",
    "assert_problem",
    "available_plugin_modes",
    "build_settings",
    "host_environ",
    "policy_table",
    "register_plugin_mode",
    "start_host",
]
