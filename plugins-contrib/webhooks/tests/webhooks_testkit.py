"""Test helpers of the webhooks tests (named uniquely: several test folders have a ``conftest``).

A real HTTPS receiver (an ASGI app uvicorn serves with a certificate of a CA made here), a tiny
plugin that publishes an event on demand, and the fast delivery policy the tests use.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from plexica_plugin_webhooks import WebhooksSettings
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
            # The receiver runs in another thread and loop: polling is simpler than a cross-loop event.
            while len(got := self.received(url)) < count:  # noqa: ASYNC110
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


def certificates(directory: Path) -> tuple[Path, Path, Path]:
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
