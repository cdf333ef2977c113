"""The ``remote`` plugin mode: the plugin under test served by a real process over loopback HTTP.

The process is ``python -m plexica_sdk.remote MODULE:OBJECT``, exactly what a plugin container
runs, so the mode needs the plugin's class importable by path (not defined in a test function);
the host then loads it through ``[[plugins.remote]]`` and is itself served on loopback, because the
plugin fetches the host's JWKS and calls back into it. Nothing here imports the host or a web
library at import time (the pytest plugin imports this module in every run).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Final, final

import attrs

from plexica_sdk.testing.host import plugin_name

__all__ = ["RemotePluginProcess", "plugin_path", "serve_remotely"]

#: How long the plugin process may take to answer its health check.
START_SECONDS: Final = 30.0
_HEALTH: Final = "/.plexica/health"


def plugin_path(plugin: object) -> str:
    """``MODULE:CLASS`` of ``plugin``, the path its remote process imports (and builds without arguments).

    Raises:
        TypeError: the class cannot be imported by that path (defined in a function or in ``__main__``).
    """
    cls = plugin if isinstance(plugin, type) else type(plugin)
    path = f"{cls.__module__}:{cls.__qualname__}"
    found: object = None
    if cls.__module__ != "__main__" and "<locals>" not in cls.__qualname__:
        with contextlib.suppress(ImportError, AttributeError):
            found = importlib.import_module(cls.__module__)
            for part in cls.__qualname__.split("."):
                found = getattr(found, part)
    if found is not cls:
        raise TypeError(
            f"plugin mode 'remote' runs the plugin in its own process, which imports it by path, but "
            f"{path} is not importable: define the plugin class at module level"
        )
    return path


def free_socket() -> socket.socket:
    """A bound loopback socket (its port is known before anything serves on it)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def _free_port() -> int:
    with free_socket() as sock:
        return int(sock.getsockname()[1])


def _plugins_own(variable: str, plugin: str) -> bool:
    """Whether ``variable`` is one of the plugin's own settings (``PLEXICA_<PLUGIN>_<KEY>``, one underscore).

    Those reach its process; the host's own (``PLEXICA_<SECTION>__<KEY>``) and the test kit's do not.
    """
    own = f"PLEXICA_{plugin.upper().replace('-', '_')}_"
    return variable.startswith(own) and not variable.startswith(own + "_")


def _spawn(argv: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` (this interpreter running the SDK's server) with its output appended to ``log``."""
    with log.open("ab") as output:
        return subprocess.Popen(argv, env=dict(env), stdout=output, stderr=output)  # noqa: S603 - our own argv


@final
@attrs.define(eq=False)
class RemotePluginProcess:
    """The plugin's process, and the bound socket the test host serves on (what the ``remote`` mode yields).

    ``start_host`` loads a plugin given as this object through ``[[plugins.remote]]``, serves the
    host on :attr:`host_socket`, then restarts the process with the plugin's service credential
    (:meth:`restart`): the credential is made in the host's database, which exists only once
    the host has read the plugin's manifest.

    Attributes:
        name: the plugin's name (its manifest's).
        path: ``MODULE:OBJECT`` the process imports.
        port: the loopback port the plugin serves on.
        host_socket: the socket the test host serves on; the plugin's ``--host-url`` points at it.
    """

    name: str
    path: str
    port: int
    host_socket: socket.socket
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host_url(self) -> str:
        return f"http://127.0.0.1:{self.host_socket.getsockname()[1]}"

    async def start(self, environ: Mapping[str, str] | None = None) -> None:
        """Start the process (the plugin's own variables in ``environ``) and wait until it answers."""
        import httpx2

        argv = [sys.executable, "-m", "plexica_sdk.remote", self.path, "--port", str(self.port)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXICA_") or _plugins_own(k, self.name)}
        env["PYTHONPATH"] = os.pathsep.join([*sys.path, env.get("PYTHONPATH", "")])
        self.process = _spawn([*argv, "--host-url", self.host_url], {**env, **(environ or {})}, self.log)
        deadline = time.monotonic() + START_SECONDS
        async with httpx2.AsyncClient(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.path} exited: {self.log.read_text(errors='replace')[-3000:]}")
                with contextlib.suppress(httpx2.HTTPError):
                    if (await client.get(self.url + _HEALTH)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.path} did not answer on port {self.port} in {START_SECONDS} s")
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """SIGINT (uvicorn's graceful stop), then SIGKILL after 10 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)

    async def restart(self, environ: Mapping[str, str]) -> None:
        """Serve the plugin again on the same port, with ``environ`` (its credential and database URL)."""
        await self.stop()
        await self.start(environ)


@contextlib.asynccontextmanager
async def serve_remotely(plugin: object) -> AsyncIterator[object]:
    """The ``remote`` mode's starter: ``plugin``'s class served by its own process until the block ends."""
    path = plugin_path(plugin)
    with contextlib.ExitStack() as stack:
        host_socket = stack.enter_context(free_socket())
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="plexica-remote-")))
        remote = RemotePluginProcess(plugin_name(plugin), path, _free_port(), host_socket, logs / "plugin.log")
        await remote.start()
        try:
            yield remote
        finally:
            await remote.stop()
