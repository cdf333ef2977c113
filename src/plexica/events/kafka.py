"""The Kafka event bus (aiokafka): the production backend, at least once end to end.

One consumer group per plugin (``plexica.{plugin}``) subscribes by regex to its types on every
tenant's topics. A fetched batch is split by partition; within a partition, records with the same
key run in order and different keys run concurrently. An offset is committed only once every
record before it was handled or dead-lettered; a record that could not be (the DLQ write or the
host's ``Delivery`` failed) is fetched again, as is everything after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterable, Sequence
from typing import Any, final

import attrs

from plexica.events.bus import Delivery
from plexica.events.dispatch import BusBase, Inbound, Sleep
from plexica.events.dlq import REPLAY_PLUGIN, REPLAY_SUBSCRIPTION, DeadLetter, describe_error, from_record, to_record
from plexica.events.envelope import decode, encode
from plexica.events.registry import EventTypeRegistry
from plexica.settings import EventSettings
from plexica_sdk.errors import BackendUnavailableError, EventError, MissingDependencyError, NotFoundError, SettingsError
from plexica_sdk.types import Event

try:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
    from aiokafka.abc import ConsumerRebalanceListener
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import CommitFailedError, KafkaError, for_code
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("kafka", "aiokafka") from exc

__all__ = ["KafkaEventBus", "KafkaOptions"]

log = logging.getLogger(__name__)

_TOPIC_EXISTS = 36
_DISMISSED = ("dlq_dismissed", b"1")


@attrs.frozen(kw_only=True)
class KafkaOptions:
    """Client tuning that ``EventSettings`` does not carry (yet); the defaults suit production.

    Tests use ``session_timeout_ms=2000, heartbeat_interval_ms=300, metadata_max_age_ms=1000``.
    ``metadata_max_age_ms`` bounds how long a new tenant's topic goes unnoticed by the consumers.
    """

    client_id: str = "plexica"
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    metadata_max_age_ms: int = 30_000
    max_poll_records: int = 1_000
    poll_timeout_ms: int = 200
    concurrency_per_partition: int = 16
    linger_ms: int = 5
    max_batch_size: int = 256 * 1024
    io_timeout_seconds: float = 30.0


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """Holds a rebalance until the batch in flight is handled and committed, so nothing runs twice."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:
            pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


