"""Serving the local object store's presigned URLs (embedded mode; S3 serves its own)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.http.services import services_of
from plexica.storage import LocalObjectStore
from plexica_sdk.errors import NotFoundError, PermissionDeniedError, ValidationError

__all__ = ["MAX_UPLOAD_BYTES", "routes"]

MAX_UPLOAD_BYTES = 100 * 1024 * 1024


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
    """Download an object through a presigned GET URL."""
    store, bucket, key = _verified(request)
    info = await store.head(bucket, key)
    return Response(await store.get(bucket, key), media_type=info.content_type or "application/octet-stream")


async def put_object(request: Request) -> JSONResponse:
    """Upload an object through a presigned PUT URL."""
    store, bucket, key = _verified(request)
    body = await request.body()
    if len(body) > MAX_UPLOAD_BYTES:
        raise ValidationError("object too large", field="body")
    info = await store.put(bucket, key, body, content_type=request.headers.get("content-type"))
    return JSONResponse({"key": info.key, "size": info.size, "etag": info.etag}, status_code=201)


routes = [
    Route("/objects/{bucket}/{key:path}", get_object, methods=["GET"]),
    Route("/objects/{bucket}/{key:path}", put_object, methods=["PUT"]),
]
