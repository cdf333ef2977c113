"""Objects on the local disk: the embedded default, and the twin the S3 store is tested against.

Layout under ``root``: one directory per bucket; inside it each object is a data file plus a
JSON sidecar (key, size, md5 etag, content type, time, data file name), both stored under the
SHA-256 of the key, so a key never becomes a path and S3 keys that clash on disk (``a`` and
``a/b``) live side by side. The sidecar is the commit point: a put writes a new data file,
then swaps the sidecar with ``os.replace``, so readers see the old object or the new one,
never half of either. The store assumes one process writes a root (the embedded mode).

Presigned URLs are app-relative (``/objects/{bucket}/{key}?expires=...&signature=...``), signed
with HMAC-SHA256 over method, bucket, key and expiry; the host serves them after
:meth:`LocalObjectStore.verify_presigned`. They stay valid only as long as the signing key does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, ParamSpec, Self, TypeVar, final
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from plexica.storage.rules import DEFAULT_CONTENT_TYPE, check_presign_args, validate_bucket, validate_key
from plexica_sdk.errors import BackendUnavailableError, ConflictError, NotFoundError, ValidationError
from plexica_sdk.types import ObjectInfo

__all__ = ["LocalObjectStore"]

_READ_RETRIES = 3
#: Bytes per chunk :meth:`LocalObjectStore.stream` yields.
CHUNK_SIZE = 1024 * 1024
_P = ParamSpec("_P")
_T = TypeVar("_T")


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once: a synced temp file renamed over the target."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _probe_write(root: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=root, prefix=".health-") as probe:
        probe.write(b"ok")
        probe.flush()


def _sync(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


async def _chunks(data: bytes | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Either form of upload body as chunks: bytes is one chunk."""
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    async for chunk in data:
        if chunk:
            yield bytes(chunk)


def _info(meta: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        key=meta["key"],
        size=meta["size"],
        etag=meta["etag"],
        content_type=meta["content_type"],
        last_modified=dt.datetime.fromisoformat(meta["last_modified"]),
    )


