"""A real host on loopback (uvicorn in a thread), whose JWKS remote plugins verify against."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import uvicorn

from plexica.app import create_app
from plexica.settings import Settings, load_settings


@attrs.frozen
class ServedHost:
    url: str
    settings: Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedHost]:
    data_dir: Path = tmp_path_factory.mktemp("host-data")
    settings = load_settings(environ={}, environment="test", data_dir=str(data_dir), load_entry_points=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        create_app(settings), lifespan="on", log_config=None, log_level="warning", access_log=False, http="h11"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the host did not start")
        time.sleep(0.02)
    try:
        yield ServedHost(url=url, settings=settings)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
