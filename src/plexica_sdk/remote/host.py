"""``RemoteHost``: a remote plugin's handle on its host, the same :class:`~plexica_sdk.protocols.Host` as embedded.

Every method but ``session()`` is one call to the host callback API
(:mod:`plexica_sdk.remote.host_api`) over httpx2, and the host answers it through the plugin's
embedded handle for that tenant, so validation, scoping and errors are the embedded ones: an
error comes back as the very SDK exception (same class, message and attributes).

A handle is made per verified host call (``HostConnection.host_for``, the ``host_factory`` of
:func:`plexica_sdk.remote.create_app`) and authenticates with that call's context token; a
background job gets one with :meth:`HostConnection.for_tenant`, authenticated by the plugin's
service credential. ``session()`` opens the plugin's **own** database connection
(:mod:`plexica_sdk.remote.session`); ``publish(session=...)`` and ``mark_processed(session=...)``
write the outbox and processed-event rows in that session's transaction, through the two database
functions the host grants the plugin's role, so they commit or roll back with the plugin's writes.

Settings of a plugin process (environment): ``PLEXICA_HOST_URL`` (the host's base URL),
``PLEXICA_PLUGIN_CREDENTIAL`` (the service credential, for background jobs) and
``PLEXICA_PLUGIN_DATABASE_URL`` (the plugin role's database URL; without it ``session()`` raises
:class:`~plexica_sdk.errors.SettingsError`, e.g. on a SQLite host, which has no plugin roles).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, cast, final

import httpx2

from plexica_sdk import context
from plexica_sdk.converter import structure, unstructure
from plexica_sdk.errors import (
    AuthenticationError,
    BackendUnavailableError,
    PermissionDeniedError,
    PlexicaError,
    PluginCallError,
    SettingsError,
)
from plexica_sdk.remote.claims import RemoteContext
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
    PreparedEvent,
    PresignedUrl,
    PresignRequest,
    ProcessedAnswer,
    ProcessedRequest,
    PublishRequest,
    outbox_function,
    processed_function,
)
from plexica_sdk.remote.session import (
    OUTBOX_WRITTEN_KEY,
    RemoteDatabase,
    check_schema,
    quote_identifier,
    session_schema,
)
from plexica_sdk.remote.wire import CONTEXT_HEADER, decode_problem
from plexica_sdk.types import Decision, Event, ObjectInfo, TenantContext

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["CREDENTIAL_ENV", "DATABASE_URL_ENV", "HostConnection", "RemoteHost"]

#: The plugin's service credential (``plexica remote credentials create``).
CREDENTIAL_ENV: Final = "PLEXICA_PLUGIN_CREDENTIAL"
#: The plugin role's database URL; unset: ``host.session()`` is refused.
DATABASE_URL_ENV: Final = "PLEXICA_PLUGIN_DATABASE_URL"

T = TypeVar("T")
_TRACE_RE: Final = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
_HOST: Final = "plexica host"


@final
class HostConnection:
    """A plugin process's connection to its host: one HTTP client and, if configured, one database engine.

    Args:
        host_url: the host's base URL.
        plugin: this plugin's name; needed for :meth:`for_tenant` (a handle made by :meth:`host_for`
            takes it from the token's audience).
        credential: the plugin's service credential (``PLEXICA_PLUGIN_CREDENTIAL``).
        database_url: the plugin role's database URL (``PLEXICA_PLUGIN_DATABASE_URL``).
        client: an HTTP client to use (tests pass one bound to an ASGI app); default: one of its
            own, closed by :meth:`aclose`.
        timeout: seconds for each callback.
    """

    def __init__(
        self,
        host_url: str,
        *,
        plugin: str | None = None,
        credential: str | None = None,
        database_url: str | None = None,
        client: httpx2.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = host_url.rstrip("/") + CALLBACK_PREFIX
        self.plugin = plugin
        self._credential = credential
        self._client = client
        self._own_client = client is None
        self._timeout = timeout
        self.database = RemoteDatabase(database_url) if database_url else None

    @classmethod
    def from_env(
        cls, host_url: str, *, plugin: str | None = None, environ: Mapping[str, str] = os.environ
    ) -> HostConnection:
        """A connection configured by ``PLEXICA_PLUGIN_CREDENTIAL`` and ``PLEXICA_PLUGIN_DATABASE_URL``."""
        return cls(
            host_url,
            plugin=plugin,
            credential=environ.get(CREDENTIAL_ENV) or None,
            database_url=environ.get(DATABASE_URL_ENV) or None,
        )

    @property
    def client(self) -> httpx2.AsyncClient:
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=self._timeout)
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client this connection made, and the database engine."""
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.database is not None:
            await self.database.aclose()

    @property
    def credential(self) -> str | None:
        """The plugin's service credential (``$PLEXICA_PLUGIN_CREDENTIAL``), if this process has one."""
        return self._credential

    def host_for(self, remote: RemoteContext) -> RemoteHost:
        """The handle for one verified host call (the ``host_factory`` of ``create_app``).

        A call signed for no tenant (``plexica_host_started``, a global event's handler) gets a
        host-level handle: its tenant calls follow the tenant context var and authenticate with
        the service credential, as the embedded host-level handle follows the context.
        """
        auth = {PLUGIN_HEADER: remote.audience, CONTEXT_HEADER: remote.token}
        return RemoteHost(self, remote.audience, remote.tenant, auth)

    async def for_tenant(self, slug: str) -> RemoteHost:
        """A handle for work outside a host call (a background job) in tenant ``slug``, by service credential.

        There is no user: ``authorize`` denies, as embedded without a user.

        Raises:
            SettingsError: no plugin name or no credential is configured.
            PluginCallError: the host refused the credential.
            PermissionDeniedError: the plugin is not installed for that tenant (403).
        """
        if self.plugin is None or self._credential is None:
            raise SettingsError([f"a background host handle needs the plugin's name and ${CREDENTIAL_ENV}"])
        auth = {PLUGIN_HEADER: self.plugin, CREDENTIAL_HEADER: self._credential, TENANT_HEADER: slug}
        answer = await _call(self, "GET", "/tenant", auth, result=CallbackTenant)
        ctx = TenantContext(
            tenant_id=answer.id, slug=answer.slug, schema=answer.schema, plan=answer.plan, status=answer.status
        )
        return RemoteHost(self, self.plugin, ctx, auth)


