"""ContextVerifier: the plugin's only gate, so every refusal here is a forgery it must not accept."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import pytest
from joserfc.jwk import OKPKey

from plexica_sdk.errors import AuthenticationError, BackendUnavailableError, TenantContextMissingError
from plexica_sdk.remote import ContextVerifier
from tests.sdk.remote.tokens import (
    NOW,
    TENANT,
    claims,
    hmac_with_public_key,
    jwks_of,
    new_key,
    sign,
    unsigned,
)

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Jwks:
    """The host's JWKS as the verifier sees it: what it serves now, and how often it was asked."""

    def __init__(self, *keys: OKPKey) -> None:
        self.document: Mapping[str, Any] = jwks_of(*keys)
        self.calls = 0
        self.fail = False

    async def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        if self.fail:
            raise BackendUnavailableError("host jwks", "down")
        return self.document


@pytest.fixture
def key() -> OKPKey:
    return new_key()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def jwks(key: OKPKey) -> Jwks:
    return Jwks(key)


@pytest.fixture
def verifier(jwks: Jwks, clock: Clock) -> ContextVerifier:
    return ContextVerifier("notes", jwks, clock=clock, refresh_min_seconds=10, max_age_seconds=300)


async def test_a_valid_token_yields_the_tenant_context_the_host_signed(verifier: ContextVerifier, key: OKPKey) -> None:
    remote = await verifier.verify(sign(key, claims()))
    assert remote.audience == "notes" and remote.issuer == "plexica" and remote.jti == "j-1"
    assert remote.expires_at - remote.issued_at == 30
    assert remote.tenant_context() == TENANT  # user, roles, workspace and trace id survive the trip


async def test_a_host_level_token_has_no_tenant(verifier: ContextVerifier, key: OKPKey) -> None:
    remote = await verifier.verify(sign(key, claims(tenant=None)))
    assert remote.tenant is None
    with pytest.raises(TenantContextMissingError):
        remote.tenant_context()


async def test_a_token_signed_by_another_key_under_the_hosts_kid_is_refused(
    verifier: ContextVerifier, key: OKPKey
) -> None:
    with pytest.raises(AuthenticationError, match="signature is invalid"):
        await verifier.verify(sign(new_key(), claims(), kid=key.kid))


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda head, body, sig: f"{head}.{raw_header(b'{}')}.{sig}", id="payload-swapped"),
        pytest.param(lambda head, body, sig: f"{head}.{body}.{sig[:-4]}AAAA", id="signature-changed"),
        pytest.param(lambda head, body, sig: f"{head}.{body}.{sig[:20]}", id="signature-truncated"),
        pytest.param(lambda head, body, sig: f"{head}.{body}.", id="signature-empty"),
        pytest.param(lambda head, body, sig: f"{head}.{body}.{sig[:-1]}*", id="signature-not-b64"),
    ],
)
async def test_a_tampered_token_is_refused(verifier: ContextVerifier, key: OKPKey, tamper: Any) -> None:
    head, body, sig = sign(key, claims()).split(".")
    with pytest.raises(AuthenticationError, match="signature is invalid"):
        await verifier.verify(tamper(head, body, sig))


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe"], ids=["not-json", "not-object", "not-utf8"])
async def test_a_signed_payload_that_is_no_json_object_is_malformed(
    verifier: ContextVerifier, key: OKPKey, body: bytes
) -> None:
    head = raw_header(json.dumps({"alg": "Ed25519", "typ": "plexica-context+jwt", "kid": key.kid}).encode())
    signing_input = f"{head}.{raw_header(body)}"
    signature = key.private_key.sign(signing_input.encode())  # type: ignore[union-attr]
    with pytest.raises(AuthenticationError, match="malformed"):
        await verifier.verify(f"{signing_input}.{raw_header(signature)}")


