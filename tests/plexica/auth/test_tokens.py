"""The attack suite against ``TokenVerifier.verify``, plus the claims it extracts and caches."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from plexica.auth import DevIssuer, OrganizationsStrategy, RealmPerTenantStrategy, StaticKeySource, TokenVerifier
from plexica_sdk.errors import AuthenticationError
from tests.plexica.auth.conftest import AUDIENCE, BASE_URL, NOW, CountingKeySource, FakeClock, forge, segments

pytestmark = pytest.mark.anyio

EMAIL = "alice@example.com"


async def refused(verifier: TokenVerifier, token: str, reason: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        await verifier.verify(token)
    assert caught.value.reason == reason
    if token:
        assert token not in str(caught.value)
    assert EMAIL not in str(caught.value)
    return caught.value


def valid_claims(dev_issuer: DevIssuer, realm: str = "tenant-acme", **overrides: Any) -> dict[str, Any]:
    claims = {
        "iss": dev_issuer.issuer(realm),
        "sub": "user-1",
        "aud": AUDIENCE,
        "iat": int(NOW),
        "exp": int(NOW) + 300,
        "email": EMAIL,
    }
    return {**claims, **overrides}


def kid_of(dev_issuer: DevIssuer, realm: str) -> str:
    kid = dev_issuer.public_key_set(realm).keys[0].kid
    assert kid is not None
    return kid


# --- accepted tokens -------------------------------------------------------------------------


async def test_valid_tenant_token_yields_principal_and_tenant(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="user-1", roles=["member"], username="alice", email=EMAIL)

    verified = await verifier.verify(token)

    assert verified.tenant_slug == "acme"
    assert not verified.is_platform
    assert verified.realm == "tenant-acme"
    assert verified.expires_at == NOW + 3600
    principal = verified.principal
    assert (principal.id, principal.username, principal.email) == ("user-1", "alice", EMAIL)
    assert principal.roles == ("member",)
    assert principal.tenant_slug == "acme"
    assert principal.issuer == f"{BASE_URL}/realms/tenant-acme"
    assert not principal.is_super_admin
    assert EMAIL not in repr(verified)


async def test_audience_list_containing_ours_is_accepted(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", audience=["account", AUDIENCE])

    assert (await verifier.verify(token)).principal.id == "u"


async def test_expired_within_leeway_is_accepted(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", expires_in=-10)

    assert (await verifier.verify(token)).principal.id == "u"


async def test_tenant_realm_super_admin_role_grants_nothing(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", roles=["super_admin"])

    principal = (await verifier.verify(token)).principal

    assert "super_admin" in principal.roles
    assert not principal.is_super_admin


async def test_platform_realm_super_admin_is_super_admin(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="plexica-platform", subject="root", roles=["super_admin"])

    verified = await verifier.verify(token)

    assert verified.principal.is_super_admin
    assert verified.is_platform
    assert verified.tenant_slug is None


async def test_platform_realm_without_role_is_not_super_admin(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="plexica-platform", subject="ops", roles=["viewer"])

    assert not (await verifier.verify(token)).principal.is_super_admin


# --- the attack suite ------------------------------------------------------------------------


async def test_alg_none_is_refused(
    dev_issuer: DevIssuer, verifier: TokenVerifier, key_source: CountingKeySource
) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": kid_of(dev_issuer, "tenant-acme")}

    await refused(verifier, forge(header, valid_claims(dev_issuer), b""), "malformed token")
    await refused(verifier, forge(header, valid_claims(dev_issuer), b"x"), "signing algorithm not allowed")
    assert key_source.calls == 0


@pytest.mark.parametrize("encoding", ["pem", "jwk-json"])
async def test_hs256_signed_with_the_realm_public_key_is_refused(
    dev_issuer: DevIssuer, verifier: TokenVerifier, key_source: CountingKeySource, encoding: str
) -> None:
    public = dev_issuer.public_key_set("tenant-acme").keys[0]
    assert isinstance(public, ECKey)
    secret = public.as_pem(private=False) if encoding == "pem" else str(public.as_dict()).encode()
    header = {"alg": "HS256", "typ": "JWT", "kid": public.kid}
    unsigned = forge(header, valid_claims(dev_issuer)).rsplit(".", 1)[0]
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha256).digest()
    token = forge(header, valid_claims(dev_issuer), signature)

    await refused(verifier, token, "signing algorithm not allowed")
    assert key_source.calls == 0


async def test_switching_to_another_allowed_algorithm_is_refused(
    dev_issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    attacker = RSAKey.generate_key(2048)
    header = {"alg": "RS256", "typ": "JWT", "kid": kid_of(dev_issuer, "tenant-acme")}
    token = jwt.encode(header, valid_claims(dev_issuer), attacker, algorithms=["RS256"])

    await refused(verifier, token, "signing algorithm not allowed")


async def test_hmac_algorithms_cannot_be_configured(key_source: CountingKeySource) -> None:
    with pytest.raises(ValueError, match="HS256"):
        TokenVerifier(RealmPerTenantStrategy(BASE_URL), key_source, audience=AUDIENCE, algorithms=["RS256", "HS256"])
    with pytest.raises(ValueError, match="none"):
        TokenVerifier(RealmPerTenantStrategy(BASE_URL), key_source, audience=AUDIENCE, algorithms=["none"])


async def test_expired_token_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    await refused(verifier, dev_issuer.mint(realm="tenant-acme", subject="u", expires_in=-3600), "token expired")


async def test_nbf_in_the_future_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={"nbf": int(NOW) + 600})

    await refused(verifier, token, "token is not valid yet")


async def test_iat_in_the_future_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={"iat": int(NOW) + 600})

    await refused(verifier, token, "token was issued in the future")


@pytest.mark.parametrize(
    "issuer",
    [
        f"{BASE_URL}/realms/master",
        f"{BASE_URL}/realms/tenant-Acme",
        f"{BASE_URL}/realms/tenant-acme/extra",
        f"{BASE_URL}/realms/",
        f"{BASE_URL}/tenant-acme",
        "",
    ],
    ids=["realm-outside-template", "bad-slug", "path-suffix", "no-realm", "no-realms-segment", "empty"],
)
async def test_wrong_issuer_is_refused(
    dev_issuer: DevIssuer, verifier: TokenVerifier, key_source: CountingKeySource, issuer: str
) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={"iss": issuer})

    await refused(verifier, token, "unknown issuer")
    assert key_source.calls == 0


async def test_missing_issuer_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={"iss": None})

    await refused(verifier, token, "token has no issuer")


@pytest.mark.parametrize(
    "base_url", ["http://evil.example", "http://plexica.localhost.evil.example", "https://plexica.localhost"]
)
async def test_issuer_of_another_base_url_is_refused_even_with_the_same_keys(
    dev_issuer: DevIssuer, verifier: TokenVerifier, key_source: CountingKeySource, base_url: str
) -> None:
    # Same key file, so the very same signing key: only the issuer URL differs.
    impostor = DevIssuer(dev_issuer.key_file, base_url=base_url, audience=AUDIENCE, clock=FakeClock())

    await refused(verifier, impostor.mint(realm="tenant-acme", subject="u"), "unknown issuer")
    assert key_source.calls == 0


async def test_wrong_audience_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", audience="account")

    await refused(verifier, token, "token is not for this audience")


async def test_audience_list_without_ours_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", audience=["account", "broker"])

    await refused(verifier, token, "token is not for this audience")


async def test_missing_audience_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={"aud": None})

    await refused(verifier, token, "token lacks claims: aud")


async def test_token_of_tenant_b_realm_claiming_tenant_a_is_refused(
    dev_issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    # Signed by realm B's key (kid of B) but claiming realm A's issuer: A's keys don't include it.
    token = dev_issuer.mint(realm="tenant-globex", subject="u", extra_claims={"iss": dev_issuer.issuer("tenant-acme")})
    assert segments(token)[0]["kid"] == kid_of(dev_issuer, "tenant-globex")
    assert kid_of(dev_issuer, "tenant-globex") != kid_of(dev_issuer, "tenant-acme")

    await refused(verifier, token, "unknown signing key")


async def test_token_of_tenant_b_with_kid_of_tenant_a_is_refused(
    dev_issuer: DevIssuer, verifier: TokenVerifier
) -> None:
    token = dev_issuer.mint(realm="tenant-globex", subject="u", extra_claims={"iss": dev_issuer.issuer("tenant-acme")})
    _, payload, signature = token.split(".")
    header = {"alg": "ES256", "typ": "JWT", "kid": kid_of(dev_issuer, "tenant-acme")}
    relabelled = ".".join([forge(header, {}).split(".")[0], payload, signature])

    await refused(verifier, relabelled, "invalid signature")


async def test_valid_token_of_tenant_a_names_tenant_a(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    """Using it on tenant B is refused by the middleware, which compares this slug with the request's."""
    token = dev_issuer.mint(realm="tenant-acme", subject="u")

    assert (await verifier.verify(token)).tenant_slug == "acme"