@final
class LocalObjectStore:
    """An :class:`~plexica_sdk.protocols.ObjectStore` in a directory, one subdirectory per bucket.

    Blocking file work runs in worker threads (``asyncio.to_thread``); a lock serialises the
    sidecar swaps of concurrent writers so none leaves an orphaned data file behind.

    Args:
        root: the directory holding the buckets; created when the store is entered.
        signing_key: the HMAC key of presigned URLs (at least 16 bytes). Pass the host's secret
            so URLs survive restarts and work on every process; ``None`` draws a random key, and
            then URLs die with this instance.
        url_prefix: the app-relative path the host serves presigned URLs under.
        clock: wall-clock seconds since the epoch (expiry must agree across processes, so not
            a monotonic clock); tests pass a fake one.

    Raises:
        ValidationError: ``signing_key`` is shorter than 16 bytes.
    """

    def __init__(
        self,
        root: Path,
        *,
        signing_key: bytes | None = None,
        url_prefix: str = "/objects",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if signing_key is not None and len(signing_key) < 16:
            raise ValidationError("signing_key must be at least 16 bytes", field="signing_key")
        self._root = Path(root)
        self._signing_key = signing_key if signing_key is not None else secrets.token_bytes(32)
        self._url_prefix = "/" + url_prefix.strip("/")
        self._clock = clock
        self._swap_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<LocalObjectStore {str(self._root)!r}>"

    @property
    def root(self) -> Path:
        """The directory holding the buckets."""
        return self._root

    async def __aenter__(self) -> Self:
        await self._run(self._root.mkdir, parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Nothing to release: every file is closed by the call that opened it."""

    async def ping(self) -> None:
        """Raise :class:`BackendUnavailableError` unless a file can be written under ``root``.

        Writing (not just listing) is what catches a full or read-only disk.
        """
        await self._run(_probe_write, self._root)

    async def create_bucket(self, bucket: str) -> None:
        """Create ``bucket``; creating one that exists is not an error.

        Raises:
            ValidationError: the name breaks S3's bucket naming rules.
        """
        path = self._root / validate_bucket(bucket)
        await self._run(path.mkdir, parents=True, exist_ok=True)

    async def delete_bucket(self, bucket: str, *, force: bool = False) -> None:
        """Delete ``bucket``; ``force`` deletes its objects first. A missing bucket is not an error.

        Raises:
            ConflictError: the bucket still holds objects and ``force`` is false.
        """
        path = self._root / validate_bucket(bucket)

        def remove() -> None:
            with self._swap_lock:
                if not path.is_dir():
                    return
                if not force and next(self._sidecars(path), None) is not None:
                    raise ConflictError(f"bucket {bucket!r} is not empty", resource=bucket)
                shutil.rmtree(path)

        await self._run(remove)

    async def put(
        self, bucket: str, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        """Store ``data`` as ``key``, replacing any object there, and return its metadata.

        ``data`` may be an async iterator of chunks: each is written to a temp file as it comes
        (memory holds one chunk), and the object appears only once the last one is on disk. If
        the iterator raises, the temp file goes, the previous object (if any) stays, and the
        error propagates.

        Raises:
            NotFoundError: the bucket does not exist.
            ValidationError: the bucket name or the key is invalid.
        """
        bucket_dir = self._bucket_dir(bucket)
        sidecar = self._sidecar(bucket_dir, validate_key(key))
        await self._run(self._require, bucket_dir, bucket)
        await self._run(sidecar.parent.mkdir, exist_ok=True)
        fd, tmp_name = await self._run(tempfile.mkstemp, dir=sidecar.parent, prefix=".", suffix=".tmp")
        tmp = Path(tmp_name)
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        try:
            with os.fdopen(fd, "wb") as file:
                async for chunk in _chunks(data):
                    digest.update(chunk)
                    size += len(chunk)
                    await self._run(file.write, chunk)
                await self._run(_sync, file)
            meta: dict[str, Any] = {
                "key": key,
                "size": size,
                "etag": digest.hexdigest(),
                "content_type": content_type or DEFAULT_CONTENT_TYPE,
                "last_modified": dt.datetime.now(dt.UTC).isoformat(),
                "data": f"{sidecar.stem}.{secrets.token_hex(8)}",
            }

            def commit() -> None:
                os.replace(tmp, sidecar.parent / meta["data"])
                with self._swap_lock:
                    old = self._read_meta(sidecar)
                    _write_atomic(sidecar, json.dumps(meta).encode("utf-8"))
                if old is not None:
                    (sidecar.parent / old["data"]).unlink(missing_ok=True)

            await self._run(commit)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # also on cancellation, so no await here
            raise
        return _info(meta)

    async def get(self, bucket: str, key: str) -> bytes:
        """Return the object's bytes.

        Raises:
            NotFoundError: the bucket or the object does not exist.
        """
        bucket_dir = self._bucket_dir(bucket)
        sidecar = self._sidecar(bucket_dir, validate_key(key))

        def read() -> bytes:
            with self._open_data(bucket_dir, bucket, sidecar, key) as file:
                return file.read()

        return await self._run(read)

    async def stream(self, bucket: str, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Return the object's bytes as an async iterator of ``chunk_size`` chunks.

        The object is looked up before this returns, so a missing one raises here; its data
        file is opened at the first chunk (an iterator never consumed holds no file), and a put
        replacing the object after that does not disturb the reader, which keeps the old file.

        Raises:
            NotFoundError: the bucket or the object does not exist (or, from the first chunk,
                was deleted in between).
        """
        bucket_dir = self._bucket_dir(bucket)
        sidecar = self._sidecar(bucket_dir, validate_key(key))
        await self._run(self._existing_meta, bucket_dir, bucket, sidecar, key)

        async def chunks() -> AsyncIterator[bytes]:
            file = await self._run(self._open_data, bucket_dir, bucket, sidecar, key)
            try:
                while chunk := await self._run(file.read, chunk_size):
                    yield chunk
            finally:
                file.close()

        return chunks()

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        """Return the object's metadata.

        Raises:
            NotFoundError: the bucket or the object does not exist.
        """
        bucket_dir = self._bucket_dir(bucket)
        sidecar = self._sidecar(bucket_dir, validate_key(key))
        return _info(await self._run(self._existing_meta, bucket_dir, bucket, sidecar, key))

    async def delete(self, bucket: str, key: str) -> None:
        """Delete the object; a missing object is not an error (as in S3).

        Raises:
            NotFoundError: the bucket does not exist.
        """
        bucket_dir = self._bucket_dir(bucket)
        sidecar = self._sidecar(bucket_dir, validate_key(key))

        def remove() -> None:
            self._require(bucket_dir, bucket)
            with self._swap_lock:
                meta = self._read_meta(sidecar)
                sidecar.unlink(missing_ok=True)
            if meta is not None:
                (sidecar.parent / meta["data"]).unlink(missing_ok=True)

        await self._run(remove)

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` and return how many went.

        Raises:
            NotFoundError: the bucket does not exist.
        """
        bucket_dir = self._bucket_dir(bucket)

        def remove() -> int:
            self._require(bucket_dir, bucket)
            removed = 0
            for sidecar in self._sidecars(bucket_dir):
                with self._swap_lock:
                    meta = self._read_meta(sidecar)
                    if meta is None or not meta["key"].startswith(prefix):
                        continue
                    sidecar.unlink(missing_ok=True)
                (sidecar.parent / meta["data"]).unlink(missing_ok=True)
                removed += 1
            return removed

        return await self._run(remove)

    async def list(self, bucket: str, prefix: str = "") -> Sequence[ObjectInfo]:
        """Return the objects whose keys start with ``prefix``, in S3's order (UTF-8 bytes).

        Reads every sidecar of the bucket: fine for the embedded mode, not for millions of keys.

        Raises:
            NotFoundError: the bucket does not exist.
        """
        bucket_dir = self._bucket_dir(bucket)

        def scan() -> Sequence[ObjectInfo]:
            self._require(bucket_dir, bucket)
            found = []
            for sidecar in self._sidecars(bucket_dir):
                meta = self._read_meta(sidecar)
                if meta is not None and meta["key"].startswith(prefix):
                    found.append(_info(meta))
            return sorted(found, key=lambda info: info.key.encode("utf-8"))

        return await self._run(scan)

    async def presigned_url(self, bucket: str, key: str, *, expires_in: int = 3600, method: str = "GET") -> str:
        """Return an app-relative URL that lets its holder GET or PUT one object until it expires.

        The object need not exist (a PUT URL is how a browser uploads a new one). Serve it with
        :meth:`verify_presigned`.

        Raises:
            ValidationError: invalid bucket or key, a method other than GET or PUT, or an
                ``expires_in`` outside 1..604800 seconds.
        """
        verb = check_presign_args(expires_in, method)
        validate_bucket(bucket)
        validate_key(key)
        expires = int(self._clock()) + expires_in
        query = urlencode({"expires": expires, "signature": self._sign(verb, bucket, key, expires)})
        return f"{self._url_prefix}/{bucket}/{quote(key, safe='/')}?{query}"

    def verify_presigned(self, url: str, *, method: str = "GET") -> tuple[str, str]:
        """Check a presigned URL the host received and return the ``(bucket, key)`` it grants.

        ``method`` is the method of the request being served: a GET URL does not allow a PUT.
        Only the path and query are read, so the URL may be absolute or app-relative.

        Raises:
            ValidationError: the URL is malformed, its signature does not match (``field`` is
                ``"signature"``), or it has expired (``field`` is ``"expires"``).
        """
        verb = method.upper()
        parts = urlsplit(url)
        if not parts.path.startswith(self._url_prefix + "/"):
            raise ValidationError("not a presigned object URL", field="url")
        bucket, slash, quoted_key = parts.path[len(self._url_prefix) + 1 :].partition("/")
        try:
            key = unquote(quoted_key, errors="strict")
            query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=True)
            (expires_raw,), (signature,) = query.pop("expires"), query.pop("signature")
            expires = int(expires_raw)
        except (UnicodeDecodeError, ValueError, KeyError) as exc:
            raise ValidationError("malformed presigned object URL", field="url") from exc
        if not slash or query:
            raise ValidationError("malformed presigned object URL", field="url")
        validate_bucket(bucket)
        validate_key(key)
        if verb not in ("GET", "PUT") or not hmac.compare_digest(signature, self._sign(verb, bucket, key, expires)):
            raise ValidationError("presigned URL signature does not match", field="signature")
        if self._clock() >= expires:
            raise ValidationError("presigned URL has expired", field="expires")
        return bucket, key

    def _sign(self, method: str, bucket: str, key: str, expires: int) -> str:
        # Keys hold no control characters (validate_key), so newlines separate fields unambiguously.
        message = f"{method}\n{bucket}\n{key}\n{expires}".encode()
        return hmac.new(self._signing_key, message, hashlib.sha256).hexdigest()

    def _bucket_dir(self, bucket: str) -> Path:
        return self._root / validate_bucket(bucket)

    @staticmethod
    def _sidecar(bucket_dir: Path, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return bucket_dir / digest[:2] / f"{digest}.json"

    @staticmethod
    def _sidecars(bucket_dir: Path) -> Iterator[Path]:
        return bucket_dir.glob("??/*.json")

    @staticmethod
    def _require(bucket_dir: Path, bucket: str) -> None:
        if not bucket_dir.is_dir():
            raise NotFoundError(f"no bucket {bucket!r}", resource=bucket)

    @staticmethod
    def _read_meta(sidecar: Path) -> dict[str, Any] | None:
        try:
            meta: dict[str, Any] = json.loads(sidecar.read_bytes())
        except FileNotFoundError:
            return None
        return meta

    def _open_data(self, bucket_dir: Path, bucket: str, sidecar: Path, key: str) -> BinaryIO:
        # A concurrent put may delete the data file between reading the sidecar and opening
        # the file; the sidecar then names a newer file, so read it again.
        for _ in range(_READ_RETRIES):
            meta = self._existing_meta(bucket_dir, bucket, sidecar, key)
            try:
                return (sidecar.parent / str(meta["data"])).open("rb")
            except FileNotFoundError:
                continue
        raise NotFoundError(f"no object {key!r} in bucket {bucket!r}", resource=f"{bucket}/{key}")

    def _existing_meta(self, bucket_dir: Path, bucket: str, sidecar: Path, key: str) -> dict[str, Any]:
        meta = self._read_meta(sidecar)
        if meta is None:
            self._require(bucket_dir, bucket)
            raise NotFoundError(f"no object {key!r} in bucket {bucket!r}", resource=f"{bucket}/{key}")
        return meta

    @staticmethod
    async def _run(func: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run blocking file work in a thread; disk failures become ``BackendUnavailableError``."""
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except FileNotFoundError as exc:
            # Missing buckets and keys are checked first; this is a bucket deleted mid-operation.
            raise NotFoundError("the bucket was deleted during the operation") from exc
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise BackendUnavailableError("local storage", f"{type(exc).__name__}: {exc}") from exc
