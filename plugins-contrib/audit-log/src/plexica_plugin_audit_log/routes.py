"""HTTP routes of the audit-log plugin, mounted by the host at ``/api/plugins/audit-log/``.

Reading only, by design: there is no route that changes or deletes an entry (``POST /purge``
applies the tenant's retention, nothing else).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

import plexica_sdk
from plexica_plugin_audit_log import repository
from plexica_plugin_audit_log.repository import Filters
from plexica_plugin_audit_log.retention import purge_now
from plexica_sdk import Host
from plexica_sdk.errors import ValidationError

READ: Final = "audit-log:entry:read"
EXPORT: Final = "audit-log:entry:export"
PURGE: Final = "audit-log:entry:purge"

_EXPORT_BATCH = 500  # rows a batch of the export reads (patched small by the tests)
_MAX_FILTER: Final = 255


def _time(request: Request, name: str) -> dt.datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} must be an ISO 8601 time, like 2026-03-04T22:30:00Z", field=name) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _text(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if len(raw) > _MAX_FILTER:
        raise ValidationError(f"{name} must be at most {_MAX_FILTER} characters", field=name)
    return raw


def _filters(request: Request) -> Filters:
    filters = Filters(
        actor=_text(request, "actor"),
        type=_text(request, "type"),
        since=_time(request, "since"),
        until=_time(request, "until"),
    )
    if filters.since and filters.until and filters.since >= filters.until:
        raise ValidationError("since must be before until", field="since")
    return filters


def _cursor(request: Request) -> int | None:
    raw = request.query_params.get("cursor")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise ValidationError("cursor must be a next_cursor this route returned", field="cursor")
    return int(raw)


async def list_entries(request: Request) -> JSONResponse:
    """The tenant's entries, newest first; ``next_cursor`` pages on (``null`` on the last page)."""
    host = plexica_sdk.host(request)
    await host.require(READ)
    filters = _filters(request)
    cursor = _cursor(request)
    limit = plexica_sdk.query_int(request, "limit", default=100, minimum=1, maximum=500)
    async with host.session() as session:
        rows = await repository.page(session, filters, limit=limit + 1, after=cursor)
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse(
        {
            "items": [repository.to_json(row) for row in rows],
            "next_cursor": str(rows[-1].seq) if more else None,
        }
    )


async def _lines(host: Host, filters: Filters) -> AsyncIterator[bytes]:
    after: int | None = None
    while True:
        # One short transaction per batch: a long export holds no transaction open while it streams.
        async with host.session() as session:
            rows = await repository.page(session, filters, limit=_EXPORT_BATCH, after=after, newest_first=False)
        if not rows:
            return
        yield "".join(json.dumps(repository.to_json(row), separators=(",", ":")) + "\n" for row in rows).encode()
        if len(rows) < _EXPORT_BATCH:
            return
        after = rows[-1].seq


async def export_entries(request: Request) -> StreamingResponse:
    """Every matching entry, oldest first, as JSON lines, streamed in batches (never held whole)."""
    host = plexica_sdk.host(request)
    await host.require(EXPORT)
    filters = _filters(request)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="audit-{host.tenant.slug}-{stamp}.jsonl"'}
    return StreamingResponse(_lines(host, filters), media_type="application/x-ndjson", headers=headers)


async def purge(request: Request) -> JSONResponse:
    """Apply the tenant's retention now: delete the entries older than ``retention_days``."""
    host = plexica_sdk.host(request)
    await host.require(PURGE)
    deleted, before = await purge_now(host)
    return JSONResponse({"deleted": deleted, "before": before.isoformat()})


routes = [
    Route("/entries", list_entries, methods=["GET"]),
    Route("/export", export_entries, methods=["GET"]),
    Route("/purge", purge, methods=["POST"]),
]