async def test_unknown_kid_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = forge({"alg": "ES256", "typ": "JWT", "kid": "no-such-key"}, valid_claims(dev_issuer))

    await refused(verifier, token, "unknown signing key")


async def test_missing_kid_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    await refused(verifier, forge({"alg": "ES256", "typ": "JWT"}, valid_claims(dev_issuer)), "token has no key id")


async def test_tampered_payload_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    header, _, signature = dev_issuer.mint(realm="tenant-acme", subject="u").split(".")
    payload = forge({}, valid_claims(dev_issuer, sub="admin")).split(".")[1]

    await refused(verifier, f"{header}.{payload}.{signature}", "invalid signature")


async def test_64_kb_token_is_refused_before_parsing(
    dev_issuer: DevIssuer, verifier: TokenVerifier, key_source: CountingKeySource
) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={"pad": "x" * 64 * 1024})
    assert len(token) > 64 * 1024

    await refused(verifier, token, "token too large")
    await refused(verifier, "A" * 64 * 1024, "token too large")
    assert key_source.calls == 0


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: "!" + t[1:],
        lambda t: t.replace(".", ".$", 1),
        lambda t: t[: t.index(".")] + "=" + t[t.index(".") :],
        lambda t: "e" + t,
        lambda t: t + "*",
        lambda t: "bm90IGpzb24." + t.split(".", 1)[1],
        lambda t: "WzEsMl0." + t.split(".", 1)[1],
        lambda t: t.replace("e", "é", 1),
    ],
    ids=[
        "bad-char-header",
        "bad-char-payload",
        "padding",
        "impossible-length",
        "bad-char-signature",
        "header-not-json",
        "header-not-object",
        "non-ascii",
    ],
)
async def test_broken_base64_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier, mangle: Any) -> None:
    token = mangle(dev_issuer.mint(realm="tenant-acme", subject="u"))

    await refused(verifier, token, "malformed token")


