"""Auth fixtures: a controllable clock, the dev issuer, verifiers, and a real OIDC server."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import uvicorn
from joserfc.jwk import Key
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from plexica.auth import DevIssuer, KeySource, RealmPerTenantStrategy, StaticKeySource, TokenVerifier

NOW = 1_800_000_000.0
BASE_URL = "http://plexica.localhost"
AUDIENCE = "plexica-api"


@attrs.define
class FakeClock:
    """Seconds that only move when a test says so."""

    now: float = NOW

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.define
class CountingKeySource:
    """Wraps a key source and counts lookups, to prove the claim cache skips them."""

    inner: KeySource
    calls: int = 0

    async def get_key(self, issuer: str, kid: str) -> Key:
        self.calls += 1
        return await self.inner.get_key(issuer, kid)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"sig") -> str:
    """A compact JWS with any header, payload and signature bytes: the attacker's toolkit."""
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), b64url(signature)])


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload of a compact JWS, unverified."""
    header, payload, _ = (base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split("."))
    return json.loads(header), json.loads(payload)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dev_issuer(tmp_path: Path, clock: FakeClock) -> DevIssuer:
    return DevIssuer(tmp_path / "dev-issuer-key.json", base_url=BASE_URL, audience=AUDIENCE, clock=clock)


@pytest.fixture
def key_source(dev_issuer: DevIssuer) -> CountingKeySource:
    return CountingKeySource(StaticKeySource(dev_issuer.key_set_for_issuer))


@pytest.fixture
def verifier(key_source: CountingKeySource, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(
        RealmPerTenantStrategy(BASE_URL),
        key_source,
        audience=AUDIENCE,
        algorithms=("RS256", "ES256"),
        leeway=30,
        clock=clock,
    )


@attrs.define
class OidcServer:
    """A real HTTP OIDC issuer on loopback: discovery and JWKS per ``/realms/{realm}``.

    ``published`` are the dev issuers whose keys the JWKS lists (swap them to rotate keys);
    ``issuer_override`` makes a realm's discovery document lie about its issuer; ``failing``
    makes every answer a 503 and ``realms`` lists those that exist (others answer 404).
    """

    base_url: str
    published: list[DevIssuer]
    realms: set[str] = attrs.Factory(lambda: {"tenant-acme", "tenant-globex", "plexica-platform"})
    issuer_override: dict[str, str] = attrs.Factory(dict)
    failing: bool = False  # answer 503 to everything
    raw_jwks: bytes | None = None  # answer this body (slowly, if ``drip``) instead of the JWKS
    drip: bool = False
    requests: Counter[str] = attrs.Factory(Counter)

    def issuer(self, realm: str) -> str:
        return f"{self.base_url}/realms/{realm}"

    def count(self, kind: str, realm: str = "tenant-acme") -> int:
        suffix = ".well-known/openid-configuration" if kind == "discovery" else "protocol/openid-connect/certs"
        return self.requests[f"/realms/{realm}/{suffix}"]

    def app(self) -> Starlette:
        async def dripping(body: bytes) -> AsyncIterator[bytes]:
            for byte in body:
                await asyncio.sleep(0.05)
                yield bytes([byte])

        def refusal(request: Request) -> JSONResponse | None:
            self.requests[request.url.path] += 1
            if self.failing:
                return JSONResponse({"error": "unavailable"}, status_code=503)
            if request.path_params["realm"] not in self.realms:
                return JSONResponse({"error": "Realm does not exist"}, status_code=404)
            return None

        async def discovery(request: Request) -> JSONResponse:
            if refused := refusal(request):
                return refused
            realm = request.path_params["realm"]
            document = self.published[0].discovery(realm)
            document["issuer"] = self.issuer_override.get(realm, document["issuer"])
            return JSONResponse(document)

        async def certs(request: Request) -> Response:
            if refused := refusal(request):
                return refused
            if self.raw_jwks is not None:
                return StreamingResponse(dripping(self.raw_jwks) if self.drip else iter([self.raw_jwks]))
            realm = request.path_params["realm"]
            keys = [key for issuer in self.published for key in issuer.jwks(realm)["keys"]]
            # Keycloak also publishes an encryption key; it must be ignored, not break the set.
            keys.append({"kid": "enc-1", "kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"})
            return JSONResponse({"keys": keys})

        return Starlette(
            routes=[
                Route("/realms/{realm}/.well-known/openid-configuration", discovery),
                Route("/realms/{realm}/protocol/openid-connect/certs", certs),
            ]
        )


@pytest.fixture
def oidc_server(tmp_path: Path, clock: FakeClock) -> Iterator[OidcServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server_state = OidcServer(base_url, [DevIssuer(tmp_path / "idp-key-1.json", base_url=base_url, clock=clock)])
    config = uvicorn.Config(
        server_state.app(),
        lifespan="off",
        log_config=None,
        log_level="warning",
        access_log=False,
        http="h11",
        ws="none",
    )
    server = uvicorn.Server(config)
    # A thread, not a task: uvicorn then installs no signal handlers, and the server keeps
    # answering while a test's own event loop is blocked in an await.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the test OIDC server did not start")
        time.sleep(0.01)
    try:
        yield server_state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture
def monotonic() -> FakeClock:
    return FakeClock(now=1000.0)
