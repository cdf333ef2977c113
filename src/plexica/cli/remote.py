"""``plexica plugin serve MODULE:OBJECT``: run one plugin as a remote plugin process (docs/remote.md).

The command replaces itself with ``python -m plexica_sdk.remote``, so the process that serves the
plugin is exactly what a plugin container runs: the SDK's server under uvicorn, without the host.
"""

from __future__ import annotations

import os
import sys

import click

from plexica.settings import HttpSettings, Settings

__all__ = ["serve_plugin"]


@click.command("serve")
@click.argument("plugin_path", metavar="MODULE:OBJECT")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8100, show_default=True, help="Port.")
@click.option(
    "--host-url",
    envvar="PLEXICA_HOST_URL",
    default=None,
    help="The Plexica host's base URL; its JWKS verifies every call. Default: $PLEXICA_HOST_URL, "
    "else http://{http.host}:{http.port} from the settings.",
)
@click.pass_context
def serve_plugin(ctx: click.Context, plugin_path: str, host: str, port: int, host_url: str | None) -> None:
    """Serve the plugin MODULE:OBJECT over wire protocol v1 (a class is instantiated)."""
    if ":" not in plugin_path:
        raise click.BadParameter("expected MODULE:OBJECT", param_hint="MODULE:OBJECT")
    if host_url is None:
        settings = getattr(ctx.obj, "settings", None)  # the root command's lazily loaded settings
        http = settings.http if isinstance(settings, Settings) else HttpSettings()
        host_url = f"http://{http.host}:{http.port}"
    argv = [sys.executable, "-m", "plexica_sdk.remote", plugin_path, "--host", host, "--port", str(port)]
    os.execv(sys.executable, [*argv, "--host-url", host_url])  # noqa: S606 - our own interpreter, fixed module
