"""The files tests use the ``plexica_sdk.testing`` pytest plugin; this names the plugin under test."""

from __future__ import annotations

import pytest
from plexica_plugin_files import FilesPlugin


@pytest.fixture
def plexica_plugins() -> list[object]:
    return [FilesPlugin()]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
