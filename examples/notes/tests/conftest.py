"""The notes plugin's tests use the ``plexica_sdk.testing`` pytest plugin; this names the plugin under test.

(A project of its own would rather say ``plexica_plugin = "plexica_plugin_notes:NotesPlugin"``
in its ``[tool.pytest.ini_options]``; the fixture works wherever pytest is started from.)

Every test runs twice: with the plugin embedded, and remote (served by its own process on
loopback, the host loading it through ``[[plugins.remote]]``); see docs/testing-plugins.md.
"""

from __future__ import annotations

import pytest
from plexica_plugin_notes import NotesPlugin


def pytest_plexica_plugin_modes(config: pytest.Config) -> tuple[str, ...]:
    return ("embedded", "remote")


@pytest.fixture
def plexica_plugins() -> list[object]:
    return [NotesPlugin()]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
