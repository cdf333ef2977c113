"""``python -m plexica_sdk.remote MODULE:OBJECT``: serve one plugin under uvicorn, without the host installed.

The container entry point of a remote plugin; ``plexica plugin serve`` runs the same command.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from plexica_sdk.errors import PlexicaError, PluginLoadError

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["HOST_URL_ENV", "build_app", "load_plugin", "main"]

#: Where the host's base URL comes from when ``--host-url`` is not given.
HOST_URL_ENV = "PLEXICA_HOST_URL"


def load_plugin(path: str) -> object:
    """Import ``"package.module:attribute"``; a class is instantiated without arguments.

    Raises:
        PluginLoadError: the path is malformed or cannot be imported.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise PluginLoadError(path, "expected 'module:attribute'")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PluginLoadError(path, f"cannot import: {exc}") from exc
    return obj() if inspect.isclass(obj) else obj


def build_app(plugin: object, host_url: str, *, environ: Mapping[str, str] = os.environ) -> Starlette:
    """The plugin's server, its host handles calling back to ``host_url`` (:class:`RemoteHost`).

    The service credential and the database URL come from ``environ``
    (``PLEXICA_PLUGIN_CREDENTIAL``, ``PLEXICA_PLUGIN_DATABASE_URL``); the connection they open is
    closed when the server shuts down.

    Raises:
        PluginLoadError: the plugin has no manifest.
    """
    from plexica_sdk.remote.host import HostConnection
    from plexica_sdk.remote.server import create_app

    connection = HostConnection.from_env(host_url, environ=environ)
    app = create_app(plugin, host_url=host_url, host_factory=connection.host_for)
    serve = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[Any]:
        try:
            async with serve(app) as state:
                yield state
        finally:
            await connection.aclose()

    app.router.lifespan_context = lifespan
    app.state.host_connection = connection  # the plugin's background work can reuse it
    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m plexica_sdk.remote", description=__doc__)
    parser.add_argument("plugin", metavar="MODULE:OBJECT", help="the plugin object (a class is instantiated)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8100, help="port (default: 8100)")
    parser.add_argument(
        "--host-url",
        default=os.environ.get(HOST_URL_ENV),
        help=f"the Plexica host's base URL, whose JWKS verifies each call (default: ${HOST_URL_ENV})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, build the app and serve it until interrupted; bad input is one line and exit code 2."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.host_url:
        parser.error(f"--host-url (or ${HOST_URL_ENV}) is required: it verifies the host's context tokens")
    import uvicorn

    try:
        app = build_app(load_plugin(args.plugin), args.host_url)
    except PlexicaError as exc:
        parser.exit(2, f"error: {exc}\n")
    found = {name: importlib.util.find_spec(name) is not None for name in ("uvloop", "httptools")}
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="warning",
        lifespan="on",
        loop="uvloop" if found["uvloop"] else "asyncio",
        http="httptools" if found["httptools"] else "h11",
    )
    return 0
