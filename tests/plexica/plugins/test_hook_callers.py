"""Every hook the SDK specifies has a caller in the host, and every hookspec documents its rules.

The host calls hooks by name (``plugins.each("plexica_tenant_suspended", ...)``), so a call site
is a string constant naming the hook somewhere in ``src/plexica``. A hookspec nobody calls is a
promise to plugin authors that the host does not keep.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from plexica_sdk import hookspecs

HOST_SOURCE = Path(__file__).resolve().parents[3] / "src" / "plexica"
SPECS = sorted(name for name, obj in vars(hookspecs).items() if name.startswith("plexica_") and inspect.isfunction(obj))


def _string_constants(root: Path) -> set[str]:
    found: set[str] = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.add(node.value)
    return found


CALLED = _string_constants(HOST_SOURCE)


def test_the_specs_are_found() -> None:
    assert len(SPECS) >= 20 and "plexica_manifest" in SPECS


@pytest.mark.parametrize("hook", SPECS)
def test_every_hook_has_a_call_site_in_the_host(hook: str) -> None:
    assert hook in CALLED, f"{hook} is specified in plexica_sdk.hookspecs but nothing in src/plexica calls it"


@pytest.mark.parametrize("hook", SPECS)
def test_every_hook_documents_when_it_is_called_and_what_a_failure_does(hook: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert "Called" in doc or "called" in doc, f"{hook}: say when the host calls it"
    assert "Failure" in doc or "failure" in doc, f"{hook}: say what a failure does"
