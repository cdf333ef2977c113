"""The API reference (``docs/api.md``), written from the SDK's public modules and the host's entry points.

Plain Markdown, readable on GitHub or in an editor without Sphinx, and it cannot drift:
``tests/plexica/test_api_reference.py`` fails when the file differs from what
:func:`api_reference` writes. Regenerate with ``python -m plexica.api_reference``. Each module's
``__all__`` is its public API; names outside it are not documented and may change.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs

__all__ = ["HOST_NAMES", "SDK_MODULES", "api_reference"]

#: The SDK modules documented, in reading order.
SDK_MODULES = (
    "plexica_sdk.types",
    "plexica_sdk.protocols",
    "plexica_sdk.errors",
    "plexica_sdk.context",
    "plexica_sdk.http",
    "plexica_sdk.workspaces",
    "plexica_sdk.markers",
)
#: The host's entry points an application calls.
HOST_NAMES = ("plexica.create_app", "plexica.load_settings")
_SIGNATURE = "<!-- not-executed: a signature -->\n```python\n{}\n```\n"


def _signature(name: str, obj: Callable[..., Any]) -> str:
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return name
    text = re.sub(r" at 0x[0-9a-f]+", "", text.replace("'", ""))
    return f"{name}{text}"


def _alias(obj: object) -> str:
    return re.sub(r"\b(typing|collections\.abc|plexica_sdk\.\w+)\.", "", repr(obj))


def _annotation(kind: Any) -> str:
    if isinstance(kind, str):
        return kind
    return getattr(kind, "__name__", None) or _alias(kind)


def _doc(obj: object) -> str:
    return (inspect.getdoc(obj) or "").strip()


def _own_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties defined on ``cls`` itself (not inherited, not attrs plumbing)."""
    fields = {field.name for field in attrs.fields(cls)} if attrs.has(cls) else set()
    for name, value in vars(cls).items():
        if name.startswith("_") or name in fields:
            continue
        if isinstance(value, property | staticmethod | classmethod) or inspect.isfunction(value):
            yield name, value


def _field_rows(cls: type) -> list[str]:
    # The source annotations, not ``field.type``: the converter resolves those in place, so the
    # page would depend on what ran before.
    annotations: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        annotations.update(vars(klass).get("__annotations__", {}))
    rows = ["| Field | Type | Default |", "| --- | --- | --- |"]
    for field in attrs.fields(cls):
        if field.default is attrs.NOTHING:
            default = "required"
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            default = f"`{field.default.factory.__name__}()`"
        else:
            default = f"`{field.default!r}`"
        kind = _annotation(annotations.get(field.name, field.type))
        rows.append(f"| `{field.name}` | `{kind.replace('|', chr(92) + '|')}` | {default} |")
    return rows


def _class(qualname: str, cls: type) -> list[str]:
    bases = [base.__name__ for base in cls.__bases__ if base is not object and base.__name__ != "Protocol"]
    out = [f"### `{qualname}`\n"]
    if bases:
        out.append(f"*class*, a subclass of {', '.join(f'`{base}`' for base in bases)}.\n")
    else:
        out.append("*class*\n")
    if doc := _doc(cls):
        out.append(doc + "\n")
    if attrs.has(cls):
        out.extend([*_field_rows(cls), ""])
    for name, member in _own_members(cls):
        if isinstance(member, property):
            out.append(f"- `{name}` (property): {_doc(member).splitlines()[0] if _doc(member) else ''}".rstrip() + "\n")
            continue
        function = member.__func__ if isinstance(member, staticmethod | classmethod) else member
        out.append(f"#### `{cls.__name__}.{name}`\n")
        out.append(_SIGNATURE.format(_signature(name, function)))
        if doc := _doc(function):
            out.append(doc + "\n")
    return out


def _entry(qualname: str, obj: Any, module: ModuleType) -> list[str]:
    short = qualname.rsplit(".", 1)[1]
    if inspect.isclass(obj):
        return _class(qualname, obj)
    if callable(obj) and (inspect.isfunction(obj) or inspect.isbuiltin(obj) or hasattr(obj, "__wrapped__")):
        out = [f"### `{qualname}`\n", _SIGNATURE.format(_signature(short, obj))]
        if doc := _doc(obj):
            out.append(doc + "\n")
        return out
    if typing.get_origin(obj) is not None:
        return [f"### `{qualname}`\n", f"*type alias*: `{_alias(obj)}`\n"]
    if callable(obj):  # a marker object such as hookimpl
        return [f"### `{qualname}`\n", f"*{type(obj).__name__}* instance. {_doc(type(obj)).splitlines()[0]}\n"]
    value = re.sub(r" at 0x[0-9a-f]+", "", repr(obj))
    if isinstance(obj, re.Pattern):
        value = f"re.compile({obj.pattern!r})"
    return [f"### `{qualname}`\n", f"*constant*: `{value}`\n"]


def _module_section(name: str) -> list[str]:
    module = importlib.import_module(name)
    out = [f"## `{name}`\n"]
    if doc := _doc(module):
        out.append(doc + "\n")
    for public in sorted(getattr(module, "__all__", ())):
        out.extend(_entry(f"{name}.{public}", getattr(module, public), module))
    return out


def api_reference() -> str:
    """The Markdown text of ``docs/api.md``."""
    parts = [
        "# API reference\n",
        "The public API of the SDK (`plexica_sdk`, all a plugin imports) and the host's entry points.",
        "Generated from the code by `python -m plexica.api_reference`; a test fails when this page and",
        "the code disagree. Each module's `__all__` is its public API: other names may change in any",
        "release. The package `plexica_sdk` re-exports the most used names (`from plexica_sdk import",
        "Host, PluginManifest, hookimpl`). Hooks are in [hooks.md](hooks.md), settings in",
        "[operations.md](operations.md), the test kit in [testing-plugins.md](testing-plugins.md).\n",
    ]
    for name in SDK_MODULES:
        parts.extend(_module_section(name))
    parts.append("## The host\n")
    for qualname in HOST_NAMES:
        module_name, attr = qualname.rsplit(".", 1)
        module = importlib.import_module(module_name)
        parts.extend(_entry(qualname, getattr(module, attr), module))
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else Path("docs/api.md")
    target.write_text(api_reference(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
