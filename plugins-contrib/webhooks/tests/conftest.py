"""Fixtures of the webhooks tests: a real HTTPS receiver on loopback, and the plugins under test.

The receiver is uvicorn serving TLS in a thread for the whole session; each test scripts its own
path (``receiver.script([500, 200])``) and reads what arrived there. The host is the
``plexica_sdk.testing`` one (embedded, or the real services when their ``TEST_*`` variables are set).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from plexica_plugin_webhooks import WebhooksPlugin, WebhooksSettings
from webhooks_testkit import PingPlugin, Receiver, certificates, fast_settings


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA bundle, server certificate, server key) of the test receiver."""
    return certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def receiver(tls: tuple[Path, Path, Path]) -> Iterator[Receiver]:
    """The HTTPS receiver, listening on ``https://localhost:<port>`` for the whole session."""
    _ca, cert, key = tls
    app = Receiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app.base_url = f"https://localhost:{port}"
    config = uvicorn.Config(
        app,
        lifespan="off",
        ws="none",
        log_level="warning",
        access_log=False,
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test receiver did not start")
        time.sleep(0.01)
    yield app
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def webhooks_settings(tls: tuple[Path, Path, Path]) -> WebhooksSettings:
    """The plugin's settings in a test; override it in a module for another policy."""
    return fast_settings(tls[0])


def pytest_plexica_plugin_modes(config: pytest.Config) -> tuple[str, ...]:
    # Remote is how this plugin ships (its README); embedded is how most hosts try it first.
    return ("embedded", "remote")


@pytest.fixture
def plexica_plugins(
    webhooks_settings: WebhooksSettings, plugin_mode: str, monkeypatch: pytest.MonkeyPatch
) -> list[object]:
    if plugin_mode == "remote":  # its own process builds the plugin from PLEXICA_WEBHOOKS_* variables
        for name, value in webhooks_settings.to_environ().items():
            monkeypatch.setenv(name, value)
    return [WebhooksPlugin(webhooks_settings), PingPlugin()]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
