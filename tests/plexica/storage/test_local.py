"""What only the local store does: its files on disk and its own presigned URLs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from plexica.storage import LocalObjectStore
from plexica_sdk.errors import BackendUnavailableError, NotFoundError, ValidationError
from tests.plexica.storage.support import SIGNING_KEY

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def local(tmp_path: Path) -> LocalObjectStore:
    store = LocalObjectStore(tmp_path / "objects", signing_key=SIGNING_KEY)
    await store.create_bucket("tenant-acme")
    return store


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


async def test_entering_creates_the_root(tmp_path: Path) -> None:
    async with LocalObjectStore(tmp_path / "deep" / "objects") as store:
        assert store.root.is_dir()


async def test_put_into_a_missing_bucket_is_not_found(local: LocalObjectStore) -> None:
    with pytest.raises(NotFoundError):
        await local.put("tenant-missing", "k", b"v")


async def test_overwrites_leave_one_data_file_and_no_temp_files(local: LocalObjectStore) -> None:
    for version in range(5):
        await local.put("tenant-acme", "k", f"version {version}".encode())
    await local.put("tenant-acme", "other", b"v")

    files = files_under(local.root / "tenant-acme")

    assert len(files) == 4  # a data file and a sidecar per object
    assert not [f for f in files if f.name.endswith(".tmp")]
    await local.delete("tenant-acme", "k")
    assert len(files_under(local.root / "tenant-acme")) == 2


async def test_keys_never_become_paths(local: LocalObjectStore) -> None:
    await local.put("tenant-acme", "dir/file.txt", b"v")

    assert not (local.root / "tenant-acme" / "dir").exists()


async def test_presigned_url_is_app_relative_and_verifies(local: LocalObjectStore) -> None:
    url = await local.presigned_url("tenant-acme", "a b/ü?.txt", expires_in=60)

    assert url.startswith("/objects/tenant-acme/a%20b/%C3%BC%3F.txt?")
    assert local.verify_presigned(url) == ("tenant-acme", "a b/ü?.txt")
    assert local.verify_presigned("https://app.example.com" + url) == ("tenant-acme", "a b/ü?.txt")


async def test_presigned_url_verifies_on_another_store_with_the_same_key(local: LocalObjectStore) -> None:
    url = await local.presigned_url("tenant-acme", "k")
    other = LocalObjectStore(local.root, signing_key=SIGNING_KEY)

    assert other.verify_presigned(url) == ("tenant-acme", "k")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda url: url.replace("/tenant-acme/", "/tenant-evil/"), id="other-bucket"),
        pytest.param(lambda url: url.replace("/report.pdf", "/secret.pdf"), id="other-key"),
        pytest.param(lambda url: with_query(url, expires="9999999999"), id="extended-expiry"),
        pytest.param(lambda url: with_query(url, signature="0" * 64), id="forged-signature"),
    ],
)
async def test_tampered_presigned_url_is_rejected(local: LocalObjectStore, tamper: Callable[[str], str]) -> None:
    url = await local.presigned_url("tenant-acme", "report.pdf")

    with pytest.raises(ValidationError) as caught:
        local.verify_presigned(tamper(url))
    assert caught.value.field == "signature"


async def test_url_signed_with_another_key_is_rejected(local: LocalObjectStore) -> None:
    stranger = LocalObjectStore(local.root, signing_key=b"another-key-of-enough-length")
    url = await stranger.presigned_url("tenant-acme", "report.pdf")

    with pytest.raises(ValidationError, match="signature"):
        local.verify_presigned(url)


async def test_random_key_urls_do_not_outlive_their_store(local: LocalObjectStore) -> None:
    first, second = LocalObjectStore(local.root), LocalObjectStore(local.root)
    url = await first.presigned_url("tenant-acme", "k")

    assert first.verify_presigned(url) == ("tenant-acme", "k")
    with pytest.raises(ValidationError):
        second.verify_presigned(url)


async def test_expired_presigned_url_is_rejected(tmp_path: Path) -> None:
    clock = FakeClock()
    store = LocalObjectStore(tmp_path, signing_key=SIGNING_KEY, clock=clock)
    url = await store.presigned_url("tenant-acme", "k", expires_in=60)

    clock.now += 59
    assert store.verify_presigned(url) == ("tenant-acme", "k")
    clock.now += 1
    with pytest.raises(ValidationError, match="expired") as caught:
        store.verify_presigned(url)
    assert caught.value.field == "expires"


async def test_get_url_does_not_allow_put(local: LocalObjectStore) -> None:
    get_url = await local.presigned_url("tenant-acme", "k")
    put_url = await local.presigned_url("tenant-acme", "k", method="put")

    with pytest.raises(ValidationError, match="signature"):
        local.verify_presigned(get_url, method="PUT")
    with pytest.raises(ValidationError, match="signature"):
        local.verify_presigned(put_url)
    assert local.verify_presigned(put_url, method="PUT") == ("tenant-acme", "k")


@pytest.mark.parametrize(
    "url",
    [
        "/elsewhere/tenant-acme/k?expires=1&signature=x",
        "/objects/tenant-acme?expires=1&signature=x",
        "/objects/tenant-acme/k?signature=x",
        "/objects/tenant-acme/k?expires=soon&signature=x",
        "/objects/tenant-acme/k?expires=1&signature=x&extra=1",
        "/objects/tenant-acme/%ff?expires=1&signature=x",
    ],
    ids=["wrong-prefix", "no-key", "no-expiry", "bad-expiry", "extra-parameter", "bad-utf8"],
)
def test_malformed_presigned_url_is_rejected(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LocalObjectStore(tmp_path, signing_key=SIGNING_KEY).verify_presigned(url)
    assert caught.value.field == "url"


@pytest.mark.parametrize(
    "path",
    ["/objects/tenant-acme/../../etc/passwd", "/objects/tenant-acme/%2e%2e/x", "/objects/../x/k"],
    ids=["dot-dot", "encoded-dot-dot", "bucket-dot-dot"],
)
def test_presigned_url_for_a_traversal_path_is_rejected(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValidationError):
        LocalObjectStore(tmp_path, signing_key=SIGNING_KEY).verify_presigned(path + "?expires=1&signature=x")


def test_short_signing_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        LocalObjectStore(tmp_path, signing_key=b"short")


async def test_failed_write_keeps_the_old_object_and_leaves_no_temp_file(
    local: LocalObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await local.put("tenant-acme", "k", b"old")
    before = files_under(local.root)

    def disk_full(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("plexica.storage.local.os.replace", disk_full)
    with pytest.raises(BackendUnavailableError) as caught:
        await local.put("tenant-acme", "k", b"new")
    monkeypatch.undo()

    assert caught.value.backend == "local storage"
    assert await local.get("tenant-acme", "k") == b"old"
    assert files_under(local.root) == before


async def test_corrupt_metadata_is_backend_unavailable(local: LocalObjectStore) -> None:
    await local.put("tenant-acme", "k", b"v")
    (sidecar,) = (local.root / "tenant-acme").glob("*/*.json")
    sidecar.write_text("{not json")

    with pytest.raises(BackendUnavailableError):
        await local.head("tenant-acme", "k")


async def test_root_that_is_a_file_is_backend_unavailable(tmp_path: Path) -> None:
    (tmp_path / "objects").write_text("not a directory")

    with pytest.raises(BackendUnavailableError):
        async with LocalObjectStore(tmp_path / "objects"):
            pass  # pragma: no cover
