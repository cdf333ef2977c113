"""Gateway mode: signed ``X-Tenant-ID`` / ``X-User-ID`` headers."""

from __future__ import annotations

import pytest

from plexica.auth import sign_gateway_headers, verify_gateway_headers
from plexica_sdk.errors import AuthenticationError

KEY = "gateway-shared-secret"
NOW = 1_800_000_000.0


def test_valid_signature_is_trusted() -> None:
    headers = sign_gateway_headers("acme", "user-1", key=KEY, now=NOW)

    assert verify_gateway_headers(headers, KEY, NOW + 5) == ("acme", "user-1")


def test_header_names_are_case_insensitive() -> None:
    headers = {name.lower(): value for name, value in sign_gateway_headers("acme", "u", key=KEY, now=NOW).items()}

    assert verify_gateway_headers(headers, KEY, NOW) == ("acme", "u")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Tenant-ID", "globex"),
        ("X-User-ID", "admin"),
        ("X-Gateway-Timestamp", str(int(NOW) + 1)),
        ("X-Gateway-Signature", "0" * 64),
    ],
    ids=["tenant", "user", "timestamp", "signature"],
)
def test_tampered_headers_are_refused(header: str, value: str) -> None:
    headers = sign_gateway_headers("acme", "user-1", key=KEY, now=NOW)
    headers[header] = value

    with pytest.raises(AuthenticationError, match="invalid gateway signature"):
        verify_gateway_headers(headers, KEY, NOW)


def test_signature_with_another_key_is_refused() -> None:
    headers = sign_gateway_headers("acme", "user-1", key="other-key", now=NOW)

    with pytest.raises(AuthenticationError, match="invalid gateway signature"):
        verify_gateway_headers(headers, KEY, NOW)


@pytest.mark.parametrize("skew", [-61, 61, -3600], ids=["stale", "future", "hour-old"])
def test_stale_or_future_timestamp_is_refused(skew: int) -> None:
    headers = sign_gateway_headers("acme", "user-1", key=KEY, now=NOW + skew)

    with pytest.raises(AuthenticationError, match="stale"):
        verify_gateway_headers(headers, KEY, NOW)


def test_timestamp_at_the_edge_is_accepted() -> None:
    headers = sign_gateway_headers("acme", "user-1", key=KEY, now=NOW - 60)

    assert verify_gateway_headers(headers, KEY, NOW) == ("acme", "user-1")


@pytest.mark.parametrize("missing", ["X-Gateway-Signature", "X-Gateway-Timestamp"])
def test_unsigned_headers_are_refused(missing: str) -> None:
    headers = sign_gateway_headers("acme", "user-1", key=KEY, now=NOW)
    del headers[missing]

    with pytest.raises(AuthenticationError, match="not signed"):
        verify_gateway_headers(headers, KEY, NOW)


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("X-Tenant-ID", "", "malformed gateway headers"),
        ("X-User-ID", "a\nb", "malformed gateway headers"),
        ("X-Gateway-Timestamp", "1.5", "malformed gateway timestamp"),
        ("X-Gateway-Timestamp", "-100", "malformed gateway timestamp"),
        ("X-Gateway-Timestamp", "9" * 40, "malformed gateway timestamp"),
    ],
    ids=["empty-tenant", "newline-user", "fraction", "negative", "huge"],
)
def test_malformed_headers_are_refused(header: str, value: str, reason: str) -> None:
    headers = sign_gateway_headers("acme", "user-1", key=KEY, now=NOW)
    headers[header] = value

    with pytest.raises(AuthenticationError, match=reason):
        verify_gateway_headers(headers, KEY, NOW)


def test_empty_key_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        verify_gateway_headers({}, "", NOW)
    with pytest.raises(ValueError, match="empty"):
        sign_gateway_headers("acme", "u", key=b"", now=NOW)