@final
class KafkaEventBus(BusBase):
    """An :class:`~plexica.events.bus.EventBus` on a Kafka-protocol broker.

    Args:
        settings: broker address, topology, partitions, replication, idempotence, retries.
        delivery: the host's answers about tenants and plugins.
        registry: the declared event types (a new, empty one by default).
        options: client tuning (timeouts, batching, concurrency).
        sleep: waits between handler retries (tests pass a fake).

    Raises:
        SettingsError: ``settings.bootstrap_servers`` is not set.
    """

    def __init__(
        self,
        settings: EventSettings,
        delivery: Delivery,
        *,
        registry: EventTypeRegistry | None = None,
        options: KafkaOptions | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(settings, delivery, registry=registry, sleep=sleep)
        if not settings.bootstrap_servers:
            raise SettingsError(["events.bootstrap_servers: required when events.backend is 'kafka'"])
        self._bootstrap = settings.bootstrap_servers
        self._options = options if options is not None else KafkaOptions()
        self._admin: Any = None
        self._producer: Any = None
        self._consumers: dict[str, Any] = {}
        self._batch_locks: dict[str, asyncio.Lock] = {}
        self._known_topics: set[str] = set()
        self._topic_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the admin client and producer, create the DLQ topic, and join each plugin's group."""
        if self._closed:
            raise BackendUnavailableError("event bus", "stopped")
        if self._started:
            return
        o = self._options
        timeout_ms = int(o.io_timeout_seconds * 1000)
        common = {"bootstrap_servers": self._bootstrap, "request_timeout_ms": timeout_ms}
        self._admin = AIOKafkaAdminClient(client_id=o.client_id, **common)
        self._producer = AIOKafkaProducer(
            client_id=o.client_id,
            acks="all",
            enable_idempotence=self._settings.enable_idempotence,
            linger_ms=o.linger_ms,
            max_batch_size=o.max_batch_size,
            **common,
        )
        try:
            async with asyncio.timeout(o.io_timeout_seconds):
                await self._admin.start()
                await self._producer.start()
                await self._create_topics([self._topics.dead_letter], {"cleanup.policy": "compact"})
                for plugin in self._dispatcher.plugins:
                    consumer = self._consumers[plugin] = AIOKafkaConsumer(
                        bootstrap_servers=self._bootstrap,
                        client_id=f"{o.client_id}.{plugin}",
                        group_id=f"plexica.{plugin}",
                        enable_auto_commit=False,
                        auto_offset_reset="earliest",  # a new tenant's first events precede its discovery
                        session_timeout_ms=o.session_timeout_ms,
                        heartbeat_interval_ms=o.heartbeat_interval_ms,
                        metadata_max_age_ms=o.metadata_max_age_ms,
                        max_poll_records=o.max_poll_records,
                    )
                    await consumer.start()
                    types = [s.event_type for s in self._dispatcher.subscriptions(plugin)]
                    lock = self._batch_locks[plugin] = asyncio.Lock()
                    consumer.subscribe(pattern=self._topics.pattern(types), listener=_WaitForBatch(lock))
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._close_clients()
            raise BackendUnavailableError("kafka", describe_error(exc)) from exc
        self._started = True
        # A fresh context: handlers must not inherit whatever tenant context the caller had.
        self._runner = asyncio.create_task(self._run(), context=contextvars.Context())

    async def stop(self) -> None:
        """Finish and commit the batches in flight, leave the groups, flush the producer, disconnect."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._stopping.set()
        try:
            if self._runner is not None:
                await self._runner
        finally:
            self._closed = True
            await self._close_clients()

    async def _close_clients(self) -> None:
        clients = [*self._consumers.values(), self._producer]
        for client in clients:
            if client is not None:
                try:
                    async with asyncio.timeout(self._options.io_timeout_seconds):
                        await client.stop()
                except Exception as exc:  # closing must go on for the other clients
                    log.warning("closing a Kafka client failed: %s", describe_error(exc))
        if self._admin is not None:
            await self._admin.close()
        self._consumers.clear()

    def assignment(self, plugin: str) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this process consumes for ``plugin`` (diagnostics and tests)."""
        consumer = self._consumers.get(plugin)
        return frozenset() if consumer is None else frozenset((tp.topic, tp.partition) for tp in consumer.assignment())

    # -- publishing ---------------------------------------------------------------------------

    async def publish_many(
        self, events: Sequence[Event], *, keys: Sequence[str | None] | None = None, validate: bool = True
    ) -> None:
        """See ``EventBus.publish_many``: all events are sent together and acknowledged by all replicas."""
        self._check_open()
        routed = await self._router.route(events, keys, validate=validate)
        if not routed:
            return
        await self.ensure_topics({out.topic for out in routed})
        await self._send_all(
            [(out.topic, None if out.key is None else out.key.encode(), out.value, out.headers) for out in routed]
        )

    async def _send_all(self, records: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]]) -> None:
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self._options.io_timeout_seconds):
                for topic, key, value, headers in records:
                    futures.append(await self._producer.send(topic, value, key=key, headers=headers))
                results = await asyncio.gather(*futures, return_exceptions=True)
        except (KafkaError, TimeoutError) as exc:
            for future in futures:  # nobody will await them now: keep their errors out of the loop's log
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise BackendUnavailableError("kafka", describe_error(exc)) from exc
        for result in results:
            if isinstance(result, BaseException):
                raise BackendUnavailableError("kafka", describe_error(result)) from result

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create the topics that do not exist yet, with the configured partitions and replication.

        Tenant provisioning may call this for a new tenant's declared types, so consumers find the
        topics at their next metadata refresh rather than after the first publish.

        Raises:
            BackendUnavailableError: the broker refused or did not answer.
        """
        missing = {topic for topic in topics if topic not in self._known_topics}
        if missing:
            async with self._topic_lock:
                await self._create_topics(sorted(missing - self._known_topics))

    async def _create_topics(self, topics: list[str], configs: dict[str, str] | None = None) -> None:
        if not topics:
            return
        s = self._settings
        new = [NewTopic(topic, s.partitions, s.replication_factor, topic_configs=configs or {}) for topic in topics]
        try:
            async with asyncio.timeout(self._options.io_timeout_seconds):
                response = await self._admin.create_topics(new)
        except (KafkaError, TimeoutError) as exc:
            raise BackendUnavailableError("kafka", describe_error(exc)) from exc
        for topic, code, *_ in response.topic_errors:
            if code not in (0, _TOPIC_EXISTS):
                raise BackendUnavailableError("kafka", f"cannot create topic {topic!r}: {for_code(code).__name__}")
            self._known_topics.add(topic)

    # -- consuming -----------------------------------------------------------------------------

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for plugin, consumer in self._consumers.items():
                tasks.create_task(self._consume(plugin, consumer))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _consume(self, plugin: str, consumer: Any) -> None:
        o = self._options
        lock = self._batch_locks[plugin]
        failures = 0
        while not self._stopping.is_set():
            try:
                batches = await consumer.getmany(timeout_ms=o.poll_timeout_ms, max_records=o.max_poll_records)
            except KafkaError as exc:
                log.warning("fetching for %s failed: %s", plugin, describe_error(exc))
                await self._pause(1.0)
                continue
            if not batches:
                continue
            async with lock:
                clean = await self._process(plugin, consumer, batches)
            failures = 0 if clean else failures + 1
            if failures:  # the broker or the host is failing: back off before fetching it all again
                await self._pause(min(0.1 * 2**failures, 30.0))

    async def _process(self, plugin: str, consumer: Any, batches: dict[Any, list[Any]]) -> bool:
        """Handle one fetched batch and commit what is done; ``False`` if any record must be fetched again."""
        assigned = consumer.assignment()
        commits: dict[Any, int] = {}
        retry: list[Any] = []
        async with asyncio.TaskGroup() as tasks:
            for tp, records in batches.items():
                if records and tp in assigned:  # revoked partitions are their new owner's business
                    tasks.create_task(self._process_partition(plugin, tp, records, commits, retry))
        for tp, offset in retry:
            consumer.seek(tp, offset)
        assigned = consumer.assignment()
        commits = {tp: offset for tp, offset in commits.items() if tp in assigned}
        if commits:
            try:
                async with asyncio.timeout(self._options.io_timeout_seconds):
                    await consumer.commit(commits)
            except CommitFailedError:
                log.warning("commit for %s failed after a rebalance: the new owner handles those events again", plugin)
            except (KafkaError, TimeoutError) as exc:  # a later commit covers these offsets
                log.warning("commit for %s failed: %s", plugin, describe_error(exc))
        return not retry

    async def _process_partition(
        self, plugin: str, tp: Any, records: list[Any], commits: dict[Any, int], retry: list[Any]
    ) -> None:
        by_key: dict[object, list[Any]] = {}
        for record in records:  # keyless records have no order to keep: each is its own group
            by_key.setdefault(record.key if record.key is not None else record.offset, []).append(record)
        done: set[int] = set()
        groups = iter(by_key.values())

        async def work() -> None:
            for group in groups:  # the workers share this iterator
                for record in group:
                    try:
                        await self._handle(plugin, record)
                    except Exception as exc:  # infrastructure, not the handler: fetch it again
                        log.warning(
                            "event at %s[%d]@%d not handled: %s",
                            tp.topic,
                            tp.partition,
                            record.offset,
                            describe_error(exc),
                        )
                        break
                    done.add(record.offset)

        workers = min(len(by_key), self._options.concurrency_per_partition)
        if workers == 1:
            await work()
        else:
            async with asyncio.TaskGroup() as tasks:
                for _ in range(workers):
                    tasks.create_task(work())
        first = records[0].offset
        next_offset = first
        for record in records:
            if record.offset not in done:
                retry.append((tp, record.offset))
                break
            next_offset = record.offset + 1
        if next_offset > first:
            commits[tp] = next_offset

    async def _handle(self, plugin: str, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = decode(record.value, record.headers)
            key = None if record.key is None else record.key.decode(errors="replace")
            msg = Inbound(record.topic, event, key, tuple(record.headers), record.partition, record.offset)
            letters = await self._dispatcher.deliver(plugin, msg)
        except EventError as exc:  # not ours to handle, ever: skipping is the only way forward
            log.warning("skipped record %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
            return
        for letter in letters:
            key_bytes, value, headers = to_record(letter)
            await self._send_all([(self._topics.dead_letter, key_bytes, value, headers)])

    # -- dead letters ----------------------------------------------------------------------------

    async def _read_letters(self) -> dict[str, DeadLetter]:
        """Read the dead-letter topic from its first record to its end, without a consumer group.

        The end is where a fetch comes back empty *and* the reported end offsets are reached:
        Tansu under-reports end offsets after multi-record batches, so they alone would stop early.
        """
        topic = self._topics.dead_letter
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            client_id=f"{self._options.client_id}.dlq",
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # offset 0 may be compacted away
            fetch_max_wait_ms=50,
        )
        letters: dict[str, DeadLetter] = {}
        try:
            async with asyncio.timeout(self._options.io_timeout_seconds):
                await consumer.start()
                await consumer.topics()
                partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
                if not partitions:
                    return letters
                consumer.assign(partitions)
                ends = await consumer.end_offsets(partitions)
                for tp in partitions:
                    consumer.seek(tp, 0)
                while True:
                    batch = await consumer.getmany(*partitions, timeout_ms=250)
                    for records in batch.values():
                        for record in records:
                            self._apply(letters, record)
                    if not batch and all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                        return letters
        except (KafkaError, TimeoutError) as exc:
            raise BackendUnavailableError("kafka", describe_error(exc)) from exc
        finally:
            await consumer.stop()

    @staticmethod
    def _apply(letters: dict[str, DeadLetter], record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None:
            return
        try:
            letter = from_record(record.value, record.headers)
        except EventError as exc:
            log.warning("skipped dead-letter record @%d: %s", record.offset, exc)
            return
        if letter is None or _DISMISSED in record.headers:
            letters.pop(record.key.decode(errors="replace"), None)
        else:
            letters[letter.id] = letter

    async def dlq_list(self, limit: int = 100) -> list[DeadLetter]:
        """See ``EventBus.dlq_list``. Reads the whole dead-letter topic: an admin operation."""
        letters = await self._read_letters()
        return sorted(letters.values(), key=lambda letter: letter.failed_at)[:limit]

    async def dlq_get(self, id: str) -> DeadLetter:
        """See ``EventBus.dlq_get``."""
        letter = (await self._read_letters()).get(id)
        if letter is None:
            raise NotFoundError(f"no dead letter {id[:64]!r}", resource="dead letter")
        return letter

    async def dlq_replay(self, id: str) -> None:
        """See ``EventBus.dlq_replay``: the original topic and key, the same event id, then a dismissal."""
        letter = await self.dlq_get(id)
        self._check_open()
        value, headers = encode(letter.event)
        headers += [(REPLAY_PLUGIN, letter.plugin.encode()), (REPLAY_SUBSCRIPTION, letter.subscription.encode())]
        await self.ensure_topics([letter.topic])
        await self._send_all([(letter.topic, None if letter.key is None else letter.key.encode(), value, headers)])
        await self._send_all([(self._topics.dead_letter, id.encode(), None, [_DISMISSED])])

    async def dlq_dismiss(self, id: str) -> None:
        """See ``EventBus.dlq_dismiss``: writes a tombstone for the dead letter's key."""
        await self.dlq_get(id)
        self._check_open()
        await self._send_all([(self._topics.dead_letter, id.encode(), None, [_DISMISSED])])