async def test_an_expired_token_is_refused_after_the_leeway(
    verifier: ContextVerifier, key: OKPKey, clock: Clock
) -> None:
    clock.now = NOW + 30 + 4  # within the 5 s leeway
    await verifier.verify(sign(key, claims(jti="within-leeway")))
    clock.now = NOW + 30 + 5
    with pytest.raises(AuthenticationError, match="expired"):
        await verifier.verify(sign(key, claims(jti="late")))


async def test_a_token_living_longer_than_60_seconds_is_refused(verifier: ContextVerifier, key: OKPKey) -> None:
    await verifier.verify(sign(key, claims(ttl=60)))
    with pytest.raises(AuthenticationError, match="longer than 60"):
        await verifier.verify(sign(key, claims(ttl=61, jti="j-2")))


async def test_a_token_from_the_future_is_refused(verifier: ContextVerifier, key: OKPKey) -> None:
    with pytest.raises(AuthenticationError, match="future"):
        await verifier.verify(sign(key, claims(issued_at=NOW + 60)))


async def test_a_token_for_another_plugin_is_refused(verifier: ContextVerifier, key: OKPKey) -> None:
    with pytest.raises(AuthenticationError, match="another plugin"):
        await verifier.verify(sign(key, claims(audience="billing")))


async def test_a_replayed_token_is_refused_until_it_expires(
    verifier: ContextVerifier, key: OKPKey, clock: Clock
) -> None:
    token = sign(key, claims())
    await verifier.verify(token)
    with pytest.raises(AuthenticationError, match="already used"):
        await verifier.verify(token)
    clock.now = NOW + 120  # long expired: forgotten by the replay guard, refused as expired
    with pytest.raises(AuthenticationError, match="expired"):
        await verifier.verify(token)
    await verifier.verify(sign(key, claims(jti="fresh", issued_at=clock.now)))
    assert len(verifier.replays) == 1  # the expired jti was purged: memory is bounded by the window


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        pytest.param(lambda key, payload: unsigned(payload, str(key.kid)), "algorithm", id="alg-none"),
        pytest.param(hmac_with_public_key, "algorithm", id="hs256-with-public-key"),
        pytest.param(
            lambda key, payload: with_header(sign(key, payload), alg="EdDSA"), "algorithm", id="deprecated-eddsa-alias"
        ),
        pytest.param(lambda key, payload: with_header(sign(key, payload), alg="RS256"), "algorithm", id="rs256"),
        pytest.param(lambda key, payload: sign(key, payload, typ="JWT"), "not a context token", id="plain-jwt"),
        pytest.param(lambda key, payload: "not.a.token", "malformed", id="garbage"),
        pytest.param(lambda key, payload: "x" * 9000, "too large", id="oversized"),
        pytest.param(
            lambda key, payload: "!!." + sign(key, payload).split(".", 1)[1], "malformed", id="header-not-b64"
        ),
        pytest.param(lambda key, payload: raw_header(b"{not json") + ".e30.", "malformed", id="header-not-json"),
        pytest.param(lambda key, payload: raw_header(b"[1]") + ".e30.", "malformed", id="header-not-object"),
        pytest.param(lambda key, payload: sign(key, payload) + ".x", "malformed", id="four-segments"),
        pytest.param(lambda key, payload: raw_header(b'{"alg":"Ed25519"}') + "==.e30.", "malformed", id="padded"),
        pytest.param(lambda key, payload: "é" + sign(key, payload), "malformed", id="non-ascii"),
        pytest.param(
            lambda key, payload: with_header(sign(key, payload), crit=["x"]), "malformed", id="crit-extension"
        ),
        pytest.param(lambda key, payload: with_header(sign(key, payload), kid=""), "key id", id="no-kid"),
    ],
)
async def test_algorithm_confusion_and_malformed_tokens_are_refused_before_any_key_lookup(
    verifier: ContextVerifier, key: OKPKey, jwks: Jwks, forge: Any, reason: str
) -> None:
    with pytest.raises(AuthenticationError, match=reason):
        await verifier.verify(forge(key, claims()))
    assert jwks.calls == 0


