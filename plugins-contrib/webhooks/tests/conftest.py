"""Fixtures of the webhooks tests: a real HTTPS receiver on loopback, and the plugins under test.

The receiver is uvicorn serving TLS with a certificate of a CA made here, in a thread for the
whole session; each test scripts its own path (``receiver.script(path, [500, 200])``) and reads
what arrived there. The host is the ``plexica_sdk.testing`` one (embedded, or the real services
when their ``TEST_*`` variables are set).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from plexica_plugin_webhooks import WebhooksPlugin, WebhooksSettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import plexica_sdk
from plexica_sdk import EventTypeDef, PluginManifest, hookimpl

PING_EVENT = "ping.thing.happened"


class PingPlugin:
    """A tiny plugin whose route publishes an event on demand: something for endpoints to receive."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="ping",
            version="1.0.0",
            event_types=(EventTypeDef(type=PING_EVENT, schema={"type": "object"}),),
        )

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        async def ping(request: Request) -> JSONResponse:
            host = plexica_sdk.host(request)
            body = await plexica_sdk.json_body(request)
            event = await host.publish(PING_EVENT, body)
            return JSONResponse({"event_id": event.id}, status_code=202)

        return [Route("/ping", ping, methods=["POST"])]


@attrs.define
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """An ASGI app answering each path with its script of statuses (the last one repeats).

    ``"slow"`` sleeps ``slow_seconds`` and then answers 200 (the sender times out first).
    """

    slow_seconds = 2.0

    def __init__(self) -> None:
        self.base_url = ""
        self._scripts: dict[str, list[int | str]] = {}
        self._received: list[Received] = []
        self._lock = threading.Lock()

    def script(self, answers: Sequence[int | str]) -> str:
        """A fresh path answering ``answers`` in turn; returns its full URL."""
        path = f"/hook/{uuid.uuid4().hex}"
        with self._lock:
            self._scripts[path] = list(answers)
        return self.base_url + path

    def received(self, url: str) -> list[Received]:
        path = url.removeprefix(self.base_url)
        with self._lock:
            return [r for r in self._received if r.path == path]

    async def wait_for(self, url: str, count: int, timeout: float = 10.0) -> list[Received]:
        """The first ``count`` requests to ``url``, once they arrived."""
        with anyio.fail_after(timeout):
            while len(got := self.received(url)) < count:
                await anyio.sleep(0.02)
        return got

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        with self._lock:
            self._received.append(Received(path, headers, b"".join(chunks), time.monotonic()))
            script = self._scripts.get(path, [404])
            answer = script.pop(0) if len(script) > 1 else script[0]
        if answer == "slow":
            await asyncio.sleep(self.slow_seconds)
            answer = 200
        await send({"type": "http.response.start", "status": int(answer), "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for ``localhost`` and ``127.0.0.1``."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhooks test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA bundle, server certificate, server key) of the test receiver."""
    return _certificates(tmp_path_factory.mktemp("tls"))


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


def fast_settings(ca_bundle: Path, **overrides: Any) -> WebhooksSettings:
    """Short timeouts and backoff, loopback allow-listed: the policy in seconds instead of hours."""
    values: dict[str, Any] = {
        "allow_networks": ("127.0.0.0/8",),
        "ca_bundle": str(ca_bundle),
        "timeout_seconds": 0.5,
        "max_attempts": 3,
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "disable_after_failures": 2,
        "poll_interval_seconds": 0.2,
    }
    values.update(overrides)
    return WebhooksSettings(**values)


@pytest.fixture
def webhooks_settings(tls: tuple[Path, Path, Path]) -> WebhooksSettings:
    """The plugin's settings in a test; override it in a module for another policy."""
    return fast_settings(tls[0])


@pytest.fixture
def plexica_plugins(webhooks_settings: WebhooksSettings) -> list[object]:
    return [WebhooksPlugin(webhooks_settings), PingPlugin()]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
