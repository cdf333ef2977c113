"""``host.objects`` (``PluginObjectStore``) is confined to its (tenant, plugin), in both layouts.

Every test runs on the local store and on SeaweedFS S3, in the bucket-per-tenant layout and the
shared-bucket-with-prefixes layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plexica.storage import LocalObjectStore, ManagedObjectStore, StorageLayout
from plexica.storage.scoped import content_type_allowed
from plexica_sdk.errors import NotFoundError, ValidationError
from plexica_sdk.protocols import PluginObjects
from tests.plexica.storage.scoped_support import Recording, World, chunks_of, read_all, slug
from tests.plexica.storage.support import fetch, unique_bucket

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["bucket", "prefix"])
async def world(request: pytest.FixtureRequest, store: ManagedObjectStore) -> AsyncIterator[World]:
    layout = StorageLayout(layout=request.param, shared_bucket=unique_bucket(), max_object_bytes=1024 * 1024)
    world = World(store=store, layout=layout, a=slug(), b=slug())
    for tenant in (world.a, world.b):
        await layout.create_tenant(store, tenant)
    yield world
    for tenant in (world.a, world.b):
        await layout.delete_tenant(store, tenant)
    if layout.layout == "prefix":
        await store.delete_bucket(layout.shared_bucket, force=True)


async def test_it_is_the_sdk_protocol_and_round_trips_under_the_confined_key(world: World) -> None:
    objects = world.objects(world.a, "p")
    assert isinstance(objects, PluginObjects)

    info = await objects.put("docs/report.txt", b"hello", content_type="text/plain")

    assert (info.key, info.size) == ("docs/report.txt", 5)
    assert await objects.get("docs/report.txt") == b"hello"
    assert (await objects.head("docs/report.txt")).key == "docs/report.txt"
    assert [i.key for i in await objects.list()] == ["docs/report.txt"]
    bucket, key = world.backend_key(world.a, "p", "docs/report.txt")
    expected = "p/docs/report.txt" if world.layout.layout == "bucket" else f"tenant-{world.a}/p/docs/report.txt"
    assert (bucket, key) == (world.layout.bucket(world.a), expected)
    assert await world.store.get(bucket, key) == b"hello"
    assert [(t, p, i.key) for t, p, i in world.uploaded] == [(world.a, "p", "docs/report.txt")]
    await objects.delete("docs/report.txt")
    with pytest.raises(NotFoundError):
        await objects.get("docs/report.txt")


async def test_another_tenant_or_plugin_sees_nothing_and_deletes_nothing(world: World) -> None:
    mine = world.objects(world.a, "p")
    await mine.put("docs/secret.txt", b"of p in a")

    for other in (world.objects(world.a, "q"), world.objects(world.b, "p"), world.objects(world.b, "q")):
        with pytest.raises(NotFoundError):
            await other.get("docs/secret.txt")
        with pytest.raises(NotFoundError):
            await other.head("docs/secret.txt")
        assert await other.list() == []
        await other.delete("docs/secret.txt")

    assert await mine.get("docs/secret.txt") == b"of p in a"


@pytest.mark.parametrize(
    "key",
    [
        "../q/docs/x",
        "docs/../../q/docs/x",
        "/docs/x",
        "docs\\..\\x",
        "docs/./x",
        "docs/a\x00b",
        "docs/a\nb",
        "docs",
        "docs/",
        "photos/x.png",
        "q/docs/x",
        "tenant-other/p/docs/x",
        "",
    ],
)
async def test_unsafe_or_undeclared_keys_are_refused_by_every_method(world: World, key: str) -> None:
    objects = world.objects(world.a, "p")
    recording = Recording(world.store)
    spy = world.objects(world.a, "p", store=recording)

    for call in (
        spy.put(key, b"x"),
        spy.get(key),
        spy.stream(key),
        spy.head(key),
        spy.delete(key),
        spy.presigned_url(key),
        spy.presigned_url(key, method="PUT"),
    ):
        with pytest.raises(ValidationError):
            await call

    assert recording.calls == []
    assert await objects.list() == []


async def test_the_full_backend_key_must_fit_in_1024_bytes(world: World) -> None:
    objects = world.objects(world.a, "p")
    room = 1024 - len(world.layout.plugin_prefix(world.a, "p").encode())
    # Segments of 200 bytes: SeaweedFS caps each segment at 255 bytes as well as the key at 1024.
    fits = ("docs/" + "/".join(["k" * 199] * 6))[:room]
    assert len(fits.encode()) == room and not fits.endswith("/")

    await objects.put(fits, b"x")
    with pytest.raises(ValidationError, match="too long"):
        await objects.put(fits + "k", b"x")
    assert [i.key for i in await objects.list()] == [fits]


@pytest.mark.s3
async def test_a_key_the_s3_server_refuses_as_too_long_is_a_validation_error(s3_config: object) -> None:
    from tests.plexica.storage.test_s3 import make_store

    async with make_store(s3_config) as store:
        bucket = unique_bucket()
        await store.create_bucket(bucket)
        try:
            with pytest.raises(ValidationError):
                await store.put(bucket, "a/" + "k" * 1000, b"x")  # over SeaweedFS's 255 bytes a segment
        finally:
            await store.delete_bucket(bucket, force=True)


async def test_list_strips_the_internal_prefix_and_a_prefix_only_narrows(world: World) -> None:
    objects = world.objects(world.a, "p")
    await objects.put("docs/a.txt", b"1")
    await objects.put("docs/b/c.txt", b"2")
    await world.objects(world.a, "q").put("docs/q.txt", b"3")

    assert [i.key for i in await objects.list("docs/b")] == ["docs/b/c.txt"]
    assert [i.key for i in await objects.list()] == ["docs/a.txt", "docs/b/c.txt"]
    assert await objects.list("q") == []  # matched under p's own prefix: p/q..., never q/...


async def test_a_prefix_holding_what_no_key_may_is_refused(world: World) -> None:
    objects = world.objects(world.a, "p")
    for prefix in ("/", "docs\\", "docs/../", "../q/", "a\x00"):
        with pytest.raises(ValidationError):
            await objects.list(prefix)


async def test_presigned_urls_name_the_confined_key_only(world: World) -> None:
    objects = world.objects(world.a, "p")
    await objects.put("docs/a.txt", b"presigned")

    url = await objects.presigned_url("docs/a.txt", expires_in=60)

    assert await fetch(world.store, url) == b"presigned"  # type: ignore[arg-type]
    if isinstance(world.store, LocalObjectStore):
        assert world.store.verify_presigned(url) == world.backend_key(world.a, "p", "docs/a.txt")
    else:
        bucket, key = world.backend_key(world.a, "p", "docs/a.txt")
        assert f"/{bucket}/{key}?" in url


async def test_a_streamed_upload_round_trips_through_stream(world: World) -> None:
    objects = world.objects(world.a, "p")
    data = bytes(range(256)) * 3000  # 768,000 bytes in odd-sized chunks

    info = await objects.put("docs/blob.bin", chunks_of(data, 70_001))

    assert info.size == len(data)
    assert info.etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert await read_all(await objects.stream("docs/blob.bin")) == data
    with pytest.raises(NotFoundError):
        await objects.stream("docs/missing.bin")


async def test_namespace_content_types_and_sizes_are_enforced(world: World) -> None:
    objects = world.objects(world.a, "p")

    await objects.put("images/a.png", b"\x89PNG", content_type="image/png")
    with pytest.raises(ValidationError) as refused:
        await objects.put("images/a.txt", b"text", content_type="text/plain")
    assert refused.value.field == "content_type"
    with pytest.raises(ValidationError):
        await objects.put("images/b.bin", b"x")  # no type: application/octet-stream
    with pytest.raises(ValidationError) as too_big:
        await objects.put("images/big.png", b"x" * (64 * 1024 + 1), content_type="image/png")
    assert too_big.value.field == "size"


async def test_a_streamed_upload_over_the_limit_is_cut_off_and_leaves_no_object(world: World) -> None:
    objects = world.objects(world.a, "p")
    await objects.put("images/kept.png", b"old", content_type="image/png")

    with pytest.raises(ValidationError) as caught:
        await objects.put("images/kept.png", chunks_of(b"x" * (64 * 1024 + 10), 8192), content_type="image/png")
    with pytest.raises(ValidationError):  # the host default (1 MiB here) caps namespaces without max_bytes
        await objects.put("docs/huge.bin", chunks_of(b"x" * (1024 * 1024 + 1), 256 * 1024))

    assert caught.value.field == "size"
    assert await objects.get("images/kept.png") == b"old"
    assert [i.key for i in await objects.list()] == ["images/kept.png"]
    assert [i.key for _, _, i in world.uploaded] == ["images/kept.png"]


async def test_deleting_a_tenant_removes_its_objects_and_only_its(world: World) -> None:
    for tenant in (world.a, world.b):
        for plugin in ("p", "q"):
            await world.objects(tenant, plugin).put("docs/x.txt", b"x")

    await world.layout.delete_tenant(world.store, world.a)
    await world.layout.delete_tenant(world.store, world.a)  # idempotent

    for plugin in ("p", "q"):
        assert [i.key for i in await world.objects(world.b, plugin).list()] == ["docs/x.txt"]
    if world.layout.layout == "bucket":
        with pytest.raises(NotFoundError):
            await world.store.list(world.layout.bucket(world.a))
    else:
        assert await world.store.list(world.layout.shared_bucket, f"tenant-{world.a}/") == []
    await world.layout.create_tenant(world.store, world.a)  # for the fixture's teardown


def test_content_type_patterns() -> None:
    assert content_type_allowed("image/png", ["image/*"])
    assert content_type_allowed("Text/Plain; charset=utf-8", ["text/plain"])
    assert content_type_allowed("anything/at-all", [])
    assert content_type_allowed("a/b", ["*/*"])
    assert not content_type_allowed("text/plain", ["image/*", "application/pdf"])
    assert not content_type_allowed("imagex/png", ["image/*"])


def test_owner_of_a_backend_object_in_both_layouts() -> None:
    bucket = StorageLayout(layout="bucket")
    prefix = StorageLayout(layout="prefix", shared_bucket="plexica")

    assert bucket.owner("tenant-acme", "notes/docs/a.txt") == prefix.owner("plexica", "tenant-acme/notes/docs/a.txt")
    found = bucket.owner("tenant-acme", "notes/docs/a.txt")
    assert found is not None and (found.slug, found.plugin, found.key) == ("acme", "notes", "docs/a.txt")
    assert bucket.owner("other", "notes/docs/a.txt") is None
    assert prefix.owner("tenant-acme", "notes/docs/a.txt") is None
    assert prefix.owner("plexica", "notes/docs/a.txt") is None
    assert bucket.owner("tenant-acme", "notes") is None


# ---------------------------------------------------------------- property

_PIECES = st.sampled_from(
    [
        "docs", "images", "q", "p", "tenant-x", "..", ".", "%2e%2e", "%2E%2e%2f", "%2f", "\\", "/", "//",
        "\x00", "\x1f", "\x7f", "\n", "é", "Ω", "\u202e", "\ud800", "😀", "ﬀ", "\uff0e\uff0e", "a" * 300, " ", "~", "*",
    ]
)  # fmt: skip
KEYS = st.one_of(
    st.lists(_PIECES, min_size=1, max_size=8).map("".join),
    st.lists(_PIECES, min_size=1, max_size=5).map("/".join),
    st.builds(lambda rest: "docs/" + rest, st.lists(_PIECES, max_size=6).map("".join)),
    st.text(max_size=40),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=KEYS, op=st.sampled_from(["put", "get", "stream", "head", "delete", "list", "presign", "presign-put"]))
async def test_no_key_reaches_outside_the_plugin_and_tenant(world: World, key: str, op: str) -> None:
    """Whatever the key, every backend call of p@a stays under p@a's prefix; b's and q's objects stay."""
    sentinels = [(world.a, "q"), (world.b, "p"), (world.b, "q")]
    for tenant, plugin in sentinels:
        await world.objects(tenant, plugin).put("docs/x", b"sentinel")
    recording = Recording(world.store)
    objects = world.objects(world.a, "p", store=recording)

    try:
        if op == "put":
            await objects.put(key, b"data")
        elif op == "get":
            await objects.get(key)
        elif op == "stream":
            await read_all(await objects.stream(key))
        elif op == "head":
            await objects.head(key)
        elif op == "delete":
            await objects.delete(key)
        elif op == "list":
            for info in await objects.list(key):
                assert not info.key.startswith(("tenant-", "p/", "q/"))
        else:
            await objects.presigned_url(key, method="PUT" if op == "presign-put" else "GET")
    except (ValidationError, NotFoundError):
        pass

    own_bucket, own_prefix = world.layout.bucket(world.a), world.layout.plugin_prefix(world.a, "p")
    for method, bucket, name in recording.calls:
        assert bucket == own_bucket
        assert name.startswith(own_prefix)
        segments = name.split("/")
        # A listing prefix is matched literally, so its last, partial segment may be "." or "..".
        whole = segments[:-1] if method == "list" else segments
        assert all(segment not in (".", "..") for segment in whole)
    for tenant, plugin in sentinels:
        assert await world.objects(tenant, plugin).get("docs/x") == b"sentinel"
