"""The notes plugin's tests use the ``plexica_sdk.testing`` pytest plugin; this names the plugin under test.

(A project of its own would rather say ``plexica_plugin = "plexica_plugin_notes:NotesPlugin"``
in its ``[tool.pytest.ini_options]``; the fixture works wherever pytest is started from.)
"""

from __future__ import annotations

import pytest
from plexica_plugin_notes import NotesPlugin


@pytest.fixture
def plexica_plugins() -> list[object]:
    return [NotesPlugin()]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
