"""``plexica plugin new NAME``: a new plugin package that installs and passes its own tests at once.

The package comes from the templates in ``plexica/cli/templates/plugin/`` (``{{name}}``-style
placeholders; ``__package__`` in a path is the import package). It has what a real plugin needs:
the entry point, a manifest with permissions and default roles, an Alembic migration, routes, an
event type with its subscription, tests written with the ``plexica_sdk.testing`` fixtures
(the two-tenant isolation check included), a README and a noxfile.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Final

import click

__all__ = ["RESERVED_NAMES", "check_plugin_name", "plugin", "render_plugin", "template_values"]

_NAME_RE: Final = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*\Z")
#: Names a new plugin may not take: the host's own plugin, and the test kit's event spy.
RESERVED_NAMES: Final = frozenset({"core", "plexica", "plexica-test-events"})
_SUFFIX: Final = ".tmpl"


def check_plugin_name(name: str) -> str:
    """Return ``name`` if a new plugin may be called so.

    Raises:
        click.BadParameter: with one line saying what a name must look like.
    """
    if not (2 <= len(name) <= 40) or not _NAME_RE.match(name):
        raise click.BadParameter(
            f"{name!r} is not a plugin name: use 2 to 40 lowercase letters, digits and single dashes, "
            "starting with a letter (e.g. 'tasks', 'time-off')",
            param_hint="NAME",
        )
    if name in RESERVED_NAMES:
        raise click.BadParameter(f"{name!r} is reserved by Plexica; pick another name", param_hint="NAME")
    return name


def template_values(name: str) -> dict[str, str]:
    """The placeholders' values for plugin ``name``."""
    from plexica_sdk import __version__

    ident = name.replace("-", "_")
    return {
        "name": name,
        "ident": ident,
        "package": f"plexica_plugin_{ident}",
        "class_name": "".join(part.capitalize() for part in name.split("-")) + "Plugin",
        "title": name.replace("-", " ").capitalize(),
        "table": f"{ident}_items",
        "plexica_version": ".".join(str(__version__).split(".")[:2]),
    }


def _walk(folder: Traversable, prefix: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        path = f"{prefix}{entry.name}"
        if entry.is_dir():
            yield from _walk(entry, f"{path}/")
        elif entry.name.endswith(_SUFFIX):
            yield path.removesuffix(_SUFFIX), entry


def _fill(text: str, values: Mapping[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def render_plugin(name: str) -> dict[str, str]:
    """Every file of the new package, by relative path.

    Raises:
        click.BadParameter: ``name`` is not a valid new plugin name.
    """
    values = template_values(check_plugin_name(name))
    root = resources.files("plexica.cli") / "templates" / "plugin"
    files: dict[str, str] = {}
    for path, entry in _walk(root):
        target = _fill(path, values).replace("__package__", values["package"])
        files[target] = _fill(entry.read_text(encoding="utf-8"), values)
    return files


@click.group()
def plugin() -> None:
    """Tools for plugin authors."""


@plugin.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to create (default: ./NAME); it must not exist.",
)
def new(name: str, directory: Path | None) -> None:
    """Create a new plugin package NAME, ready to install and test."""
    files = render_plugin(name)
    target = directory if directory is not None else Path(name)
    if target.exists():
        raise click.ClickException(f"{target} already exists; pick another --dir or remove it")
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    click.echo(f"created plugin {name!r} in {target}/ ({len(files)} files). Next:")
    click.echo(f"  cd {target} && pip install -e . --group tests && pytest")
