"""Gateway signatures: bound to method, path, query, tenant, user, roles, time and a nonce."""

from __future__ import annotations

import pytest

from plexica.auth import GatewaySigner, verify_gateway_headers
from plexica.auth.gateway import NONCE_HEADER, ROLES_HEADER, SIGNATURE_HEADER, TENANT_HEADER, TIMESTAMP_HEADER
from plexica_sdk.errors import AuthenticationError

KEY = "gateway-shared-secret"
NOW = 1_800_000_000.0
PATH = "/api/plugins/notes/notes"


def sign(**kwargs: object) -> dict[str, str]:
    options: dict[str, object] = {"tenant": "acme", "user": "user-1", "roles": ["member"], **kwargs}
    return GatewaySigner(KEY, clock=lambda: NOW).headers("GET", PATH, **options)  # type: ignore[arg-type]


def verify(
    headers: dict[str, str], *, method: str = "GET", path: str = PATH, query: str = "", now: float = NOW
) -> object:
    return verify_gateway_headers(headers, KEY, method=method, path=path, query=query, now=now)


def test_a_valid_signature_yields_tenant_user_and_roles() -> None:
    assertion = verify_gateway_headers(sign(), KEY, method="get", path=PATH, query="", now=NOW + 5)

    assert (assertion.tenant_slug, assertion.user_id, assertion.roles) == ("acme", "user-1", ("member",))
    assert assertion.timestamp == int(NOW)


def test_header_names_are_case_insensitive() -> None:
    headers = {name.lower(): value for name, value in sign().items()}

    assert verify_gateway_headers(headers, KEY, method="GET", path=PATH, query="", now=NOW).user_id == "user-1"


def test_a_platform_caller_has_no_tenant_header() -> None:
    headers = sign(tenant=None, roles=["super_admin"])

    assert TENANT_HEADER not in headers
    assertion = verify_gateway_headers(headers, KEY, method="GET", path=PATH, query="", now=NOW)
    assert (assertion.tenant_slug, assertion.roles) == (None, ("super_admin",))


def test_each_request_gets_a_fresh_nonce_and_signature() -> None:
    first, second = sign(), sign()

    assert first[NONCE_HEADER] != second[NONCE_HEADER]
    assert first[SIGNATURE_HEADER] != second[SIGNATURE_HEADER]


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Tenant-ID", "globex"),
        ("X-User-ID", "admin"),
        (ROLES_HEADER, "member,tenant_admin"),
        (TIMESTAMP_HEADER, str(int(NOW) + 1)),
        (NONCE_HEADER, "A" * 22),
        (SIGNATURE_HEADER, "0" * 64),
    ],
    ids=["tenant", "user", "roles", "timestamp", "nonce", "signature"],
)
def test_tampered_headers_are_refused(header: str, value: str) -> None:
    headers = sign()
    headers[header] = value

    with pytest.raises(AuthenticationError, match="invalid gateway signature"):
        verify(headers)


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [("DELETE", PATH, ""), ("GET", "/api/core/v1/users", ""), ("GET", PATH, "limit=1000")],
    ids=["other-method", "other-path", "other-query"],
)
def test_a_signature_does_not_transfer_to_another_request(method: str, path: str, query: str) -> None:
    with pytest.raises(AuthenticationError, match="invalid gateway signature"):
        verify(sign(), method=method, path=path, query=query)


def test_a_signature_for_a_query_verifies_only_with_it() -> None:
    headers = GatewaySigner(KEY, clock=lambda: NOW).headers("GET", PATH, tenant="acme", user="u", query="limit=5")

    assert verify(headers, query="limit=5")
    with pytest.raises(AuthenticationError):
        verify(headers)


def test_another_key_is_refused() -> None:
    headers = GatewaySigner("other-key", clock=lambda: NOW).headers("GET", PATH, tenant="acme", user="u")

    with pytest.raises(AuthenticationError, match="invalid gateway signature"):
        verify(headers)


@pytest.mark.parametrize("skew", [-61, 61], ids=["too-old", "too-new"])
def test_stale_timestamps_are_refused(skew: int) -> None:
    with pytest.raises(AuthenticationError, match="stale"):
        verify(sign(), now=NOW + skew)


def test_the_skew_window_is_inclusive() -> None:
    assert verify(sign(), now=NOW + 60)


def test_unsigned_headers_are_refused() -> None:
    headers = sign()
    del headers[SIGNATURE_HEADER]

    with pytest.raises(AuthenticationError, match="not signed"):
        verify(headers)


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("X-User-ID", "", "malformed gateway headers"),
        ("X-User-ID", "a\nb", "malformed gateway headers"),
        ("X-Tenant-ID", "é", "malformed gateway headers"),
        (ROLES_HEADER, "member,,x", "malformed gateway roles"),
        (ROLES_HEADER, "a b", "malformed gateway roles"),
        (NONCE_HEADER, "short", "malformed gateway nonce"),
        (TIMESTAMP_HEADER, "1.5", "malformed gateway timestamp"),
        (TIMESTAMP_HEADER, "-100", "malformed gateway timestamp"),
        (TIMESTAMP_HEADER, "9" * 40, "malformed gateway timestamp"),
    ],
)
def test_malformed_headers_are_refused_before_any_hmac(header: str, value: str, reason: str) -> None:
    headers = sign()
    headers[header] = value

    with pytest.raises(AuthenticationError, match=reason):
        verify(headers)


@pytest.mark.parametrize(
    "kwargs",
    [{"user": ""}, {"tenant": "x" * 300}, {"roles": ["a,b"]}, {"nonce": "short"}],
    ids=["empty-user", "long-tenant", "comma-in-role", "short-nonce"],
)
def test_the_signer_refuses_values_the_host_would_refuse(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must"):
        sign(**kwargs)


def test_an_empty_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        verify_gateway_headers({}, "", method="GET", path="/", query="", now=NOW)
    with pytest.raises(ValueError, match="must not be empty"):
        GatewaySigner(b"")
