"""``FakeHost``: an in-memory :class:`plexica_sdk.Host` for unit tests of handlers.

Like httpx's ``MockTransport``, it stands in for the real thing at the boundary the plugin sees:
handlers get a host whose publishes, permission checks, cache, objects and configuration are
plain data the test sets up and inspects. ``session()`` is a real SQLAlchemy session on an
in-memory SQLite database holding the plugin's tables (``metadata``), so queries run for real.
Use the ``plexica_host`` fixture instead when the test is about the host's behaviour
(migrations, tenancy, delivery, HTTP errors).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, final

from plexica_sdk.errors import EventError, NotFoundError, PermissionDeniedError, PluginContractError, ValidationError
from plexica_sdk.http import HOST_SCOPE_KEY
from plexica_sdk.types import Decision, Event, ObjectInfo, PluginManifest, Principal, TenantContext

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["FakeCache", "FakeHost", "FakeObjects"]


def _check_contract(manifest: PluginManifest, event_type: str, data: Any) -> None:
    """What the host's event type registry checks on a publish, with its messages (``plexica.events``)."""
    plugin = manifest.name
    definition = next((t for t in manifest.event_types if t.type == event_type), None)
    if definition is None:
        owner = event_type.split(".", 1)[0]
        if "." in event_type and owner != plugin:
            message = f"plugin {plugin!r} may not publish {event_type!r}, which belongs to {owner!r}"
        else:
            message = f"unknown event type {event_type[:150]!r}: declare it in the plugin manifest"
        raise PluginContractError(plugin, message, event_type=event_type)
    if definition.schema is None:
        return
    import jsonschema
    import jsonschema.exceptions
    import jsonschema.validators

    schema = dict(definition.schema)
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "data" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        rule = f"{error.validator}={error.validator_value!r}"[:200]
        raise PluginContractError(
            plugin, f"payload of {event_type!r} fails its schema at {where}: {rule}", event_type=event_type
        )