def _problem(response: httpx2.Response, plugin: str) -> PlexicaError:
    """The SDK exception a callback's error answer stands for.

    A refused token or credential (401) is the plugin's failure, not its caller's: it becomes a
    :class:`PluginCallError`, so a hook that needed the host never answers the host with a 401
    that would read as the host's own token being refused.
    """
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        error = decode_problem(response.status_code, body, plugin=plugin)
        if isinstance(error, AuthenticationError):
            return PluginCallError(
                plugin, "a host callback", f"the host refused its credentials: {getattr(error, 'reason', error)}"
            )
        return error
    return BackendUnavailableError(_HOST, f"answered HTTP {response.status_code} without a Plexica problem")


async def _send(
    connection: HostConnection, method: str, path: str, headers: Mapping[str, str], *, stream: bool = False, **kw: Any
) -> httpx2.Response:
    client = connection.client
    try:
        request = client.build_request(method, connection.base_url + path, headers=dict(headers), **kw)
        response = await client.send(request, stream=stream)
    except httpx2.HTTPError as exc:
        raise BackendUnavailableError(_HOST, type(exc).__name__) from exc
    if response.status_code >= 400:
        if stream:
            await response.aread()
            await response.aclose()
        raise _problem(response, headers.get(PLUGIN_HEADER, "plugin"))
    return response


async def _call(
    connection: HostConnection,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: object = None,
    *,
    result: type[T],
) -> T:
    response = await _send(connection, method, path, headers, json=None if body is None else unstructure(body))
    return structure(response.json(), result)


async def _act(connection: HostConnection, path: str, headers: Mapping[str, str], body: object) -> None:
    await _send(connection, "POST", path, headers, json=unstructure(body))