@pytest.mark.parametrize("shape", ["two", "four", "five", "empty", "dots"])
async def test_token_without_three_segments_is_refused(
    dev_issuer: DevIssuer, verifier: TokenVerifier, shape: str
) -> None:
    header, payload, signature = dev_issuer.mint(realm="tenant-acme", subject="u").split(".")
    token = {
        "two": f"{header}.{payload}",
        "four": f"{header}.{payload}.{signature}.{signature}",
        "five": f"{header}.{payload}.{signature}.{signature}.{signature}",
        "empty": "",
        "dots": "..",
    }[shape]

    await refused(verifier, token, "malformed token")


async def test_id_token_is_not_an_access_token(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={"typ": "ID"})

    await refused(verifier, token, "not an access token")


@pytest.mark.parametrize("claim", ["sub", "exp"])
async def test_token_without_required_claim_is_refused(
    dev_issuer: DevIssuer, verifier: TokenVerifier, claim: str
) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={claim: None})

    await refused(verifier, token, f"token lacks claims: {claim}")


async def test_non_numeric_exp_is_refused(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={"exp": "tomorrow"})

    await refused(verifier, token, "invalid exp claim")


async def test_absurd_exp_does_not_crash(dev_issuer: DevIssuer, verifier: TokenVerifier) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", extra_claims={"exp": 10**400})

    assert (await verifier.verify(token)).expires_at == 2**53


# --- the claim cache -------------------------------------------------------------------------


async def test_cache_hit_skips_the_key_source(
    dev_issuer: DevIssuer, verifier: TokenVerifier, key_source: CountingKeySource
) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u")

    first = await verifier.verify(token)
    second = await verifier.verify(token)

    assert second is first
    assert key_source.calls == 1


