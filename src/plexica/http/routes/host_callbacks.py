"""The host callback API, v1 (``/.plexica/host/v1``): what a remote plugin may ask of its host.

Exactly the operations of a plugin's host handle, and nothing else: authorize, publish (to the
bus, or prepared for the plugin's own outbox write), mark processed, the plugin's cache, its
objects and its configuration. Each handler authenticates the call with
:class:`plexica.remote.callbacks.CallbackGate`, then acts through the plugin's own host handle for
the caller's tenant (``host_for(plugin, ctx)``, the embedded ``EmbeddedHost``), so a remote call is
scoped and validated exactly like the embedded one. Bodies are the attrs types of
:mod:`plexica_sdk.remote.host_api`, structured by the one converter.

Errors are the host's problems (status, ``type`` and title from :mod:`plexica.errors`) plus the
members ``error`` and ``attributes`` of wire protocol v1, so the plugin's ``RemoteHost`` raises the
very SDK exception an embedded handle would have raised.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plexica.http.guards import json_body
from plexica.http.plugin_mount import not_found
from plexica.http.problems import ProblemResponse, problem_for
from plexica.http.scope import trace_id_of
from plexica.remote.callbacks import CallbackGate, CallbackServices, Caller
from plexica_sdk import context
from plexica_sdk import errors as sdk_errors
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import (
    BackendUnavailableError,
    ConflictError,
    EventError,
    PlexicaError,
    PluginCallError,
    ValidationError,
)
from plexica_sdk.protocols import Host
from plexica_sdk.remote.host_api import (
    CALLBACK_PREFIX,
    CREDENTIAL_HEADER,
    PLUGIN_HEADER,
    TENANT_HEADER,
    AuthorizeRequest,
    CacheCount,
    CacheIncr,
    CacheKey,
    CacheKeys,
    CacheNumber,
    CachePrefix,
    CacheSet,
    CacheValue,
    CallbackTenant,
    ConfigAnswer,
    ObjectKey,
    ObjectList,
    ObjectListing,
    OutboxRow,
    PreparedEvent,
    PresignedUrl,
    PresignRequest,
    ProcessedAnswer,
    ProcessedRequest,
    PublishRequest,
)
from plexica_sdk.remote.wire import CONTEXT_HEADER, encode_problem

__all__ = ["CALLBACK_PREFIX", "callback_app"]

T = TypeVar("T")
Handler = Callable[[Request, Caller, Host], Awaitable[Response]]


def _json(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(unstructure(value), status_code=status)


def _bytes(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("value must be base64", field="value") from None


def _key(request: Request) -> str:
    key = request.query_params.get("key")
    if not key:
        raise ValidationError("name the object with ?key=", field="key")
    return key


#: Server-side errors whose class and message are the plugin's business: its own event broke its
#: contract, or a backend (or another plugin) is unavailable. Any other 5xx is a host bug.
_CARRIED_5XX = (EventError, BackendUnavailableError, PluginCallError)


def _as_sdk_error(exc: PlexicaError) -> PlexicaError | None:
    """``exc`` as its nearest class of :mod:`plexica_sdk.errors` (a host subclass travels as its SDK base)."""
    for cls in type(exc).__mro__:
        if getattr(sdk_errors, cls.__name__, None) is cls and cls.__name__ in sdk_errors.__all__:
            if cls is type(exc):
                return exc
            carried: PlexicaError = cls.__new__(cls)
            Exception.__init__(carried, str(exc))
            vars(carried).update(vars(exc))
            return carried
    return None


class _CallbackProblems:
    """Errors as the host's problems, carrying the SDK error class and attributes for the plugin to re-raise."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except PlexicaError as exc:
            carried = _as_sdk_error(exc)
            response = problem_for(exc, trace_id=trace_id_of(scope))
            if started or carried is None or (response.status_code >= 500 and not isinstance(carried, _CARRIED_5XX)):
                raise  # a host bug (or no SDK class to carry): the error stage logs it, a bare 500 answers
            body = json.loads(bytes(response.body))
            _, wire = encode_problem(carried, plugin="host")
            body.update(error=wire["error"], attributes=wire["attributes"], detail=wire["detail"])
            headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
            await ProblemResponse(body, status_code=response.status_code, headers=headers)(
                scope, receive, tracking_send
            )