@final
class RemoteHost:
    """A remote plugin's :class:`~plexica_sdk.protocols.Host` for one tenant (see the module docstring)."""

    __slots__ = ("_connection", "_ctx", "_headers", "_plugin")

    def __init__(
        self, connection: HostConnection, plugin: str, ctx: TenantContext | None, auth: Mapping[str, str]
    ) -> None:
        self._connection = connection
        self._plugin = plugin
        # None: a host-level handle (plexica_host_started, a global event), whose tenant calls follow
        # the tenant context var, as the embedded host's do, authenticated by the service credential.
        self._ctx = ctx
        headers = dict(auth)
        if ctx is not None and ctx.trace_id is not None and _TRACE_RE.match(ctx.trace_id):
            headers["X-Trace-ID"] = ctx.trace_id  # the host logs the callback under the request's trace
        self._headers = headers

    @property
    def _auth(self) -> Mapping[str, str]:
        """The callback headers: the call's token, or for a host-level handle the credential and the tenant."""
        if self._ctx is not None:
            return self._headers
        tenant = self.tenant
        credential = self._connection.credential
        if credential is None:
            raise SettingsError(
                [f"a host-level handle acts in a tenant with the plugin's service credential: set ${CREDENTIAL_ENV}"]
            )
        return {PLUGIN_HEADER: self._plugin, CREDENTIAL_HEADER: credential, TENANT_HEADER: tenant.slug}

    @property
    def plugin(self) -> str:
        return self._plugin

    @property
    def tenant(self) -> TenantContext:
        """The tenant of the call being served; for a host-level handle, the current tenant context.

        Raises:
            TenantContextMissingError: a host-level handle used outside any tenant context.
        """
        if self._ctx is not None:
            return self._ctx
        return context.current("a tenant-scoped host call")

    async def _call(self, method: str, path: str, body: object, result: type[T]) -> T:
        return await _call(self._connection, method, path, self._auth, body, result=result)

    def session(self) -> contextlib.AbstractAsyncContextManager[AsyncSession]:
        """The plugin's own database session in this tenant's schema, committed on success.

        Raises:
            SettingsError: this process has no database URL (``PLEXICA_PLUGIN_DATABASE_URL``); a
                SQLite host has no plugin roles, so remote plugins have no database there.
        """
        database = self._connection.database
        if database is None:
            raise SettingsError(
                [f"host.session() in a remote plugin needs its database role's URL in ${DATABASE_URL_ENV}"]
            )
        return self._session(database)

    @contextlib.asynccontextmanager
    async def _session(self, database: RemoteDatabase) -> AsyncIterator[AsyncSession]:
        async with database.session(self.tenant.schema) as session:
            yield session
            wrote = session.info.pop(OUTBOX_WRITTEN_KEY, False)
        if wrote:  # committed: have the host publish the rows now rather than at its next poll
            with contextlib.suppress(PlexicaError):
                await _act(self._connection, "/outbox/wake", self._auth, {})

    def _function_call(self, function: str, arguments: Sequence[str]) -> Any:
        from sqlalchemy import text

        schema = quote_identifier(check_schema(self.tenant.schema))
        placeholders = ", ".join(f":{name}" for name in arguments)
        return text(f"SELECT {schema}.{quote_identifier(function)}({placeholders})")

    async def publish(self, event_type: str, data: Any, *, subject: str | None = None, session: Any = None) -> Event:
        request = PublishRequest(type=event_type, data=data, subject=subject)
        if session is None:
            return await self._call("POST", "/events", request, Event)
        checked = session_schema(session, self.tenant.schema)
        prepared = await self._call("POST", "/events/prepare", request, PreparedEvent)
        row = unstructure(prepared.row)
        statement = self._function_call(outbox_function(self._plugin), list(row))
        await checked.execute(statement, row)
        checked.info[OUTBOX_WRITTEN_KEY] = True
        return prepared.event

    async def mark_processed(self, event: Event, *, session: Any) -> bool:
        """As embedded with a remote ``session``; with ``session=None`` the host records it at once.

        Without a session (a plugin with no database) the record commits on its own, not with
        the handler's effects: call it after the handler succeeded.
        """
        if session is None:
            answer = await self._call("POST", "/events/processed", ProcessedRequest(event=event), ProcessedAnswer)
            return answer.first
        checked = session_schema(session, self.tenant.schema)
        statement = self._function_call(processed_function(self._plugin), ["event_id"])
        return bool(await checked.scalar(statement, {"event_id": event.id}))

    async def authorize(self, permission: str, resource: Mapping[str, Any] | None = None) -> Decision:
        return await self._call(
            "POST", "/authorize", AuthorizeRequest(permission=permission, resource=resource), Decision
        )

    async def require(self, permission: str, resource: Mapping[str, Any] | None = None) -> None:
        decision = await self.authorize(permission, resource)
        if not decision.allowed:
            raise PermissionDeniedError(permission, decision.reason)

    @property
    def cache(self) -> _RemoteCache:
        return _RemoteCache(self._connection, self._auth)

    @property
    def objects(self) -> _RemoteObjects:
        return _RemoteObjects(self._connection, self._auth)

    async def config(self) -> Mapping[str, Any]:
        return dict((await self._call("GET", "/config", None, ConfigAnswer)).config)


