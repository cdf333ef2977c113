"""``docs/api.md`` is exactly what the SDK's public modules say (regenerate: ``python -m plexica.api_reference``)."""

from __future__ import annotations

import importlib
from pathlib import Path

from plexica.api_reference import SDK_MODULES, api_reference

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_docs_api_md_is_generated_from_the_code() -> None:
    stale = "docs/api.md is stale: run `python -m plexica.api_reference`"
    assert DOC.read_text(encoding="utf-8") == api_reference(), stale


def test_every_public_name_of_the_sdk_modules_has_a_section_and_no_sphinx_directive_is_left() -> None:
    text = api_reference()
    for module_name in SDK_MODULES:
        for name in importlib.import_module(module_name).__all__:
            assert f"### `{module_name}.{name}`" in text
    assert "{eval-rst}" not in text
    assert ".. auto" not in text