def callback_app(services: CallbackServices) -> ASGIApp:
    """The callback API as an ASGI app, to mount at :data:`CALLBACK_PREFIX`."""
    gate = CallbackGate(services)

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def authenticated(request: Request) -> Response:
            headers = request.headers
            caller = await gate.caller(
                plugin=headers.get(PLUGIN_HEADER),
                token=headers.get(CONTEXT_HEADER),
                credential=headers.get(CREDENTIAL_HEADER),
                tenant=headers.get(TENANT_HEADER),
            )
            with context.use(caller.ctx):  # what the plugin's embedded handle would run in
                return await handler(request, caller, services.host_for(caller.plugin, caller.ctx))

        authenticated.__doc__ = handler.__doc__
        return authenticated

    async def tenant(request: Request, caller: Caller, host: Host) -> Response:
        """The tenant the callback acts in (a background job asks it first)."""
        ctx = caller.ctx
        return _json(
            CallbackTenant(id=ctx.tenant_id, slug=ctx.slug, schema=ctx.schema, plan=ctx.plan, status=ctx.status)
        )

    async def authorize(request: Request, caller: Caller, host: Host) -> Response:
        """RBAC then ABAC, for the user of the call being served (none with a service credential)."""
        body = await json_body(request, AuthorizeRequest)
        return _json(await host.authorize(body.permission, body.resource))

    async def publish(request: Request, caller: Caller, host: Host) -> Response:
        """Publish one of the plugin's event types to the bus now, validated like an embedded publish."""
        body = await json_body(request, PublishRequest)
        return _json(await host.publish(body.type, body.data, subject=body.subject))

    async def prepare(request: Request, caller: Caller, host: Host) -> Response:
        """Validate an event and build its outbox row, for the plugin to write in its own transaction."""
        if not services.remote_sessions:
            raise ConflictError("this host's database has no plugin roles, so remote plugins have no sessions")
        body = await json_body(request, PublishRequest)
        event, row = services.prepare(caller.plugin, body.type, body.data, caller.ctx, body.subject)
        outbox_row = OutboxRow(
            event_id=row["event_id"], event_type=row["event_type"], key=row["key"], shard=row["shard"],
            envelope=row["envelope"],
        )  # fmt: skip
        return _json(PreparedEvent(event=event, row=outbox_row))

    async def processed(request: Request, caller: Caller, host: Host) -> Response:
        """Record an event as handled, in a host transaction of its own (for plugins without a database)."""
        body = await json_body(request, ProcessedRequest)
        async with host.session() as session:
            first = await host.mark_processed(body.event, session=session)
        return _json(ProcessedAnswer(first=first))

    async def wake(request: Request, caller: Caller, host: Host) -> Response:
        """A remote session committed outbox rows: publish them now rather than at the next poll."""
        services.wake(caller.ctx)
        return Response(status_code=204)

    async def cache_get(request: Request, caller: Caller, host: Host) -> Response:
        """One key of the plugin's cache in the tenant."""
        value = await host.cache.get((await json_body(request, CacheKey)).key)
        return _json(CacheValue(value=None if value is None else base64.b64encode(value).decode()))

    async def cache_set(request: Request, caller: Caller, host: Host) -> Response:
        """Store one key of the plugin's cache in the tenant."""
        body = await json_body(request, CacheSet)
        await host.cache.set(body.key, _bytes(body.value), ttl=body.ttl)
        return Response(status_code=204)

    async def cache_delete(request: Request, caller: Caller, host: Host) -> Response:
        """Delete keys of the plugin's cache in the tenant."""
        return _json(CacheCount(count=await host.cache.delete(*(await json_body(request, CacheKeys)).keys)))

    async def cache_incr(request: Request, caller: Caller, host: Host) -> Response:
        """Add to a counter of the plugin's cache in the tenant."""
        body = await json_body(request, CacheIncr)
        return _json(CacheNumber(value=await host.cache.incr(body.key, body.amount, ttl=body.ttl)))

    async def cache_delete_prefix(request: Request, caller: Caller, host: Host) -> Response:
        """Delete the plugin's cache keys starting with a prefix, in the tenant."""
        count = await host.cache.delete_prefix((await json_body(request, CachePrefix)).prefix)
        return _json(CacheCount(count=count))

    async def object_head(request: Request, caller: Caller, host: Host) -> Response:
        """One object's metadata."""
        return _json(await host.objects.head((await json_body(request, ObjectKey)).key))

    async def object_delete(request: Request, caller: Caller, host: Host) -> Response:
        """Delete one object (a missing one is not an error)."""
        await host.objects.delete((await json_body(request, ObjectKey)).key)
        return Response(status_code=204)

    async def object_list(request: Request, caller: Caller, host: Host) -> Response:
        """The plugin's objects whose keys start with a prefix."""
        found = await host.objects.list((await json_body(request, ObjectList)).prefix)
        return _json(ObjectListing(objects=tuple(found)))

    async def object_presign(request: Request, caller: Caller, host: Host) -> Response:
        """A URL to GET or PUT one object until it expires."""
        body = await json_body(request, PresignRequest)
        return _json(
            PresignedUrl(url=await host.objects.presigned_url(body.key, expires_in=body.expires_in, method=body.method))
        )

    async def object_put(request: Request, caller: Caller, host: Host) -> Response:
        """Store the body, streamed, under ``?key=`` (the namespace's size and type limits apply)."""
        info = await host.objects.put(_key(request), request.stream(), content_type=request.headers.get("content-type"))
        return _json(info)

    async def object_get(request: Request, caller: Caller, host: Host) -> Response:
        """The object ``?key=``, streamed."""
        key = _key(request)
        info = await host.objects.head(key)
        chunks = await host.objects.stream(key)
        return StreamingResponse(chunks, media_type=info.content_type or "application/octet-stream")

    async def config(request: Request, caller: Caller, host: Host) -> Response:
        """The plugin's validated configuration in the tenant."""
        return _json(ConfigAnswer(config=await host.config()))

    table: list[tuple[str, Handler, str]] = [
        ("/tenant", tenant, "GET"),
        ("/authorize", authorize, "POST"),
        ("/events", publish, "POST"),
        ("/events/prepare", prepare, "POST"),
        ("/events/processed", processed, "POST"),
        ("/outbox/wake", wake, "POST"),
        ("/cache/get", cache_get, "POST"),
        ("/cache/set", cache_set, "POST"),
        ("/cache/delete", cache_delete, "POST"),
        ("/cache/incr", cache_incr, "POST"),
        ("/cache/delete-prefix", cache_delete_prefix, "POST"),
        ("/objects/head", object_head, "POST"),
        ("/objects/delete", object_delete, "POST"),
        ("/objects/list", object_list, "POST"),
        ("/objects/presign", object_presign, "POST"),
        ("/objects/content", object_put, "PUT"),
        ("/objects/content", object_get, "GET"),
        ("/config", config, "GET"),
    ]
    routes = [
        Route(path, endpoint(handler), methods=[method], include_in_schema=False) for path, handler, method in table
    ]
    return _CallbackProblems(Router(routes, default=not_found))