async def test_cache_hit_still_honours_expiry(
    dev_issuer: DevIssuer, verifier: TokenVerifier, key_source: CountingKeySource, clock: FakeClock
) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", expires_in=60)
    await verifier.verify(token)

    clock.advance(60 + 29)
    await verifier.verify(token)  # within leeway: still the cached answer
    assert key_source.calls == 1

    clock.advance(2)
    await refused(verifier, token, "token expired")


async def test_cache_is_bounded(dev_issuer: DevIssuer, key_source: CountingKeySource, clock: FakeClock) -> None:
    verifier = TokenVerifier(
        RealmPerTenantStrategy(BASE_URL), key_source, audience=AUDIENCE, algorithms=["ES256"], clock=clock, cache_size=2
    )
    tokens = [dev_issuer.mint(realm="tenant-acme", subject=f"u{i}") for i in range(3)]
    for token in tokens:
        await verifier.verify(token)

    await verifier.verify(tokens[2])
    assert key_source.calls == 3
    await verifier.verify(tokens[0])  # evicted
    assert key_source.calls == 4


async def test_refused_tokens_are_not_cached(
    dev_issuer: DevIssuer, verifier: TokenVerifier, key_source: CountingKeySource
) -> None:
    token = dev_issuer.mint(realm="tenant-acme", subject="u", audience="account")

    for _ in range(2):
        await refused(verifier, token, "token is not for this audience")
    assert key_source.calls == 2


# --- organizations strategy through the verifier ---------------------------------------------


@pytest.fixture
def org_verifier(dev_issuer: DevIssuer, clock: FakeClock) -> TokenVerifier:
    strategy = OrganizationsStrategy(BASE_URL, "plexica", platform_realm="plexica-platform")
    return TokenVerifier(
        strategy, StaticKeySource(dev_issuer.key_set_for_issuer), audience=AUDIENCE, algorithms=["ES256"], clock=clock
    )


@pytest.mark.parametrize("organization", [["acme"], {"acme": {"id": "0d6f"}}], ids=["alias-list", "alias-map"])
async def test_organization_claim_names_the_tenant(
    dev_issuer: DevIssuer, org_verifier: TokenVerifier, organization: Any
) -> None:
    token = dev_issuer.mint(realm="plexica", subject="u", extra_claims={"organization": organization})

    verified = await org_verifier.verify(token)

    assert verified.tenant_slug == verified.principal.tenant_slug == "acme"
    assert not verified.is_platform


@pytest.mark.parametrize(
    ("organization", "reason"),
    [
        (None, "token has no organization"),
        ([], "token must name exactly one organization"),
        (["acme", "globex"], "token must name exactly one organization"),
        ({"acme": {}, "globex": {}}, "token must name exactly one organization"),
        (["Not A Slug"], "token organization is not a tenant slug"),
    ],
    ids=["missing", "empty", "two-in-list", "two-in-map", "bad-alias"],
)
async def test_organization_claim_must_name_exactly_one_tenant(
    dev_issuer: DevIssuer, org_verifier: TokenVerifier, organization: Any, reason: str
) -> None:
    token = dev_issuer.mint(realm="plexica", subject="u", extra_claims={"organization": organization})

    await refused(org_verifier, token, reason)


async def test_organizations_strategy_refuses_tenant_realms(dev_issuer: DevIssuer, org_verifier: TokenVerifier) -> None:
    await refused(org_verifier, dev_issuer.mint(realm="tenant-acme", subject="u"), "unknown issuer")


async def test_dev_issuer_key_file_is_shared_across_instances(tmp_path: Path, dev_issuer: DevIssuer) -> None:
    """A token minted by ``plexica token`` in another process verifies in the server."""
    token = dev_issuer.mint(realm="tenant-acme", subject="u")
    other = DevIssuer(dev_issuer.key_file, base_url=BASE_URL, audience=AUDIENCE)
    verifier = TokenVerifier(
        RealmPerTenantStrategy(BASE_URL),
        StaticKeySource(other.key_set_for_issuer),
        audience=AUDIENCE,
        clock=FakeClock(),
    )

    assert (await verifier.verify(token)).principal.id == "u"
