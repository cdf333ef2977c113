"""The hook reference (``docs/hooks.md``), written from :mod:`plexica_sdk.hookspecs` itself.

The reference is plain Markdown, readable on GitHub or in an editor without Sphinx, and it
cannot drift: ``tests/plexica/plugins/test_hook_reference.py`` fails when the file differs from
what :func:`hook_reference` writes. Regenerate with ``python -m plexica.plugins.reference``.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from plexica_sdk import hookspecs

__all__ = ["FAMILIES", "hook_reference"]

#: Families in the order of ``hookspecs.py``, and the kind of call each name shape means.
FAMILIES = ("identity", "tenants", "permissions", "events", "storage", "http")
_KINDS = {
    "contribution": "sync; every result is collected when the host is built (or at install)",
    "notification": "sync or async; awaited in load order, results ignored",
    "provider": "sync, first result wins",
    "query": "sync or async; awaited in load order, the first non-`None` wins",
}


#: Tells the docs test (tests/test_docs_examples.py) that a signature block is shown, not run.
_NOT_EXECUTED = "<!-- not-executed: a signature -->\n"


def _kind(name: str, spec: object) -> str:
    opts = getattr(spec, "plexica_spec", None) or {}
    if name.endswith("_backend") or (isinstance(opts, dict) and opts.get("firstresult")):
        return "provider"
    if name in ("plexica_resource_attributes",):
        return "query"
    source = inspect.getsource(spec)  # type: ignore[arg-type]
    return "notification" if "Awaitable[None]" in source else "contribution"


def _family_of(source_lines: list[str], lineno: int) -> str:
    for line in reversed(source_lines[:lineno]):
        stripped = line.strip("# -\n")
        if line.startswith("# ---") and stripped in FAMILIES:
            return stripped
    return "identity"


def hook_reference() -> str:
    """The Markdown text of ``docs/hooks.md``."""
    source_lines = inspect.getsource(hookspecs).splitlines(keepends=True)
    by_family: dict[str, list[str]] = {family: [] for family in FAMILIES}
    for name, spec in vars(hookspecs).items():
        if not (name.startswith("plexica_") and inspect.isfunction(spec)):
            continue
        lineno = inspect.getsourcelines(spec)[1]
        signature = str(inspect.signature(spec)).replace("'", "")
        doc = inspect.getdoc(spec) or ""
        kind = _kind(name, spec)
        by_family[_family_of(source_lines, lineno)].append(
            f"### `{name}`\n\n{_NOT_EXECUTED}```python\n{name}{signature}\n```\n\n*{kind}*: {_KINDS[kind]}.\n\n{doc}\n"
        )
    parts = [
        "# Hook reference\n",
        "Every hook a plugin may implement: when the host calls it, in which tenant context, its arguments",
        "and result, and what a failure does. Generated from `plexica_sdk/hookspecs.py` by",
        "`python -m plexica.plugins.reference`; a test fails when this page and the code disagree, and",
        "another when a hook has no caller in the host.\n",
        "Implementations may accept any subset of a hook's arguments. `host` is the plugin's own",
        "`plexica_sdk.Host` handle, confined to the tenant (when there is one) and the plugin.\n",
    ]
    for family in FAMILIES:
        if by_family[family]:
            parts.append(f"## {family.capitalize()}\n")
            parts.extend(by_family[family])
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else Path("docs/hooks.md")
    target.write_text(hook_reference(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
