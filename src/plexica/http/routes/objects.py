"""Serving the local object store's presigned URLs (embedded mode; S3 serves its own)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from plexica.http.services import services_of
from plexica.storage import LocalObjectStore
from plexica.storage.rules import DEFAULT_CONTENT_TYPE
from plexica_sdk.errors import NotFoundError, PermissionDeniedError, ValidationError

__all__ = ["routes"]


def _verified(request: Request) -> tuple[LocalObjectStore, str, str]:
    store = services_of(request).objects
    if not isinstance(store, LocalObjectStore):
        raise NotFoundError("not found")
    path = request.scope["path"][len(request.scope.get("root_path", "")) :]
    url = f"{path}?{request.url.query}"
    try:
        bucket, key = store.verify_presigned(url, method=request.method)
    except ValidationError as exc:
        if exc.field in ("signature", "expires"):
            raise PermissionDeniedError("core:object:presigned", exc.field) from exc
        raise
    return store, bucket, key


async def get_object(request: Request) -> Response:
    """Download an object through a presigned GET URL, streamed (never read whole)."""
    store, bucket, key = _verified(request)
    info = await store.head(bucket, key)
    chunks = await store.stream(bucket, key)
    headers = {"Content-Length": str(info.size)}
    return StreamingResponse(chunks, media_type=info.content_type or DEFAULT_CONTENT_TYPE, headers=headers)


async def put_object(request: Request) -> JSONResponse:
    """Upload an object through a presigned PUT URL, streamed to the store.

    A plugin's object is stored through that plugin's ``host.objects`` (namespace limits, then
    ``plexica_object_uploaded``); anything else up to ``storage.max_object_bytes``. Over the limit
    is a 413 problem: at once for a ``Content-Length`` above it, else at the chunk that crosses it;
    either way nothing is stored.
    """
    _store, bucket, key = _verified(request)
    upload = services_of(request).upload_presigned
    declared = request.headers.get("content-length", "")
    size = int(declared) if declared.isascii() and declared.isdigit() and len(declared) <= 19 else None
    info = await upload(bucket, key, request.stream(), request.headers.get("content-type"), size)
    return JSONResponse({"key": key, "size": info.size, "etag": info.etag}, status_code=201)


routes = [
    # Presigned URLs are handed out by plugins, not called from the API description: not in /openapi.json.
    Route("/objects/{bucket}/{key:path}", get_object, methods=["GET"], include_in_schema=False),
    Route("/objects/{bucket}/{key:path}", put_object, methods=["PUT"], include_in_schema=False),
]