@final
class _RemoteCache:
    """The plugin's cache in the tenant; the host prefixes every key (``tenant:{slug}:plugin:{name}:``)."""

    __slots__ = ("_auth", "_connection")

    def __init__(self, connection: HostConnection, auth: Mapping[str, str]) -> None:
        self._connection, self._auth = connection, auth

    async def get(self, key: str) -> bytes | None:
        answer = await _call(self._connection, "POST", "/cache/get", self._auth, CacheKey(key=key), result=CacheValue)
        return None if answer.value is None else base64.b64decode(answer.value)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        await _act(
            self._connection,
            "/cache/set",
            self._auth,
            CacheSet(key=key, value=base64.b64encode(value).decode(), ttl=ttl),
        )

    async def delete(self, *keys: str) -> int:
        answer = await _call(
            self._connection, "POST", "/cache/delete", self._auth, CacheKeys(keys=keys), result=CacheCount
        )
        return answer.count

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        body = CacheIncr(key=key, amount=amount, ttl=ttl)
        return (await _call(self._connection, "POST", "/cache/incr", self._auth, body, result=CacheNumber)).value

    async def delete_prefix(self, prefix: str) -> int:
        body = CachePrefix(prefix=prefix)
        return (
            await _call(self._connection, "POST", "/cache/delete-prefix", self._auth, body, result=CacheCount)
        ).count


@final
class _RemoteObjects:
    """The plugin's objects in the tenant; the host confines every key to the plugin's namespaces."""

    __slots__ = ("_auth", "_connection")

    def __init__(self, connection: HostConnection, auth: Mapping[str, str]) -> None:
        self._connection, self._auth = connection, auth

    async def put(self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None) -> ObjectInfo:
        headers = {**self._auth, "Content-Type": content_type or "application/octet-stream"}
        response = await _send(self._connection, "PUT", "/objects/content", headers, params={"key": key}, content=data)
        return structure(response.json(), ObjectInfo)

    async def get(self, key: str) -> bytes:
        response = await _send(self._connection, "GET", "/objects/content", self._auth, params={"key": key})
        return response.content

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        response = await _send(
            self._connection, "GET", "/objects/content", self._auth, params={"key": key}, stream=True
        )

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            finally:
                await response.aclose()

        return chunks()

    async def head(self, key: str) -> ObjectInfo:
        return await _call(self._connection, "POST", "/objects/head", self._auth, ObjectKey(key=key), result=ObjectInfo)

    async def delete(self, key: str) -> None:
        await _act(self._connection, "/objects/delete", self._auth, ObjectKey(key=key))

    async def list(self, prefix: str = "") -> Sequence[ObjectInfo]:
        body = ObjectList(prefix=prefix)
        return (await _call(self._connection, "POST", "/objects/list", self._auth, body, result=ObjectListing)).objects

    async def presigned_url(self, key: str, *, expires_in: int = 3600, method: str = "GET") -> str:
        body = PresignRequest(key=key, expires_in=expires_in, method=cast(Literal["GET", "PUT"], method))
        return (await _call(self._connection, "POST", "/objects/presign", self._auth, body, result=PresignedUrl)).url
