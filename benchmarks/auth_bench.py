"""Bearer-token verification cost per request: cold, keys warm, claims cached, and over HTTP.

Scenarios, each on the same real RS256 token of a tenant realm, paired round by round with the
baseline **keys warm, no claim cache** (keys already fetched; every request checks the signature
and the claims, ``TokenVerifier(cache_size=0)``):

* **claims cached**: the verified claims are remembered by token hash until the token expires;
* **cold**: a fresh verifier per request, so every request fetches the realm's OIDC discovery
  document and JWKS (over a kept-alive connection), then verifies;
* and, without a baseline, **HTTP GET /api/core/v1/me**: the whole in-process request path
  (middleware, tenant lookup, route) with the claims cached, for scale (``request_path.py``
  measures the served path against bare Starlette).

The issuer is the real Keycloak of ``scripts/services.sh up keycloak`` (``TEST_KEYCLOAK_URL``,
``TEST_KEYCLOAK_ADMIN``, ``TEST_KEYCLOAK_PASSWORD``): the benchmark provisions a tenant (which
creates its realm), adds a user, gets a token with a password grant and deletes the realm at the
end. Without Keycloak it falls back to an in-process OIDC server (discovery + JWKS per realm,
ES256 tokens from the dev issuer) on loopback.

Usage::

    set -a; . /tmp/plexica-services/env; set +a
    .venv/bin/python benchmarks/auth_bench.py [--iterations 5000] [--cold 50] [--rounds 7] [--quick] [--no-keycloak]
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import _paired
import attrs
import httpx2
import uvicorn
from _paired import Figure, Measure, paired, per_op, single
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica import create_app, load_settings
from plexica.auth import DevIssuer, OidcKeySource, TokenVerifier
from plexica.identity.keycloak import AdminUser, KeycloakAdmin
from plexica.platform import Platform
from plexica.settings import Settings

BENCH = "auth"

AUDIENCE = "plexica-api"
PASSWORD = "Bench-Passw0rd-1"  # noqa: S105 - the bench user of a throwaway realm
BENCH_CLIENT = "plexica-bench"


# ------------------------------------------------------------------ issuers under test


@attrs.define
class Setup:
    """Where tokens come from: settings for a host that trusts them, and one real token."""

    settings: Settings
    slug: str
    token: str


@contextlib.contextmanager
def oidc_server(issuer: DevIssuer) -> Iterator[None]:
    """Discovery and JWKS of every realm of ``issuer``, served on its base URL's loopback port."""

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse(issuer.discovery(request.path_params["realm"]))

    async def certs(request: Request) -> JSONResponse:
        return JSONResponse(issuer.jwks(request.path_params["realm"]))

    app = Starlette(
        routes=[
            Route("/realms/{realm}/.well-known/openid-configuration", discovery),
            Route("/realms/{realm}/protocol/openid-connect/certs", certs),
        ]
    )
    port = int(issuer.base_url.rsplit(":", 1)[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def in_process_issuer(data_dir: Path) -> AsyncIterator[Setup]:
    base_url = f"http://127.0.0.1:{free_port()}"
    issuer = DevIssuer(data_dir / "bench-issuer.json", base_url=base_url, audience=AUDIENCE)
    slug = "bench"
    settings = load_settings(
        environ={},
        data_dir=str(data_dir),
        load_entry_points=False,
        auth={"audience": AUDIENCE, "keycloak": {"url": base_url}},
        http={"access_log": False},
        rate_limit={"enabled": False},  # this bench measures verification, not the limiter
    )
    with oidc_server(issuer):
        token = issuer.mint(realm=f"tenant-{slug}", subject=str(uuid.uuid4()), roles=["member"], username="bench")
        yield Setup(settings, slug, token)


@contextlib.asynccontextmanager
async def keycloak_issuer(data_dir: Path, url: str) -> AsyncIterator[Setup]:
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        environ={},
        data_dir=str(data_dir),
        load_entry_points=False,
        auth={
            "audience": AUDIENCE,
            "keycloak": {
                "url": url,
                "admin_username": os.environ.get("TEST_KEYCLOAK_ADMIN", "admin"),
                "admin_password": os.environ.get("TEST_KEYCLOAK_PASSWORD", "admin"),
            },
        },
        http={"access_log": False, "plugin_timeout_seconds": 90},
        rate_limit={"enabled": False},  # this bench measures verification, not the limiter
    )
    assert settings.auth.keycloak is not None
    async with KeycloakAdmin(settings.auth.keycloak, audience=AUDIENCE) as admin:
        try:
            async with Platform(settings) as platform:
                await platform.tenants.provision(slug)  # creates the realm
            await admin.ensure_client(
                slug, {"clientId": BENCH_CLIENT, "publicClient": True, "directAccessGrantsEnabled": True}
            )
            user = AdminUser(username="bench", email=f"bench@{slug}.example.com", password=PASSWORD, temporary=False)
            await admin.ensure_user(slug, user, ("member",))
            async with httpx2.AsyncClient() as http:
                response = await http.post(
                    f"{url}/realms/tenant-{slug}/protocol/openid-connect/token",
                    data={
                        "grant_type": "password",
                        "client_id": BENCH_CLIENT,
                        "username": "bench",
                        "password": PASSWORD,
                    },
                )
                response.raise_for_status()
            yield Setup(settings, slug, str(response.json()["access_token"]))
        finally:
            await admin.delete_realm(slug)


def keycloak_url(use_keycloak: bool) -> str | None:
    url = os.environ.get("TEST_KEYCLOAK_URL")
    if not use_keycloak or not url:
        return None
    try:
        httpx2.get(f"{url}/realms/master", timeout=2).raise_for_status()
    except httpx2.HTTPError:
        return None
    return url


# ------------------------------------------------------------------------- scenarios


def make_verifier(platform: Platform, http: httpx2.AsyncClient, *, cache_size: int = 10_000) -> TokenVerifier:
    template = platform.verifier  # same strategy, audience and algorithms as the host's
    return TokenVerifier(
        template.strategy,
        OidcKeySource(http),
        audience=template.audience,
        algorithms=template.algorithms,
        leeway=template.leeway,
        cache_size=cache_size,
    )


async def run(setup: Setup, iterations: int, cold: int, rounds: int) -> list[Figure]:
    app = create_app(setup.settings)
    platform: Platform = app.state.platform
    figures = []
    async with app.router.lifespan_context(app):
        keycloak = setup.settings.auth.keycloak
        if keycloak is None or not keycloak.manages_realms:  # else keycloak_issuer provisioned it
            await platform.tenants.provision(setup.slug)
        async with httpx2.AsyncClient() as http:

            async def cold_call() -> None:
                await make_verifier(platform, http).verify(setup.token)

            await cold_call()  # open the connection: "cold" means keys, not TCP
            uncached = make_verifier(platform, http, cache_size=0)
            cached = make_verifier(platform, http)
            await uncached.verify(setup.token)
            await cached.verify(setup.token)

            def verify_uncached() -> Measure:
                return lambda: per_op(lambda: uncached.verify(setup.token), iterations)

            figures.append(
                await paired(
                    BENCH,
                    "claims cached (token hash hit)",
                    lambda: per_op(lambda: cached.verify(setup.token), iterations),
                    "keys warm, signature + claims checked",
                    verify_uncached(),
                    rounds=rounds,
                )
            )
            figures.append(
                await paired(
                    BENCH,
                    "cold: discovery + JWKS fetched, then verified",
                    lambda: per_op(cold_call, cold),
                    "keys warm, signature + claims checked",
                    verify_uncached(),
                    rounds=rounds,
                )
            )

        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
            headers = {"Authorization": f"Bearer {setup.token}"}

            async def request() -> None:
                response = await client.get("/api/core/v1/me", headers=headers)
                assert response.status_code == 200, response.text

            await request()
            name = "HTTP GET /api/core/v1/me in process (claims cached)"
            figures.append(await single(BENCH, name, lambda: per_op(request, max(1, iterations // 10)), rounds=rounds))
    return figures


async def main(argv: list[str]) -> int:
    parser = _paired.parser(__doc__)
    parser.add_argument("--iterations", type=int, default=5_000, help="verifications per round (--quick: 300)")
    parser.add_argument("--cold", type=int, default=50, help="cold verifications per round (--quick: 10)")
    parser.add_argument("--no-keycloak", action="store_true", help="use the in-process OIDC server")
    args = parser.parse_args(argv)
    iterations, cold = (300, 10) if args.quick else (args.iterations, args.cold)
    url = keycloak_url(not args.no_keycloak)
    with tempfile.TemporaryDirectory() as data_dir:
        issuer = keycloak_issuer(Path(data_dir), url) if url else in_process_issuer(Path(data_dir))
        async with issuer as setup:
            figures = await run(setup, iterations, cold, _paired.rounds_for(args))
    source = f"Keycloak at {url} (RS256)" if url else "in-process OIDC server (ES256, dev issuer keys)"
    print(f"issuer: {source}")
    return _paired.finish([attrs.evolve(f, note=source.split(" (")[0]) for f in figures])


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