@final
class FakeCache:
    """A dict with TTLs, implementing :class:`plexica_sdk.Cache`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.entries: dict[str, tuple[bytes, float | None]] = {}
        self._clock = clock

    def _live(self, key: str) -> bytes | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        value, deadline = entry
        if deadline is not None and deadline <= self._clock():
            del self.entries[key]
            return None
        return value

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self.entries[key] = (value, None if ttl is None else self._clock() + ttl)

    async def delete(self, *keys: str) -> int:
        return sum(self.entries.pop(key, None) is not None for key in keys)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        current = self._live(key)
        value = int(current or b"0") + amount
        deadline = self.entries[key][1] if current is not None else (None if ttl is None else self._clock() + ttl)
        self.entries[key] = (str(value).encode(), deadline)
        return value

    async def delete_prefix(self, prefix: str) -> int:
        doomed = [key for key in self.entries if key.startswith(prefix)]
        for key in doomed:
            del self.entries[key]
        return len(doomed)


@final
class FakeObjects:
    """In-memory objects implementing :class:`plexica_sdk.PluginObjects` (keys checked like the host's)."""

    def __init__(self, namespaces: Iterable[str] = ()) -> None:
        self.namespaces = tuple(namespaces)
        self.data: dict[str, tuple[bytes, str | None]] = {}

    def _check(self, key: str) -> str:
        parts = key.split("/")
        if not key or key.startswith("/") or "\\" in key or any(p in ("", ".", "..") for p in parts):
            raise ValidationError(f"unsafe object key {key!r}", field="key")
        if self.namespaces and parts[0] not in self.namespaces:
            raise ValidationError(f"object key {key!r} is outside the plugin's namespaces", field="key")
        return key

    async def put(self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None) -> ObjectInfo:
        self._check(key)
        if not isinstance(data, bytes):
            data = b"".join([chunk async for chunk in data])
        self.data[key] = (data, content_type)
        return ObjectInfo(key=key, size=len(data), content_type=content_type)

    async def get(self, key: str) -> bytes:
        try:
            return self.data[self._check(key)][0]
        except KeyError:
            raise NotFoundError(f"no object {key!r}", resource="object") from None

    async def stream(self, key: str) -> AsyncIterator[bytes]:
        data = await self.get(key)

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        return chunks()

    async def head(self, key: str) -> ObjectInfo:
        data = await self.get(key)
        return ObjectInfo(key=key, size=len(data), content_type=self.data[key][1])

    async def delete(self, key: str) -> None:
        self.data.pop(self._check(key), None)

    async def list(self, prefix: str = "") -> Sequence[ObjectInfo]:
        return [await self.head(key) for key in sorted(self.data) if key.startswith(prefix)]

    async def presigned_url(self, key: str, *, expires_in: int = 3600, method: str = "GET") -> str:
        self._check(key)
        return f"https://objects.invalid/{key}?method={method}&expires_in={expires_in}"


@final
class FakeHost:
    """An in-memory host handle for one plugin in one tenant.

    Args:
        manifest: the plugin's manifest; when given, ``publish`` checks types and payload schemas
            as the host does, and roles grant what its ``default_roles`` say.
        tenant: the tenant context (default: tenant ``test``, with ``user`` as its user).
        user: the current user's id (``None``: no user, as in an event handler).
        roles: the user's tenant roles, resolved through the manifest's default roles.
        permissions: permissions granted directly, besides the roles'.
        config: the plugin's configuration (schema defaults are filled in from the manifest).
        metadata: SQLAlchemy ``MetaData`` whose tables ``session()`` creates in memory.

    Attributes:
        published: every event published, in order.
        processed: ids of events ``mark_processed`` recorded.
        checks: every permission asked, in order.
    """

    def __init__(
        self,
        manifest: PluginManifest | None = None,
        *,
        tenant: TenantContext | None = None,
        user: str | None = "alice",
        roles: Iterable[str] = ("member",),
        permissions: Iterable[str] = (),
        config: Mapping[str, Any] | None = None,
        metadata: Any = None,
    ) -> None:
        self.manifest = manifest
        self._plugin = manifest.name if manifest else "plugin"
        principal = Principal(id=user, roles=tuple(roles)) if user is not None else None
        self._tenant = tenant or TenantContext(
            tenant_id="tenant-test", slug="test", schema="tenant_test", user=principal
        )
        granted = set(permissions)
        for role in manifest.default_roles if manifest else ():
            if role.name in set(roles):
                granted.update(role.permissions)
        self.granted = granted
        self._config = dict(config or {})
        self.metadata = metadata
        self.published: list[Event] = []
        self.processed: set[str] = set()
        self.checks: list[str] = []
        self._cache = FakeCache()
        self._objects = FakeObjects(ns.name for ns in (manifest.storage if manifest else ()))
        self._engine: Any = None

    @property
    def plugin(self) -> str:
        return self._plugin

    @property
    def tenant(self) -> TenantContext:
        return self._tenant

    @property
    def cache(self) -> FakeCache:
        return self._cache

    @property
    def objects(self) -> FakeObjects:
        return self._objects

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Any]:
        """An ``AsyncSession`` on in-memory SQLite with ``metadata``'s tables; committed on success."""
        from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
        from sqlalchemy.pool import StaticPool

        if self.metadata is None:
            raise ValidationError("FakeHost(metadata=...) is needed for session(): pass the plugin's MetaData")
        if self._engine is None:
            self._engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
            async with self._engine.begin() as conn:
                await conn.run_sync(self.metadata.create_all)
        async with AsyncSession(self._engine) as session, session.begin():
            yield session

    async def aclose(self) -> None:
        """Dispose of the in-memory database, if ``session()`` made one."""
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def publish(self, event_type: str, data: Any, *, subject: str | None = None, session: Any = None) -> Event:
        """Record an event, refusing what the embedded host refuses, with the same errors.

        With a manifest, an undeclared type, another plugin's type or a payload failing its schema
        raises :class:`~plexica_sdk.errors.PluginContractError` (the plugin's own bug: a 500 at the
        HTTP edge); data that is not JSON raises :class:`~plexica_sdk.errors.EventError`. One
        difference: a type under another plugin's name is reported as that plugin's, where the
        host, not loading that plugin, would call it unknown (the error class is the same).
        """
        ctx = self._tenant
        event = Event(
            type=event_type,
            source=f"/plugins/{self.plugin}",
            data=data,
            subject=subject,
            tenantid=ctx.tenant_id,
            workspaceid=ctx.workspace_id,
            userid=ctx.user.id if ctx.user else None,
            traceid=ctx.trace_id,
        )
        if self.manifest is not None:
            _check_contract(self.manifest, event_type, data)
        try:
            json.dumps(data, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            raise EventError(f"event {event.id} cannot be encoded: {exc}", event_type=event_type) from exc
        self.published.append(event)
        return event

    async def mark_processed(self, event: Event, *, session: Any) -> bool:
        if event.id in self.processed:
            return False
        self.processed.add(event.id)
        return True

    async def authorize(self, permission: str, resource: Mapping[str, Any] | None = None) -> Decision:
        self.checks.append(permission)
        allowed = permission in self.granted
        return Decision(allowed=allowed, reason="granted by FakeHost" if allowed else "not granted by FakeHost")

    async def require(self, permission: str, resource: Mapping[str, Any] | None = None) -> None:
        decision = await self.authorize(permission, resource)
        if not decision.allowed:
            raise PermissionDeniedError(permission, decision.reason)

    async def config(self) -> Mapping[str, Any]:
        """The configuration given, over the defaults of the manifest's ``config_schema``."""
        schema = self.manifest.config_schema if self.manifest else None
        defaults = {
            key: spec["default"]
            for key, spec in ((schema or {}).get("properties") or {}).items()
            if isinstance(spec, Mapping) and "default" in spec
        }
        return {**defaults, **self._config}

    def app(self, routes: Sequence[Any]) -> ASGIApp:
        """An ASGI app serving ``routes`` with this host in every request (for ``httpx2.ASGITransport``).

        Exceptions from handlers are not turned into problems: they reach the test as raised.
        """
        from starlette.applications import Starlette

        from plexica_sdk import context

        inner = Starlette(routes=list(routes))

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket"):
                scope[HOST_SCOPE_KEY] = self
                with context.use(self._tenant):
                    await inner(scope, receive, send)
            else:
                await inner(scope, receive, send)

        return app
