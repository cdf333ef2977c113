"""The naming rules both stores share, checked without any store."""

from __future__ import annotations

import pytest

from plexica.storage import validate_bucket, validate_key
from plexica_sdk.errors import ValidationError


@pytest.mark.parametrize("name", ["tenant-acme", "abc", "a.b.c", "b" * 63, "1tenant"])
def test_s3_style_bucket_names_are_accepted(name: str) -> None:
    assert validate_bucket(name) == name


@pytest.mark.parametrize(
    "name",
    ["acme-s3alias", "sthree-acme", "acme.", "10.0.0.1", "a" * 64],
    ids=["reserved-suffix", "reserved-prefix", "trailing-dot", "ip-address", "too-long"],
)
def test_reserved_or_malformed_bucket_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_bucket(name)
    assert caught.value.field == "bucket"


@pytest.mark.parametrize(
    "key",
    ["a", "a/b/c.txt", "dir/", "a//b", "..hidden", "a/..b/c", "ü/日本語 file.txt", "k" * 1024],
    ids=["simple", "nested", "folder-marker", "empty-segment", "dots-in-name", "dots-in-segment", "unicode", "max"],
)
def test_ordinary_keys_are_accepted(key: str) -> None:
    assert validate_key(key) == key


def test_lone_surrogate_key_is_refused() -> None:
    with pytest.raises(ValidationError, match="Unicode"):
        validate_key("bad\udc80key")


def test_error_message_quotes_only_the_start_of_a_huge_key() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_key("/" + "x" * 10_000)
    assert len(str(caught.value)) < 200
