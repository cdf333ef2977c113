"""Objects in S3 or an S3-compatible server (MinIO, SeaweedFS), on ``aioboto3``.

``aioboto3`` is imported when an :class:`S3ObjectStore` is built, not when this module is, so
the embedded mode never pays for botocore and a missing install names the extra to add.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from types import ModuleType, TracebackType
from typing import Any, Self, final

from plexica.storage.rules import DEFAULT_CONTENT_TYPE, check_presign_args, validate_bucket, validate_key
from plexica_sdk.errors import (
    BackendUnavailableError,
    ConflictError,
    MissingDependencyError,
    NotFoundError,
    ValidationError,
)
from plexica_sdk.types import ObjectInfo

__all__ = ["S3ObjectStore"]

_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9.-]*")
_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CLIENT_METHODS = {"GET": "get_object", "PUT": "put_object"}
#: S3's smallest part (all but the last part of a multipart upload).
MIN_PART_SIZE = 5 * 1024 * 1024
#: Bytes per chunk :meth:`S3ObjectStore.stream` yields at most.
CHUNK_SIZE = 1024 * 1024


def _import(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError("s3", "aioboto3") from exc


def _etag(raw: str | None) -> str | None:
    # S3 quotes ETags; both stores hand them out bare (the md5 hex for single-part uploads).
    return None if raw is None else raw.strip('"')


@final
class S3ObjectStore:
    """An :class:`~plexica_sdk.protocols.ObjectStore` on S3; enter it to open its client.

    One client (and its connection pool) serves the store's whole lifetime: it is created in
    ``__aenter__`` and closed in ``__aexit__``, never at import or in ``__init__``. Every bucket
    name is put behind ``bucket_prefix`` on the server, so several deployments can share an
    account (``bucket_prefix="staging-"`` stores ``tenant-acme`` as ``staging-tenant-acme``).

    Uploads carry ``Content-MD5`` so the server checks their integrity, while botocore's newer
    CRC checksums stay off (``when_required``): many S3-compatible servers reject them.

    S3 servers differ on a put into a missing bucket: AWS refuses it (``NotFoundError``), some
    compatible servers create the bucket. Versioned buckets keep old versions after a forced
    delete, so deleting one then fails with ``ConflictError``.

    Args:
        endpoint_url: the S3 endpoint; ``None`` for AWS. Any other endpoint is addressed
            path-style (``{endpoint}/{bucket}/{key}``), which compatible servers expect.
        region: the signing region; buckets are created there.
        access_key: the access key id; ``None`` lets botocore find credentials itself.
        secret_key: the secret key; never printed.
        bucket_prefix: put before every bucket name on the server.
        connect_timeout: seconds to wait for a connection.
        read_timeout: seconds to wait for each response.
        max_attempts: attempts per request, retries included, with botocore's standard backoff.
        multipart_threshold: a streamed upload longer than this becomes a multipart upload.
        part_size: bytes per part of a multipart upload (S3's minimum is 5 MiB).
        health_bucket: the bucket :meth:`ping` asks about; one this account owns or nobody does.

    Raises:
        MissingDependencyError: ``aioboto3`` is not installed (``pip install 'plexica[s3]'``).
        ValidationError: ``bucket_prefix`` could not start a valid bucket name, or
            ``part_size`` is under 5 MiB.
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        bucket_prefix: str = "",
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
        multipart_threshold: int = 8 * 1024 * 1024,
        part_size: int = 8 * 1024 * 1024,
        health_bucket: str = "plexica",
    ) -> None:
        self._aioboto3 = _import("aioboto3")
        self._botocore_config = _import("botocore.config")
        self._botocore_errors = _import("botocore.exceptions")
        if bucket_prefix and _PREFIX_RE.fullmatch(bucket_prefix) is None:
            raise ValidationError(f"invalid bucket prefix {bucket_prefix!r}", field="bucket_prefix")
        if part_size < MIN_PART_SIZE:
            raise ValidationError(f"part_size must be at least {MIN_PART_SIZE} bytes", field="part_size")
        self._multipart_threshold = multipart_threshold
        self._part_size = part_size
        self._endpoint_url = endpoint_url
        self._region = region
        self._access_key = access_key
        self._secret_key = secret_key
        self._bucket_prefix = bucket_prefix
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max_attempts
        self._health_bucket = health_bucket
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"<S3ObjectStore {self._endpoint_url or 'aws'} prefix={self._bucket_prefix!r} {state}>"

    async def __aenter__(self) -> Self:
        """Create the S3 client. No request is sent: S3 has no cheap "ping" that every server allows."""
        if self._stack is not None:
            raise RuntimeError("S3ObjectStore is already open")
        session = self._aioboto3.Session(
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            region_name=self._region,
        )
        config = self._botocore_config.Config(
            signature_version="s3v4",
            s3={"addressing_style": "path" if self._endpoint_url else "auto"},
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            retries={"max_attempts": self._max_attempts, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(
            session.client("s3", endpoint_url=self._endpoint_url, config=config)
        )
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    async def ping(self) -> None:
        """Raise :class:`BackendUnavailableError` unless S3 answers a signed ``HeadBucket``.

        The bucket is ``health_bucket``: S3 has no request every server and policy allows, and a
        missing bucket still proves the server answers and accepts the signature (a 404). A
        refusal (403: wrong keys or a bucket another account owns) counts as unavailable.
        """
        with contextlib.suppress(NotFoundError), self._translated("HeadBucket", self._health_bucket):
            await self._open().head_bucket(Bucket=self.bucket_name(self._health_bucket))

    def bucket_name(self, bucket: str) -> str:
        """Return the name ``bucket`` has on the server (``bucket_prefix`` + ``bucket``).

        Raises:
            ValidationError: ``bucket`` or the prefixed name breaks S3's naming rules.
        """
        return validate_bucket(self._bucket_prefix + validate_bucket(bucket))

    async def create_bucket(self, bucket: str) -> None:
        """Create ``bucket``; creating one this account owns already is not an error.

        Raises:
            ConflictError: another account owns a bucket of that name.
        """
        name = self.bucket_name(bucket)
        args: dict[str, Any] = {"Bucket": name}
        if self._region != "us-east-1":  # S3 refuses an explicit us-east-1 location
            args["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        with self._translated("CreateBucket", bucket):
            try:
                await self._open().create_bucket(**args)
            except self._botocore_errors.ClientError as exc:
                if self._error_code(exc) != "BucketAlreadyOwnedByYou":
                    raise

    async def delete_bucket(self, bucket: str, *, force: bool = False) -> None:
        """Delete ``bucket``; ``force`` deletes its objects first. A missing bucket is not an error.

        Raises:
            ConflictError: the bucket still holds objects and ``force`` is false.
        """
        name = self.bucket_name(bucket)
        client = self._open()
        try:
            if force:
                await self._empty(name, bucket)
            with self._translated("DeleteBucket", bucket):
                await client.delete_bucket(Bucket=name)
        except NotFoundError:
            return

    async def put(
        self, bucket: str, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> ObjectInfo:
        """Store ``data`` as ``key``, replacing any object there, and return its metadata.

        ``data`` may be an async iterator of chunks. Up to ``multipart_threshold`` bytes are
        buffered and sent in one ``PutObject``; a longer stream becomes a multipart upload of
        ``part_size`` parts, so memory holds about one part whatever the object's size. If the
        iterator (or the server) fails, the multipart upload is aborted and the error
        propagates: no object appears and the previous one stays. A multipart object's ``etag``
        is S3's (the md5 of the part md5s, ``-{parts}``), not the md5 of the bytes.

        Raises:
            NotFoundError: the bucket does not exist (on servers that do not create it).
        """
        name, key = self.bucket_name(bucket), validate_key(key)
        content_type = content_type or DEFAULT_CONTENT_TYPE
        if isinstance(data, bytes | bytearray | memoryview):
            return await self._put_single(name, bucket, key, bytes(data), content_type)
        buffer = bytearray()
        chunks = aiter(data)
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) > self._multipart_threshold:
                return await self._put_multipart(name, bucket, key, buffer, chunks, content_type)
        return await self._put_single(name, bucket, key, bytes(buffer), content_type)

    async def _put_single(self, name: str, bucket: str, key: str, data: bytes, content_type: str) -> ObjectInfo:
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        with self._translated("PutObject", bucket):
            response = await self._open().put_object(
                Bucket=name,
                Key=key,
                Body=data,
                ContentType=content_type,
                ContentMD5=base64.b64encode(digest).decode("ascii"),
            )
        return ObjectInfo(
            key=key,
            size=len(data),
            etag=_etag(response.get("ETag")) or digest.hex(),
            content_type=content_type,
        )

    async def _put_multipart(
        self,
        name: str,
        bucket: str,
        key: str,
        buffer: bytearray,
        rest: AsyncIterator[bytes],
        content_type: str,
    ) -> ObjectInfo:
        client = self._open()
        with self._translated("CreateMultipartUpload", bucket):
            created = await client.create_multipart_upload(Bucket=name, Key=key, ContentType=content_type)
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        size = 0

        async def send(part: bytes) -> None:
            nonlocal size
            digest = hashlib.md5(part, usedforsecurity=False).digest()
            number = len(parts) + 1
            with self._translated("UploadPart", bucket):
                response = await client.upload_part(
                    Bucket=name,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=part,
                    ContentMD5=base64.b64encode(digest).decode("ascii"),
                )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})
            size += len(part)

        try:
            while True:
                while len(buffer) >= self._part_size:
                    await send(bytes(buffer[: self._part_size]))
                    del buffer[: self._part_size]
                chunk = await anext(rest, None)
                if chunk is None:
                    break
                buffer += chunk
            if buffer or not parts:
                await send(bytes(buffer))
            buffer.clear()
            with self._translated("CompleteMultipartUpload", bucket):
                response = await client.complete_multipart_upload(
                    Bucket=name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
        except BaseException:
            # Shielded: a cancelled upload must still release the parts the server holds.
            with contextlib.suppress(Exception):
                await asyncio.shield(client.abort_multipart_upload(Bucket=name, Key=key, UploadId=upload_id))
            raise
        return ObjectInfo(key=key, size=size, etag=_etag(response.get("ETag")), content_type=content_type)

    async def get(self, bucket: str, key: str) -> bytes:
        """Return the object's bytes.

        Raises:
            NotFoundError: the bucket or the object does not exist.
        """
        name, key = self.bucket_name(bucket), validate_key(key)
        with self._translated("GetObject", bucket, key):
            response = await self._open().get_object(Bucket=name, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
        return data

    async def stream(self, bucket: str, key: str, *, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Return the object's bytes as an async iterator of chunks of at most ``chunk_size``.

        The ``GetObject`` request is sent before this returns, so a missing object raises here;
        the body is read as the iterator is consumed. Consume it to the end or ``aclose()`` it,
        which returns the connection to the pool.

        Raises:
            NotFoundError: the bucket or the object does not exist.
        """
        name, key = self.bucket_name(bucket), validate_key(key)
        with self._translated("GetObject", bucket, key):
            response = await self._open().get_object(Bucket=name, Key=key)
        body = response["Body"]

        async def chunks() -> AsyncIterator[bytes]:
            async with body:
                while True:
                    with self._translated("GetObject", bucket, key):
                        chunk: bytes = await body.read(chunk_size)
                    if not chunk:
                        return
                    yield chunk

        return chunks()

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        """Return the object's metadata.

        Raises:
            NotFoundError: the bucket or the object does not exist.
        """
        name, key = self.bucket_name(bucket), validate_key(key)
        with self._translated("HeadObject", bucket, key):
            response = await self._open().head_object(Bucket=name, Key=key)
        return ObjectInfo(
            key=key,
            size=response["ContentLength"],
            etag=_etag(response.get("ETag")),
            content_type=response.get("ContentType"),
            last_modified=response.get("LastModified"),
        )

    async def delete(self, bucket: str, key: str) -> None:
        """Delete the object; a missing object is not an error.

        Raises:
            NotFoundError: the bucket does not exist.
        """
        name, key = self.bucket_name(bucket), validate_key(key)
        with self._translated("DeleteObject", bucket):
            await self._open().delete_object(Bucket=name, Key=key)

    async def list(self, bucket: str, prefix: str = "") -> Sequence[ObjectInfo]:
        """Return the objects whose keys start with ``prefix``, in key order, all pages read.

        ``ListObjectsV2`` omits content types, so ``content_type`` is ``None`` here.

        Raises:
            NotFoundError: the bucket does not exist.
        """
        name = self.bucket_name(bucket)
        found: list[ObjectInfo] = []
        with self._translated("ListObjectsV2", bucket):
            async for page in self._pages(name, prefix):
                found.extend(
                    ObjectInfo(
                        key=item["Key"],
                        size=item["Size"],
                        etag=_etag(item.get("ETag")),
                        last_modified=item.get("LastModified"),
                    )
                    for item in page.get("Contents", ())
                )
        return found

    async def presigned_url(self, bucket: str, key: str, *, expires_in: int = 3600, method: str = "GET") -> str:
        """Return a URL that lets its holder GET or PUT one object until it expires.

        Signed locally (SigV4 query string); no request is sent and the object need not exist.

        Raises:
            ValidationError: invalid bucket or key, a method other than GET or PUT, or an
                ``expires_in`` outside 1..604800 seconds.
        """
        verb = check_presign_args(expires_in, method)
        name, key = self.bucket_name(bucket), validate_key(key)
        with self._translated("presign", bucket, key):
            url: str = await self._open().generate_presigned_url(
                _CLIENT_METHODS[verb], Params={"Bucket": name, "Key": key}, ExpiresIn=expires_in
            )
        return url

    async def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` and return how many went.

        Raises:
            NotFoundError: the bucket does not exist.
        """
        return await self._empty(self.bucket_name(bucket), bucket, prefix)

    async def _empty(self, name: str, bucket: str, prefix: str = "") -> int:
        # Deleting the keys of each page as it arrives is safe: the continuation token marks a
        # position in key order, not a snapshot. One page holds at most 1000 keys, the
        # DeleteObjects limit.
        client = self._open()
        removed = 0
        with self._translated("empty bucket", bucket):
            async for page in self._pages(name, prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
                if not keys:
                    continue
                response = await client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
                if errors := response.get("Errors"):
                    first = errors[0]
                    raise BackendUnavailableError(
                        "s3", f"could not delete {len(errors)} objects of bucket {bucket!r}: {first.get('Code')}"
                    )
                removed += len(keys)
        return removed

    def _pages(self, name: str, prefix: str) -> Any:
        paginator = self._open().get_paginator("list_objects_v2")
        return paginator.paginate(Bucket=name, Prefix=prefix)

    def _open(self) -> Any:
        if self._client is None:
            raise RuntimeError("S3ObjectStore is not open: enter it with 'async with' first")
        return self._client

    def _error_code(self, exc: BaseException | None) -> str | None:
        if isinstance(exc, self._botocore_errors.ClientError):
            code = exc.response.get("Error", {}).get("Code")
            return None if code is None else str(code)
        return None

    @contextlib.contextmanager
    def _translated(self, action: str, bucket: str, key: str | None = None) -> Iterator[None]:
        """Turn botocore's errors into Plexica's, naming the bucket and key the caller used."""
        errors = self._botocore_errors
        try:
            yield
        except errors.ClientError as exc:
            code = self._error_code(exc)
            if code == "NoSuchBucket" or (code in _MISSING_OBJECT_CODES and key is None):
                raise NotFoundError(f"no bucket {bucket!r}", resource=bucket) from exc
            if code in _MISSING_OBJECT_CODES:
                raise NotFoundError(f"no object {key!r} in bucket {bucket!r}", resource=f"{bucket}/{key}") from exc
            if code == "KeyTooLongError":  # SeaweedFS also caps each '/' segment at 255 bytes
                raise ValidationError(f"object key {str(key)[:64]!r} is too long for this server", field="key") from exc
            if code == "BucketNotEmpty":
                raise ConflictError(f"bucket {bucket!r} is not empty", resource=bucket) from exc
            if code == "BucketAlreadyExists":
                raise ConflictError(f"bucket {bucket!r} is owned by another account", resource=bucket) from exc
            raise BackendUnavailableError("s3", f"{action} on bucket {bucket!r} failed: {code}") from exc
        except (errors.BotoCoreError, OSError) as exc:
            raise BackendUnavailableError("s3", f"{action} on bucket {bucket!r} failed: {exc}") from exc
