"""Shared test configuration: anyio on asyncio, and the real-service fixtures."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures.services"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
