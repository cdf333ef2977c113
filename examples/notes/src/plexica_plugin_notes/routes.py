"""HTTP routes of the notes plugin, mounted by the host at ``/api/plugins/notes/``."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import attrs
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import plexica_sdk
from plexica_plugin_notes.models import notes
from plexica_sdk.errors import ConflictError, NotFoundError

READ = "notes:note:read"
WRITE = "notes:note:write"


def _iso(value: dt.datetime) -> str:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()


def _note(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "body": row.body,
        "author_id": row.author_id,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


@attrs.frozen(kw_only=True)
class NoteInput:
    """The body of ``POST /notes`` and ``PUT /notes/{id}``.

    Unknown fields, wrong types and lengths out of range are refused (422 naming the field).
    """

    title: str = attrs.field(validator=[attrs.validators.min_len(1), attrs.validators.max_len(200)])
    body: str = attrs.field(default="", validator=attrs.validators.max_len(100_000))


@attrs.frozen(kw_only=True)
class Note:
    """A note as the API answers it."""

    id: str
    title: str
    body: str
    author_id: str
    created_at: dt.datetime
    updated_at: dt.datetime


@attrs.frozen(kw_only=True)
class NoteList:
    items: tuple[Note, ...]


_LIMIT = plexica_sdk.Query.integer("limit", minimum=1, maximum=200, description="default 50")


async def _input(request: Request) -> NoteInput:
    # Size-capped while it streams, depth-bounded, NUL and lone surrogates refused, types and lengths checked: all 4xx.
    return await plexica_sdk.json_body(request, NoteInput)


#: Built once, so each request reuses the statement and its memoized cache key; only ``limit`` varies.
_NEWEST = sa.select(notes).order_by(notes.c.created_at.desc()).limit(sa.bindparam("limit", type_=sa.Integer))


@plexica_sdk.api(response=NoteList, query=(_LIMIT,))
async def list_notes(request: Request) -> JSONResponse:
    """List the tenant's notes, newest first."""
    host = plexica_sdk.host(request)
    await host.require(READ)
    limit = plexica_sdk.query_int(request, "limit", default=50, minimum=1, maximum=200)
    async with host.session() as session:
        rows = (await session.execute(_NEWEST, {"limit": limit})).all()
    return JSONResponse({"items": [_note(row) for row in rows]})


@plexica_sdk.api(request=NoteInput, response=Note, status=201, errors=(409,))
async def create_note(request: Request) -> JSONResponse:
    """Create a note and publish ``notes.note.created``."""
    host = plexica_sdk.host(request)
    await host.require(WRITE)
    note = await _input(request)
    title, body = note.title, note.body
    now = dt.datetime.now(dt.UTC)
    author = host.tenant.user.id if host.tenant.user else "system"
    note_id = str(uuid.uuid4())
    values = {
        "id": note_id,
        "title": title,
        "body": body,
        "author_id": author,
        "created_at": now,
        "updated_at": now,
    }
    limit = (await host.config())["max_notes"]  # the tenant's setting, or the schema's default
    async with host.session() as session:
        count = await session.scalar(sa.select(sa.func.count()).select_from(notes))
        if (count or 0) >= limit:
            raise ConflictError(f"this tenant may keep at most {limit} notes", resource="note")
        await session.execute(notes.insert().values(**values))
        # Through the outbox, in the same transaction: the event goes out if and only if the note exists.
        await host.publish(
            "notes.note.created", {"id": note_id, "title": title, "author_id": author}, subject=note_id, session=session
        )
    return JSONResponse(_note(_Row(values)), status_code=201)


@plexica_sdk.api(response=Note)
async def get_note(request: Request) -> JSONResponse:
    """One note of the tenant."""
    host = plexica_sdk.host(request)
    await host.require(READ)
    async with host.session() as session:
        row = (await session.execute(sa.select(notes).where(notes.c.id == request.path_params["id"]))).first()
    if row is None:
        raise NotFoundError("note not found", resource="note")
    return JSONResponse(_note(row))


@plexica_sdk.api(request=NoteInput, response=Note)
async def update_note(request: Request) -> JSONResponse:
    """Replace a note's title and body."""
    host = plexica_sdk.host(request)
    await host.require(WRITE)
    note = await _input(request)
    async with host.session() as session:
        result = await session.execute(
            notes.update()
            .where(notes.c.id == request.path_params["id"])
            .values(title=note.title, body=note.body, updated_at=dt.datetime.now(dt.UTC))
        )
        if result.rowcount == 0:
            raise NotFoundError("note not found", resource="note")
        row = (await session.execute(sa.select(notes).where(notes.c.id == request.path_params["id"]))).one()
    return JSONResponse(_note(row))


@plexica_sdk.api(status=204)
async def delete_note(request: Request) -> Response:
    """Delete a note."""
    host = plexica_sdk.host(request)
    await host.require(WRITE)
    async with host.session() as session:
        result = await session.execute(notes.delete().where(notes.c.id == request.path_params["id"]))
    if result.rowcount == 0:
        raise NotFoundError("note not found", resource="note")
    return Response(status_code=204)


class _Row:
    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


routes = [
    Route("/notes", list_notes, methods=["GET"]),
    Route("/notes", create_note, methods=["POST"]),
    Route("/notes/{id}", get_note, methods=["GET"]),
    Route("/notes/{id}", update_note, methods=["PUT"]),
    Route("/notes/{id}", delete_note, methods=["DELETE"]),
]
