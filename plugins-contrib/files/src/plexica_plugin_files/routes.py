"""HTTP routes of the files plugin, mounted by the host at ``/api/plugins/files/``.

Every route works in one workspace (the ``X-Workspace-ID`` header) and checks its permission
there: a file of another workspace is a 404, whoever asks.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final

import attrs
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import plexica_sdk
from plexica_plugin_files import limits
from plexica_plugin_files.models import files
from plexica_plugin_files.uploads import DELETED, event_data, finish, key_for
from plexica_sdk import Host
from plexica_sdk.errors import ConflictError, NotFoundError, PermissionDeniedError
from plexica_sdk.workspaces import scope_to_workspace, workspace_id

READ: Final = "files:file:read"
WRITE: Final = "files:file:write"
DELETE: Final = "files:file:delete"


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _file(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "workspace_id": row.workspace_id,
        "owner_id": row.owner_id,
        "name": row.name,
        "size": row.size,
        "content_type": row.content_type,
        "status": row.status,
        "created_at": _iso(row.created_at),
        "uploaded_at": _iso(row.uploaded_at),
    }


def _printable(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{attribute.name} must not hold control characters")


@attrs.frozen(kw_only=True)
class NewFile:
    """The body of ``POST /files``: what the client is about to upload."""

    name: str = attrs.field(
        validator=attrs.validators.and_(attrs.validators.min_len(1), attrs.validators.max_len(255), _printable)
    )
    size: int = attrs.field(validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(2**53)))
    content_type: str = attrs.field(
        validator=attrs.validators.and_(attrs.validators.min_len(3), attrs.validators.max_len(255))
    )


async def _workspace(host: Host, permission: str) -> str:
    ws = workspace_id(host, what="files")
    await host.require(permission, {"workspace_id": ws})
    return ws


async def _row(host: Host, file_id: str) -> Any:
    async with host.session() as session:
        row = (
            await session.execute(
                scope_to_workspace(sa.select(files).where(files.c.id == file_id), files.c.workspace_id, host)
            )
        ).first()
    if row is None:
        raise NotFoundError("file not found", resource="file")
    return row


async def create_file(request: Request) -> JSONResponse:
    """Register a file and answer a presigned URL to ``PUT`` its bytes to (then ``POST .../complete``)."""
    host = plexica_sdk.host(request)
    ws = await _workspace(host, WRITE)
    new = await plexica_sdk.json_body(request, NewFile)
    content_type = limits.media_type(new.content_type)
    config = await host.config()
    limits.check(config, new.size, content_type)
    file_id = str(uuid.uuid4())
    key = key_for(ws, file_id)
    values: dict[str, Any] = {
        "id": file_id,
        "workspace_id": ws,
        "owner_id": host.tenant.user.id if host.tenant.user else "system",
        "name": new.name,
        "size": new.size,
        "content_type": content_type,
        "key": key,
        "status": "pending",
        "created_at": dt.datetime.now(dt.UTC),
        "uploaded_at": None,
    }
    expires = int(config["url_expires_seconds"])
    url = await host.objects.presigned_url(key, expires_in=expires, method="PUT")
    async with host.session() as session:
        await session.execute(files.insert().values(**values))
    body = {**_file(_Row(values)), "upload_url": url, "upload_headers": {"Content-Type": content_type}}
    return JSONResponse({**body, "expires_in": expires}, status_code=201)


async def complete_file(request: Request) -> JSONResponse:
    """Check the uploaded object and mark the file ready (idempotent: a ready file is answered as is)."""
    host = plexica_sdk.host(request)
    await _workspace(host, WRITE)
    row = await _row(host, request.path_params["id"])
    user = host.tenant.user.id if host.tenant.user else None
    if row.owner_id != user:
        raise PermissionDeniedError(WRITE, "only the uploader completes an upload")
    if row.status == "pending":
        try:
            info = await host.objects.head(row.key)
        except NotFoundError:
            raise ConflictError(
                "nothing was uploaded yet: PUT the file to its upload_url first", resource="file"
            ) from None
        await finish(host, row, info)
        row = await _row(host, row.id)
    return JSONResponse(_file(row))


async def list_files(request: Request) -> JSONResponse:
    """The workspace's uploaded files, newest first."""
    host = plexica_sdk.host(request)
    await _workspace(host, READ)
    limit = plexica_sdk.query_int(request, "limit", default=50, minimum=1, maximum=200)
    query = sa.select(files).where(files.c.status == "ready").order_by(files.c.created_at.desc(), files.c.id)
    async with host.session() as session:
        rows = (await session.execute(scope_to_workspace(query, files.c.workspace_id, host).limit(limit))).all()
    return JSONResponse({"items": [_file(row) for row in rows]})


async def get_file(request: Request) -> JSONResponse:
    """One file, with a presigned ``download_url`` once it is uploaded."""
    host = plexica_sdk.host(request)
    await _workspace(host, READ)
    row = await _row(host, request.path_params["id"])
    body = _file(row)
    if row.status == "ready":
        expires = int((await host.config())["url_expires_seconds"])
        body["download_url"] = await host.objects.presigned_url(row.key, expires_in=expires, method="GET")
        body["expires_in"] = expires
    return JSONResponse(body)


async def delete_file(request: Request) -> Response:
    """Delete a file: its owner, or an admin of its workspace (the ``owner-deletes`` policy and the role)."""
    host = plexica_sdk.host(request)
    ws = await _workspace(host, READ)
    row = await _row(host, request.path_params["id"])
    await host.require(DELETE, {"workspace_id": ws, "owner_id": row.owner_id})
    await host.objects.delete(row.key)
    async with host.session() as session:
        result = await session.execute(files.delete().where(files.c.id == row.id))
        if result.rowcount == 1 and row.status == "ready":
            by = host.tenant.user.id if host.tenant.user else "system"
            await host.publish(DELETED, {**event_data(row), "deleted_by": by}, subject=row.id, session=session)
    return Response(status_code=204)


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


routes = [
    Route("/files", list_files, methods=["GET"]),
    Route("/files", create_file, methods=["POST"]),
    Route("/files/{id}", get_file, methods=["GET"]),
    Route("/files/{id}", delete_file, methods=["DELETE"]),
    Route("/files/{id}/complete", complete_file, methods=["POST"]),
]