def raw_header(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_header(token: str, **changes: Any) -> str:
    """``token`` with its header changed (its signature then no longer matches, which must not matter)."""
    head, payload, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**header, **changes}).encode()).rstrip(b"=").decode()
    return f"{forged}.{payload}.{signature}"


async def test_an_unknown_kid_refetches_the_jwks_at_most_once_per_refresh_interval(
    verifier: ContextVerifier, key: OKPKey, jwks: Jwks, clock: Clock
) -> None:
    await verifier.verify(sign(key, claims()))
    assert jwks.calls == 1
    stranger = new_key()
    with pytest.raises(AuthenticationError, match="unknown key"):  # fetched 0 s ago: not again
        await verifier.verify(sign(stranger, claims(jti="s-early")))
    assert jwks.calls == 1
    clock.now = NOW + 11
    for attempt in range(5):  # a flood of unknown kids costs the host one fetch per interval
        with pytest.raises(AuthenticationError, match="unknown key"):
            await verifier.verify(sign(stranger, claims(jti=f"s-{attempt}", issued_at=clock.now)))
    assert jwks.calls == 2
    rotated = new_key()
    jwks.document = jwks_of(rotated, key)  # the host rotated: a new current key, the old one still listed
    clock.now = NOW + 22
    remote = await verifier.verify(sign(rotated, claims(jti="new", issued_at=clock.now)))
    assert remote.jti == "new" and jwks.calls == 3
    await verifier.verify(sign(key, claims(jti="old", issued_at=clock.now)))  # the previous key still verifies


async def test_a_key_removed_by_the_host_stops_verifying_once_the_cache_ages_out(
    verifier: ContextVerifier, key: OKPKey, jwks: Jwks, clock: Clock
) -> None:
    await verifier.verify(sign(key, claims()))
    jwks.document = jwks_of(new_key())
    clock.now = NOW + 301
    with pytest.raises(AuthenticationError, match="unknown key"):
        await verifier.verify(sign(key, claims(jti="after-removal", issued_at=clock.now)))


async def test_an_unreachable_jwks_is_backend_unavailable_not_a_crash(verifier: ContextVerifier, jwks: Jwks) -> None:
    jwks.fail = True
    with pytest.raises(BackendUnavailableError):
        await verifier.verify(sign(new_key(), claims()))


async def test_a_failed_fetch_does_not_hold_off_the_next(
    verifier: ContextVerifier, key: OKPKey, jwks: Jwks, clock: Clock
) -> None:
    jwks.fail = True  # the host is starting: its JWKS is not served yet
    with pytest.raises(BackendUnavailableError):
        await verifier.verify(sign(key, claims()))
    with pytest.raises(BackendUnavailableError):
        await verifier.verify(sign(key, claims(jti="again")))
    jwks.fail = False
    clock.now = NOW + 0.1  # the host serves now: the next call fetches, well within the interval
    assert (await verifier.verify(sign(key, claims(jti="served", issued_at=clock.now)))).jti == "served"
    assert jwks.calls == 3
    stranger = new_key()  # a successful fetch counts: unknown kids wait for the interval again
    with pytest.raises(AuthenticationError, match="unknown key"):
        await verifier.verify(sign(stranger, claims(jti="s", issued_at=clock.now)))
    assert jwks.calls == 3


async def test_a_pinned_issuer_refuses_other_hosts(jwks: Jwks, key: OKPKey, clock: Clock) -> None:
    verifier = ContextVerifier("notes", jwks, issuer="plexica-eu", clock=clock)
    with pytest.raises(AuthenticationError, match="another host"):
        await verifier.verify(sign(key, claims()))


async def test_claims_of_the_wrong_shape_are_authentication_errors(verifier: ContextVerifier, key: OKPKey) -> None:
    payload = claims()
    payload["roles"] = "tenant_admin"  # a string is not a list of roles
    with pytest.raises(AuthenticationError, match="roles"):
        await verifier.verify(sign(key, payload))
    payload = {**claims(jti="j-2"), "ver": 2}
    with pytest.raises(AuthenticationError, match="v1"):
        await verifier.verify(sign(key, payload))
