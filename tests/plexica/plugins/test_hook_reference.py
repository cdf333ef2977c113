"""``docs/hooks.md`` is exactly what the hookspecs say (regenerate: ``python -m plexica.plugins.reference``)."""

from __future__ import annotations

from pathlib import Path

from plexica.plugins.reference import hook_reference
from plexica_sdk import hookspecs

DOC = Path(__file__).resolve().parents[3] / "docs" / "hooks.md"


def test_docs_hooks_md_is_generated_from_the_hookspecs() -> None:
    assert DOC.read_text(encoding="utf-8") == hook_reference(), (
        "docs/hooks.md is stale: run `python -m plexica.plugins.reference`"
    )


def test_every_hook_has_its_own_section() -> None:
    text = hook_reference()
    for name in vars(hookspecs):
        if name.startswith("plexica_") and callable(getattr(hookspecs, name)):
            assert f"### `{name}`" in text
