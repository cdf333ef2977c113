"""The pytest hooks the kit adds: a directory's conftest chooses the plugin modes its tests run in."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

__all__ = ["pytest_plexica_plugin_modes"]


@pytest.hookspec(firstresult=True)
def pytest_plexica_plugin_modes(config: pytest.Config) -> Sequence[str] | None:
    """The plugin modes the ``plugin_mode`` tests under this conftest run in (None: the ini key's).

    Only conftests above a test are asked, so ``examples/notes/tests/conftest.py`` returning
    ``("embedded", "remote")`` runs notes' tests in both modes and leaves every other test alone.
    ``--plexica-plugin-mode`` still wins.
    """
