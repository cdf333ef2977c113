"""The settings reference in ``docs/operations.md`` is what ``settings.py`` says.

Regenerate it with ``python -m plexica.settings_reference``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from plexica.settings import Settings
from plexica.settings_reference import BEGIN, END, settings_reference, update_page

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_the_operations_guide_holds_the_current_settings_reference() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert update_page(text) == text, "docs/operations.md is stale: run `python -m plexica.settings_reference`"


def test_every_key_appears_with_its_environment_variable() -> None:
    text = settings_reference()
    for field in attrs.fields(attrs.resolve_types(Settings)):
        kind: Any = field.type
        if attrs.has(kind):
            for sub in attrs.fields(kind):
                if not attrs.has(sub.type):
                    assert f"`PLEXICA_{field.name.upper()}__{sub.name.upper()}`" in text
        else:
            assert f"`PLEXICA_{field.name.upper()}`" in text
    assert "### `[events.kafka]`" in text
    assert "### `[auth.keycloak]`" in text
    assert "### `[rate_limit.plans.<name>]`" in text


def test_a_page_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="settings-reference"):
        update_page("# no markers")
    assert update_page(f"a\n{BEGIN}\nold\n{END}\nb").startswith(f"a\n{BEGIN}\n\n### `top level`")
