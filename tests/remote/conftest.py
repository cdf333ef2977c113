"""The remote-plugin tests' shared fixture: one host and the probe plugin, real processes, per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.remote.processes import Stack, probe_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A host (``plexica serve``) with the probe plugin remote; see :func:`tests.remote.processes.probe_stack`."""
    running = probe_stack(tmp_path_factory.mktemp("remote"))
    try:
        yield running
    finally:
        running.close()
