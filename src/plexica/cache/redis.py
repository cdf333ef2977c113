"""The Redis cache, shared by every host process, on ``redis.asyncio``: one server or a Cluster.

Against a Redis Cluster (``redis+cluster://host:port`` or ``cluster=True``) keys must keep one
tenant on one slot, which is why tenant keys carry the slug as a hash tag (``tenant:{acme}:``);
prefix deletes then scan every primary. Pub/sub (the layered cache's invalidations) works on
both: a Cluster forwards ``PUBLISH`` to every node.

``redis`` is imported when a :class:`RedisCache` is built, not when this module is, so the
embedded mode never pays for it and a missing install is reported with the extra to add.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any, Self, cast, final

from plexica.cache.base import resolve_ttl
from plexica_sdk.errors import BackendUnavailableError, MissingDependencyError, ValidationError

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool, Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.commands.core import AsyncScript

__all__ = ["RedisCache"]

# Redis answers these when the stored value, not the server, is at fault.
_VALUE_ERRORS = ("not an integer", "overflow", "WRONGTYPE")
_GLOB_SPECIALS = frozenset("\\*?[]")


def _import_redis() -> ModuleType:
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError as exc:
        raise MissingDependencyError("redis", "redis") from exc


def _escape_glob(text: str) -> str:
    """Escape ``text`` for a ``SCAN MATCH`` pattern, so a prefix is matched literally."""
    return "".join(f"\\{char}" if char in _GLOB_SPECIALS else char for char in text)


def _milliseconds(ttl: float) -> int:
    # Rounded up: a ttl below a millisecond must still be a ttl, not "PX 0" (an error).
    return max(1, math.ceil(ttl * 1000))


@final
class RedisCache:
    """A :class:`~plexica_sdk.protocols.Cache` on Redis; enter it to open its connection pool.

    Every Redis failure surfaces as :class:`~plexica_sdk.errors.BackendUnavailableError` with
    backend ``"redis"``, except a value of the wrong kind (``incr`` on text), which is a
    :class:`~plexica_sdk.errors.ValidationError` as it is on :class:`~plexica.cache.MemoryCache`.

    Args:
        url: a ``redis://`` or ``rediss://`` URL, or ``redis+cluster://`` (``rediss+cluster://``)
            for a Cluster; it may hold a password, so it is never printed.
        cluster: talk to a Redis Cluster (any node's address is enough to find the others).
        default_ttl: seconds a key lives when ``set``/``incr`` pass no ttl; ``None``: forever.
        scan_count: the ``COUNT`` hint of each ``SCAN`` step in :meth:`delete_prefix`.
        unlink_batch: how many keys one ``UNLINK`` removes, bounding each command's size.
        socket_timeout: seconds to wait for connecting and for each reply before giving up.

    Raises:
        MissingDependencyError: ``redis`` is not installed (``pip install 'plexica[redis]'``).
    """

    def __init__(
        self,
        url: str,
        *,
        default_ttl: float | None = None,
        scan_count: int = 500,
        unlink_batch: int = 500,
        socket_timeout: float = 5.0,
        cluster: bool = False,
    ) -> None:
        self._redis = _import_redis()
        resolve_ttl(None, default_ttl)
        if scan_count < 1 or unlink_batch < 1:
            raise ValidationError("scan_count and unlink_batch must be at least 1", field="scan_count")
        for scheme in ("redis+cluster://", "rediss+cluster://"):
            if url.startswith(scheme):
                url, cluster = scheme.replace("+cluster", "") + url[len(scheme) :], True
        self._url = url
        self._cluster = cluster
        self._default_ttl = default_ttl
        self._scan_count = scan_count
        self._unlink_batch = unlink_batch
        self._socket_timeout = socket_timeout
        self._pool: ConnectionPool | None = None
        self._client: Redis | RedisCluster | None = None
        self._scripts: dict[str, AsyncScript] = {}

    def __repr__(self) -> str:
        kind = "cluster " if self._cluster else ""
        return f"<RedisCache {kind}{'open' if self._client is not None else 'closed'}>"

    @property
    def is_cluster(self) -> bool:
        """Whether this cache talks to a Redis Cluster."""
        return self._cluster

    async def __aenter__(self) -> Self:
        """Open the connection pool and check that Redis answers.

        Raises:
            BackendUnavailableError: Redis did not answer ``PING``.
        """
        if self._client is not None:
            raise RuntimeError("RedisCache is already open")
        if self._cluster:
            return await self._open_cluster()
        pool: ConnectionPool = self._redis.ConnectionPool.from_url(
            self._url,
            socket_connect_timeout=self._socket_timeout,
            socket_timeout=self._socket_timeout,
            health_check_interval=30,
        )
        client: Redis = self._redis.Redis(connection_pool=pool)
        try:
            with self._translated("PING"):
                await client.ping()
        except BaseException:
            await client.aclose()
            await pool.aclose()
            raise
        self._pool, self._client = pool, client
        return self

    async def _open_cluster(self) -> Self:
        cluster_module = importlib.import_module("redis.asyncio.cluster")
        client: RedisCluster = cluster_module.RedisCluster.from_url(
            self._url, socket_connect_timeout=self._socket_timeout, socket_timeout=self._socket_timeout
        )
        try:
            with self._translated("CLUSTER INIT"):
                await client.initialize()
                await client.ping(target_nodes=cluster_module.RedisCluster.PRIMARIES)
        except BaseException:
            await client.aclose()
            raise
        self._client = client
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        client, pool = self._client, self._pool
        self._client = self._pool = None
        self._scripts.clear()  # bound to the closed client
        if client is not None:
            await client.aclose()
        if pool is not None:
            await pool.aclose()

    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key``, or ``None`` when it is missing or expired."""
        # The hot path, so no context manager: the same translation, inline.
        try:
            return cast("bytes | None", await self._open().get(key))
        except (self._redis.RedisError, OSError) as exc:
            raise self._error("GET", exc) from exc

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` in one round trip (``MGET``); on a Cluster they must share a slot."""
        if not keys:
            return []
        try:
            return cast("list[bytes | None]", await self._open().mget(list(keys)))
        except (self._redis.RedisError, OSError) as exc:
            raise self._error("MGET", exc) from exc

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (default: the cache's ``default_ttl``).

        Raises:
            ValidationError: ``ttl`` is zero, negative or not finite.
        """
        effective = resolve_ttl(ttl, self._default_ttl)
        with self._translated("SET"):
            await self._open().set(key, value, px=None if effective is None else _milliseconds(effective))

    async def ping(self) -> None:
        """Raise :class:`BackendUnavailableError` unless Redis answers ``PING`` (``/health``'s probe)."""
        with self._translated("PING"):
            await self._open().ping()

    async def delete(self, *keys: str) -> int:
        """Delete ``keys`` and return how many existed; ``UNLINK`` frees big values off-thread."""
        if not keys:
            return 0
        with self._translated("UNLINK"):
            return await self._open().unlink(*keys)

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` to the counter at ``key`` and return the new value.

        A missing key starts at 0 and gets ``ttl`` (or the default ttl); an existing one keeps
        its expiry. ``SET NX PX`` then ``INCRBY`` in one ``MULTI`` makes create-with-ttl atomic,
        where ``INCRBY`` then ``PEXPIRE`` could leave an immortal counter if the client died.

        Raises:
            ValidationError: the key holds something other than a 64-bit integer, the result
                would overflow, or ``ttl`` is invalid.
        """
        effective = resolve_ttl(ttl, self._default_ttl)
        client = self._open()
        with self._translated("INCRBY"):
            if effective is None:
                return await client.incrby(key, amount)
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(key, b"0", nx=True, px=_milliseconds(effective))
                pipe.incrby(key, amount)
                _, value = await pipe.execute()
            return cast(int, value)

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix`` and return how many went.

        Walks the keyspace with ``SCAN`` (never ``KEYS``, which blocks the server) and removes
        keys in ``UNLINK`` batches; on a Cluster it walks every primary (redis-py splits each
        ``UNLINK`` by slot). Keys written while the walk runs may survive it.
        """
        client = self._open()
        deleted = 0
        batch: list[bytes] = []
        match = _escape_glob(prefix) + "*"
        keys: AsyncIterator[bytes]
        if self._cluster:
            primaries = importlib.import_module("redis.asyncio.cluster").RedisCluster.PRIMARIES
            keys = client.scan_iter(match=match, count=self._scan_count, target_nodes=primaries)
        else:
            keys = client.scan_iter(match=match, count=self._scan_count)
        with self._translated("SCAN/UNLINK"):
            async for key in keys:
                batch.append(key)
                if len(batch) >= self._unlink_batch:
                    deleted += await client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += await client.unlink(*batch)
        return deleted

    async def publish(self, channel: str, message: bytes) -> None:
        """``PUBLISH`` ``message`` to ``channel`` (on a Cluster, every node relays it)."""
        with self._translated("PUBLISH"):
            await self._open().publish(channel, message)

    async def listen(self, channel: str, on_subscribed: Callable[[], None]) -> AsyncIterator[bytes]:
        """Subscribe to ``channel`` on a connection of its own and yield each message's data.

        ``on_subscribed`` is called when Redis confirms the subscription. Raises
        :class:`~plexica_sdk.errors.BackendUnavailableError` when the connection is lost.
        """
        pubsub = self._open().pubsub()
        try:
            with self._translated("SUBSCRIBE"):
                await pubsub.subscribe(channel)
            while True:
                with self._translated("SUBSCRIBE"):
                    message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    on_subscribed()
                elif message["type"] == "message":
                    yield bytes(message["data"])
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def run_script(self, source: str, keys: Sequence[str], args: Sequence[int | str]) -> Any:
        """Run a Lua script atomically, in one round trip: ``EVALSHA``, then ``EVAL`` once if unloaded.

        On a Cluster every key must hash to one slot (share a ``{hash tag}``).

        Raises:
            BackendUnavailableError: Redis did not answer or refused the script.
        """
        client = self._open()
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = client.register_script(source)
        with self._translated("EVALSHA"):
            return await script(keys=list(keys), args=list(args))

    def _open(self) -> Redis | RedisCluster:
        if self._client is None:
            raise RuntimeError("RedisCache is not open: enter it with 'async with' first")
        return self._client

    @contextlib.contextmanager
    def _translated(self, command: str) -> Iterator[None]:
        try:
            yield
        except (self._redis.RedisError, OSError) as exc:
            raise self._error(command, exc) from exc

    def _error(self, command: str, exc: Exception) -> ValidationError | BackendUnavailableError:
        if isinstance(exc, self._redis.ResponseError) and any(marker in str(exc) for marker in _VALUE_ERRORS):
            return ValidationError(f"redis refused {command}: {exc}", field="key")
        return BackendUnavailableError("redis", f"{command} failed: {exc}")
