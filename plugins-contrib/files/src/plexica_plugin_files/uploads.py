"""Finishing an upload: check the stored object against what was declared and the limits, then mark it ready.

Two paths reach it: the local store's presigned PUT calls ``plexica_object_uploaded`` at once; an
S3 presigned PUT bypasses the host (and the namespace limits), so the client calls
``POST /files/{id}/complete``. Both check the object the store *has*, and only the first to flip
``pending`` to ``ready`` publishes ``files.file.uploaded``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import sqlalchemy as sa

from plexica_plugin_files import limits
from plexica_plugin_files.models import files
from plexica_sdk import Host, ObjectInfo
from plexica_sdk.errors import ValidationError

UPLOADED: Final = "files.file.uploaded"
DELETED: Final = "files.file.deleted"


def key_for(workspace_id: str, file_id: str) -> str:
    """The object key of a file: in the ``files`` namespace, under its workspace."""
    return f"files/{workspace_id}/{file_id}"


def event_data(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "workspace_id": row.workspace_id,
        "owner_id": row.owner_id,
        "name": row.name,
        "size": row.size,
        "content_type": row.content_type,
    }


async def finish(host: Host, row: Any, info: ObjectInfo) -> bool:
    """Mark ``row``'s file ready if its stored object passes; ``False`` if another path already did.

    Raises:
        ValidationError: the object breaks a limit or is not what was declared; it is deleted and
            the file stays ``pending`` (the client may upload again).
    """
    stored_type = limits.media_type(info.content_type) or row.content_type
    try:
        limits.check(await host.config(), info.size, stored_type)
        if info.size != row.size:
            raise ValidationError(f"the upload has {info.size} bytes, not the {row.size} declared", field="size")
        if stored_type != row.content_type:
            raise ValidationError(
                f"the upload is {stored_type[:80]!r}, not the {row.content_type!r} declared", field="content_type"
            )
    except ValidationError:
        await host.objects.delete(row.key)
        raise
    async with host.session() as session:
        result = await session.execute(
            files.update()
            .where(files.c.id == row.id, files.c.status == "pending")
            .values(status="ready", uploaded_at=dt.datetime.now(dt.UTC))
        )
        if result.rowcount != 1:
            return False
        await host.publish(UPLOADED, event_data(row), subject=row.id, session=session)
    return True


async def pending_by_key(host: Host, key: str) -> Any:
    """The pending file stored under ``key``, or ``None``."""
    async with host.session() as session:
        return (await session.execute(sa.select(files).where(files.c.key == key, files.c.status == "pending"))).first()
