"""Key sources: in process, and from a real OIDC server over loopback HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from joserfc.jwk import ECKey

from plexica.auth import DevIssuer, OidcKeySource, RealmPerTenantStrategy, StaticKeySource, TokenVerifier
from plexica.auth.jwks import parse_jwks
from plexica_sdk.errors import AuthenticationError, BackendUnavailableError
from tests.plexica.auth.conftest import AUDIENCE, FakeClock, OidcServer, segments

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http_client() -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(trust_env=False) as client:  # no proxy between us and loopback
        yield client


@pytest.fixture
def key_source(http_client: httpx2.AsyncClient, monotonic: FakeClock) -> OidcKeySource:
    return OidcKeySource(http_client, refresh_min_seconds=30, max_age_seconds=3600, clock=monotonic)


@pytest.fixture
def oidc_verifier(oidc_server: OidcServer, key_source: OidcKeySource, clock: FakeClock) -> TokenVerifier:
    return TokenVerifier(
        RealmPerTenantStrategy(oidc_server.base_url), key_source, audience=AUDIENCE, algorithms=["ES256"], clock=clock
    )


def kid(token: str) -> str:
    value: str = segments(token)[0]["kid"]
    return value


async def test_keys_are_fetched_once_per_issuer(oidc_server: OidcServer, oidc_verifier: TokenVerifier) -> None:
    idp = oidc_server.published[0]
    tokens = [idp.mint(realm="tenant-acme", subject=f"user-{i}", audience=AUDIENCE) for i in range(5)]

    verified = [await oidc_verifier.verify(token) for token in tokens]

    assert [v.tenant_slug for v in verified] == ["acme"] * 5
    assert oidc_server.count("discovery") == oidc_server.count("jwks") == 1


async def test_concurrent_first_requests_share_one_fetch(oidc_server: OidcServer, key_source: OidcKeySource) -> None:
    token = oidc_server.published[0].mint(realm="tenant-acme", subject="u")

    keys = await asyncio.gather(*(key_source.get_key(oidc_server.issuer("tenant-acme"), kid(token)) for _ in range(20)))

    assert {key.kid for key in keys} == {kid(token)}
    assert oidc_server.count("discovery") == oidc_server.count("jwks") == 1


async def test_issuers_are_cached_separately(oidc_server: OidcServer, oidc_verifier: TokenVerifier) -> None:
    idp = oidc_server.published[0]

    await oidc_verifier.verify(idp.mint(realm="tenant-acme", subject="u"))
    await oidc_verifier.verify(idp.mint(realm="tenant-globex", subject="u"))

    assert oidc_server.count("jwks", "tenant-acme") == oidc_server.count("jwks", "tenant-globex") == 1


async def test_unknown_kid_refreshes_at_most_once_per_window(
    oidc_server: OidcServer, key_source: OidcKeySource, monotonic: FakeClock
) -> None:
    issuer = oidc_server.issuer("tenant-acme")
    await key_source.get_key(issuer, kid(oidc_server.published[0].mint(realm="tenant-acme", subject="u")))
    assert oidc_server.count("jwks") == 1

    async def garbage(i: int) -> None:
        with pytest.raises(AuthenticationError, match="unknown signing key"):
            await key_source.get_key(issuer, f"garbage-{i}")

    await asyncio.gather(*(garbage(i) for i in range(25)))
    assert oidc_server.count("jwks") == 1  # the window since the first fetch has not passed

    monotonic.advance(31)
    await asyncio.gather(*(garbage(i) for i in range(25)))
    assert oidc_server.count("jwks") == 2  # one refresh, shared by all 25

    monotonic.advance(10)
    await garbage(99)
    assert oidc_server.count("jwks") == 2
    assert oidc_server.count("discovery") == 1


async def test_rotated_key_is_picked_up_after_refresh(
    tmp_path: Path, oidc_server: OidcServer, oidc_verifier: TokenVerifier, monotonic: FakeClock, clock: FakeClock
) -> None:
    old = oidc_server.published[0]
    await oidc_verifier.verify(old.mint(realm="tenant-acme", subject="before"))
    new = DevIssuer(tmp_path / "idp-key-2.json", base_url=oidc_server.base_url, clock=clock)
    oidc_server.published = [new]
    rotated = new.mint(realm="tenant-acme", subject="after")
    assert kid(rotated) != kid(old.mint(realm="tenant-acme", subject="x"))

    monotonic.advance(31)
    verified = await oidc_verifier.verify(rotated)

    assert verified.principal.id == "after"
    assert oidc_server.count("jwks") == 2
    with pytest.raises(AuthenticationError, match="unknown signing key"):  # the withdrawn key is gone
        await oidc_verifier.verify(old.mint(realm="tenant-acme", subject="late"))


async def test_rotation_inside_the_window_waits_for_it(
    tmp_path: Path, oidc_server: OidcServer, oidc_verifier: TokenVerifier, monotonic: FakeClock, clock: FakeClock
) -> None:
    await oidc_verifier.verify(oidc_server.published[0].mint(realm="tenant-acme", subject="u"))
    new = DevIssuer(tmp_path / "idp-key-2.json", base_url=oidc_server.base_url, clock=clock)
    oidc_server.published.append(new)
    rotated = new.mint(realm="tenant-acme", subject="u")

    with pytest.raises(AuthenticationError, match="unknown signing key"):
        await oidc_verifier.verify(rotated)
    monotonic.advance(30)
    assert (await oidc_verifier.verify(rotated)).principal.id == "u"


async def test_keys_older_than_max_age_are_refetched(
    oidc_server: OidcServer, key_source: OidcKeySource, monotonic: FakeClock
) -> None:
    issuer = oidc_server.issuer("tenant-acme")
    key_id = kid(oidc_server.published[0].mint(realm="tenant-acme", subject="u"))
    await key_source.get_key(issuer, key_id)

    monotonic.advance(3601)
    await key_source.get_key(issuer, key_id)

    assert oidc_server.count("jwks") == 2


async def test_issuer_mismatch_in_discovery_is_refused(
    oidc_server: OidcServer, key_source: OidcKeySource, oidc_verifier: TokenVerifier
) -> None:
    oidc_server.issuer_override["tenant-acme"] = "http://keycloak.internal:8080/realms/tenant-acme"
    token = oidc_server.published[0].mint(realm="tenant-acme", subject="u")

    with pytest.raises(BackendUnavailableError, match="names another issuer") as caught:
        await oidc_verifier.verify(token)

    assert caught.value.backend == "identity"
    assert oidc_server.count("discovery") == 1
    assert oidc_server.count("jwks") == 0


async def test_unknown_realm_is_an_authentication_error_and_is_not_refetched(
    oidc_server: OidcServer, key_source: OidcKeySource, oidc_verifier: TokenVerifier
) -> None:
    token = oidc_server.published[0].mint(realm="tenant-nobody", subject="u")

    for _ in range(3):
        with pytest.raises(AuthenticationError, match="unknown issuer"):
            await oidc_verifier.verify(token)

    assert oidc_server.count("discovery", "tenant-nobody") == 1


async def test_unreachable_identity_server_is_backend_unavailable(
    http_client: httpx2.AsyncClient, monotonic: FakeClock
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    source = OidcKeySource(http_client, refresh_min_seconds=30, clock=monotonic, timeout_seconds=2)
    issuer = f"http://127.0.0.1:{port}/realms/tenant-acme"

    with pytest.raises(BackendUnavailableError) as caught:
        await source.get_key(issuer, "kid")
    assert caught.value.backend == "identity"

    with pytest.raises(BackendUnavailableError, match="retry shortly"):  # no second attempt yet
        await source.get_key(issuer, "kid")


async def test_failed_refresh_keeps_the_cached_keys(
    oidc_server: OidcServer, key_source: OidcKeySource, monotonic: FakeClock
) -> None:
    issuer = oidc_server.issuer("tenant-acme")
    key_id = kid(oidc_server.published[0].mint(realm="tenant-acme", subject="u"))
    await key_source.get_key(issuer, key_id)
    oidc_server.failing = True

    monotonic.advance(3601)
    assert (await key_source.get_key(issuer, key_id)).kid == key_id
    assert oidc_server.count("jwks") == 2  # it did try


async def test_first_fetch_failure_is_backend_unavailable(
    oidc_server: OidcServer, key_source: OidcKeySource, monotonic: FakeClock
) -> None:
    oidc_server.failing = True
    issuer = oidc_server.issuer("tenant-acme")

    with pytest.raises(BackendUnavailableError, match="HTTP 503"):
        await key_source.get_key(issuer, "kid")

    oidc_server.failing = False
    monotonic.advance(30)
    key_id = kid(oidc_server.published[0].mint(realm="tenant-acme", subject="u"))
    assert (await key_source.get_key(issuer, key_id)).kid == key_id


async def test_deleted_realm_forgets_its_keys(
    oidc_server: OidcServer, key_source: OidcKeySource, monotonic: FakeClock
) -> None:
    issuer = oidc_server.issuer("tenant-acme")
    key_id = kid(oidc_server.published[0].mint(realm="tenant-acme", subject="u"))
    await key_source.get_key(issuer, key_id)
    oidc_server.realms.discard("tenant-acme")

    monotonic.advance(3601)
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="unknown issuer"):
            await key_source.get_key(issuer, key_id)
    assert oidc_server.count("jwks") == 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>oops</html>", "did not answer JSON"),
        (b'{"keys": "nope"}', "JWKS of .* is invalid"),
        (b'{"keys": [], "pad": "' + b"x" * 300_000 + b'"}', "more than 262144 bytes"),
    ],
    ids=["not-json", "not-jwks", "too-large"],
)
async def test_bad_jwks_answers_are_backend_unavailable(
    oidc_server: OidcServer, key_source: OidcKeySource, body: bytes, reason: str
) -> None:
    oidc_server.raw_jwks = body

    with pytest.raises(BackendUnavailableError, match=reason):
        await key_source.get_key(oidc_server.issuer("tenant-acme"), "kid")


async def test_slow_identity_server_times_out(
    oidc_server: OidcServer, http_client: httpx2.AsyncClient, monotonic: FakeClock
) -> None:
    oidc_server.raw_jwks, oidc_server.drip = b'{"keys": []}' * 10, True
    source = OidcKeySource(http_client, clock=monotonic, timeout_seconds=0.3)

    with pytest.raises(BackendUnavailableError, match="timed out"):
        await source.get_key(oidc_server.issuer("tenant-acme"), "kid")


# --- in-process and parsing ------------------------------------------------------------------


async def test_static_key_source_looks_keys_up_per_issuer(dev_issuer: DevIssuer) -> None:
    source = StaticKeySource({dev_issuer.issuer("tenant-acme"): dev_issuer.public_key_set("tenant-acme")})
    acme_kid = dev_issuer.public_key_set("tenant-acme").keys[0].kid
    assert acme_kid is not None

    assert (await source.get_key(dev_issuer.issuer("tenant-acme"), acme_kid)).kid == acme_kid
    with pytest.raises(AuthenticationError, match="unknown issuer"):
        await source.get_key(dev_issuer.issuer("tenant-globex"), acme_kid)
    with pytest.raises(AuthenticationError, match="unknown signing key"):
        await source.get_key(dev_issuer.issuer("tenant-acme"), "other")


def test_parse_jwks_keeps_only_usable_signing_keys(dev_issuer: DevIssuer) -> None:
    good = dev_issuer.jwks("tenant-acme")["keys"][0]
    private = ECKey.generate_key("P-256", auto_kid=True).as_dict(private=True)
    private_kid = str(private["kid"])
    document = {
        "keys": [
            good,
            {**good, "kid": "enc", "use": "enc"},
            {"kid": "broken", "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "x": good["x"], "y": good["y"]},
            {"kid": "pq", "kty": "AKP", "alg": "ML-DSA-44", "pub": "AA"},
            "not-a-key",
            private,
        ]
    }

    keys = parse_jwks(document)

    assert set(keys) == {good["kid"], private_kid}
    assert not keys[private_kid].is_private  # private parts are never kept


@pytest.mark.parametrize("document", [[], {"keys": "x"}, {}], ids=["list", "keys-not-list", "no-keys"])
def test_parse_jwks_rejects_non_jwks_documents(document: object) -> None:
    with pytest.raises(ValueError, match="not a JWKS"):
        parse_jwks(document)
