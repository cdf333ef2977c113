"""Core API: the dead-letter queue of the event bus (super-admins only).

``GET /events/dlq`` lists dead letters (``?limit=``, oldest first), ``GET /events/dlq/{id}`` shows one
with its event and headers, ``POST .../replay`` publishes it again to its original topic (same
event id, only for the subscription that failed), ``POST .../dismiss`` drops it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from plexica.events.dlq import describe
from plexica.http.guards import require_super_admin
from plexica.http.schemas.platform import DeadLetterFull, DeadLetterList
from plexica.http.services import services_of
from plexica_sdk.http import query_int
from plexica_sdk.schema import Query, api

__all__ = ["routes"]

MAX_LIMIT = 1000


def _limit(request: Request) -> int:
    return query_int(request, "limit", default=100, minimum=1, maximum=MAX_LIMIT)


@api(
    response=DeadLetterList,
    query=(Query.integer("limit", minimum=1, maximum=MAX_LIMIT),),
)
async def list_dead_letters(request: Request) -> JSONResponse:
    """Dead letters not yet replayed or dismissed, oldest first (super-admin)."""
    require_super_admin(request)
    letters = await services_of(request).dead_letters.dlq_list(_limit(request))
    return JSONResponse({"items": [describe(letter) for letter in letters]})


@api(response=DeadLetterFull)
async def get_dead_letter(request: Request) -> JSONResponse:
    """One dead letter, with its event and headers (super-admin)."""
    require_super_admin(request)
    letter = await services_of(request).dead_letters.dlq_get(request.path_params["id"])
    return JSONResponse(describe(letter, full=True))


@api(status=204, errors=(409,))
async def replay_dead_letter(request: Request) -> Response:
    """Publish a dead letter's event again to its original topic, for the failed subscription (super-admin)."""
    require_super_admin(request)
    await services_of(request).dead_letters.dlq_replay(request.path_params["id"])
    return Response(status_code=204)


@api(status=204, errors=(409,))
async def dismiss_dead_letter(request: Request) -> Response:
    """Drop a dead letter without replaying it (super-admin)."""
    require_super_admin(request)
    await services_of(request).dead_letters.dlq_dismiss(request.path_params["id"])
    return Response(status_code=204)


routes = [
    Route("/events/dlq", list_dead_letters, methods=["GET"]),
    Route("/events/dlq/{id}", get_dead_letter, methods=["GET"]),
    Route("/events/dlq/{id}/replay", replay_dead_letter, methods=["POST"]),
    Route("/events/dlq/{id}/dismiss", dismiss_dead_letter, methods=["POST"]),
]
