"""The Kafka event bus (aiokafka): the production backend, at least once end to end.

One consumer group per plugin (``plexica.{plugin}``) subscribes by regex to its types on every
tenant's topics. A fetched batch is split by partition; within a partition, records with the same
key run in order and different keys run concurrently. An offset is committed only once every
record before it was handled or dead-lettered; a record that could not be (the DLQ write or the
host's ``Delivery`` failed) is fetched again, as is everything after it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Sequence
from typing import Any, final

from plexica.events.bus import Delivery
from plexica.events.dispatch import BusBase, Outbound, Sleep
from plexica.events.dlq import REPLAY_PLUGIN, REPLAY_SUBSCRIPTION, DeadLetter, describe_error, to_record
from plexica.events.envelope import encode
from plexica.events.registry import EventTypeRegistry
from plexica.observability.tracing import fresh_context, record_context
from plexica.settings import EventSettings, KafkaSettings
from plexica_sdk.errors import BackendUnavailableError, EventError, MissingDependencyError, NotFoundError, SettingsError
from plexica_sdk.types import Event

try:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, for_code
    from aiokafka.partitioner import DefaultPartitioner
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("kafka", "aiokafka") from exc

from plexica.events._kafka_batcher import Coalescer
from plexica.events._kafka_consumer import DISMISSED, PluginConsumer, read_dead_letters

__all__ = ["KafkaEventBus", "KafkaOptions"]

log = logging.getLogger(__name__)

_TOPIC_EXISTS = 36
_PARTITIONER = DefaultPartitioner()
#: From this many records per call, build record batches directly (see ``_send_batched``).
_BATCH_THRESHOLD = 64


#: The client tuning, now carried by ``EventSettings.kafka``; kept under its first name.
KafkaOptions = KafkaSettings


@final
class KafkaEventBus(BusBase):
    """An :class:`~plexica.events.bus.EventBus` on a Kafka-protocol broker.

    Args:
        settings: broker address, topology, partitions, replication, idempotence, retries.
        delivery: the host's answers about tenants and plugins.
        registry: the declared event types (a new, empty one by default).
        options: client tuning (timeouts, batching, concurrency); default ``settings.kafka``.
        sleep: waits between handler retries (tests pass a fake).
        consume: join each subscribed plugin's consumer group on :meth:`start`. Admin tools (the
            ``plexica events dlq`` commands) pass ``False``: they publish and read the dead-letter
            topic without taking partitions from the serving hosts.

    Raises:
        SettingsError: ``settings.bootstrap_servers`` is not set.
    """

    def __init__(
        self,
        settings: EventSettings,
        delivery: Delivery,
        *,
        registry: EventTypeRegistry | None = None,
        options: KafkaSettings | None = None,
        sleep: Sleep = asyncio.sleep,
        consume: bool = True,
    ) -> None:
        super().__init__(settings, delivery, registry=registry, sleep=sleep)
        if not settings.bootstrap_servers:
            raise SettingsError(["events.bootstrap_servers: required when events.backend is 'kafka'"])
        self._bootstrap = settings.bootstrap_servers
        self._options = options if options is not None else settings.kafka
        self._consume = consume
        self._admin: Any = None
        self._producer: Any = None
        self._consumers: dict[str, PluginConsumer] = {}
        self._known_topics: set[str] = set()
        self._topic_lock = asyncio.Lock()
        self._submit_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._coalescer: Coalescer | None = None

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
                for plugin in self._dispatcher.plugins if self._consume else ():
                    consumer = AIOKafkaConsumer(
                        bootstrap_servers=self._bootstrap,
                        client_id=f"{o.client_id}.{plugin}",
                        group_id=f"plexica.{plugin}",
                        enable_auto_commit=False,
                        auto_offset_reset="earliest",  # a new tenant's first events precede its discovery
                        session_timeout_ms=o.session_timeout_ms,
                        heartbeat_interval_ms=o.heartbeat_interval_ms,
                        metadata_max_age_ms=o.metadata_max_age_ms,
                        max_poll_records=o.max_poll_records,
                        max_poll_interval_ms=o.max_poll_interval_ms,
                        fetch_max_wait_ms=o.fetch_max_wait_ms,
                    )
                    await consumer.start()
                    types = [s.event_type for s in self._dispatcher.subscriptions(plugin)]
                    self._consumers[plugin] = PluginConsumer(
                        plugin,
                        consumer,
                        self._topics.pattern(types),
                        self._dispatcher,
                        self._dead_letter,
                        self._stopping,
                        o,
                    )
        except BaseException as exc:  # cancelled too: never leave a client open
            await self._close_clients()
            if isinstance(exc, KafkaError | OSError | TimeoutError):
                raise BackendUnavailableError("kafka", describe_error(exc)) from exc
            raise
        self._coalescer = Coalescer(self._producer, self._submit_lock, o.io_timeout_seconds)
        self._started = True
        # A fresh context: handlers must not inherit whatever tenant context the caller had.
        self._runner = asyncio.create_task(self._run(), name="plexica-events", context=fresh_context())

    async def stop(self) -> None:
        """Finish and commit the batches in flight, leave the groups, flush the producer, disconnect."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._stopping.set()
        try:
            if self._runner is not None:
                await self._finish_runner(self._runner)
        finally:
            self._closed = True
            if self._coalescer is not None:
                await self._coalescer.close()
            await self._close_clients()

    async def _finish_runner(self, runner: asyncio.Task[None]) -> None:
        """Let the batches in flight finish; a consumer stuck on a dead broker is cancelled instead.

        ``getmany`` does not always return while the broker is away (its coordinator waits), so
        the wait is bounded by one poll plus one broker round trip; what was not committed is
        fetched again by the group, as after a crash.
        """
        o = self._options
        grace = o.poll_timeout_ms / 1000 + o.io_timeout_seconds
        done, _ = await asyncio.wait({runner}, timeout=grace)
        if not done:
            log.warning("Kafka consumers did not stop within %.0f s: cancelling them", grace)
            runner.cancel()
            await asyncio.wait({runner})  # waits for the cancellation without swallowing our own
            return
        runner.result()

    async def _close_clients(self) -> None:
        """Stop consumers first (leaving their groups frees the partitions), then flush the producer."""
        closers = [member.consumer.stop for member in self._consumers.values()]
        if self._producer is not None:
            closers.append(self._producer.stop)
        if self._admin is not None:
            closers.append(self._admin.close)
        for close in closers:
            try:
                async with asyncio.timeout(self._options.io_timeout_seconds):
                    await close()
            except Exception as exc:  # closing must go on for the other clients
                log.warning("closing a Kafka client failed: %s", describe_error(exc))
        self._consumers.clear()

    async def ping(self) -> None:
        """Raise :class:`BackendUnavailableError` unless the broker answers a metadata request.

        The request names only the dead-letter topic: asking for every topic would cost a fleet of
        per-tenant topics on each ``/health`` call.
        """
        self._check_open()
        try:
            await self._admin.describe_topics([self._topics.dead_letter])
        except (KafkaError, OSError) as exc:
            raise BackendUnavailableError("kafka", f"metadata request failed: {describe_error(exc)}") from exc

    async def consumer_lag(self) -> dict[str, int]:
        """Per plugin, records on this process's partitions not yet committed (the metrics' consumer lag)."""
        return {plugin: await member.lag() for plugin, member in self._consumers.items()}

    def assignment(self, plugin: str) -> frozenset[tuple[str, int]]:
        """The (topic, partition) pairs this process consumes for ``plugin`` (diagnostics and tests)."""
        member = self._consumers.get(plugin)
        if member is None:
            return frozenset()
        return frozenset((tp.topic, tp.partition) for tp in member.consumer.assignment())

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, event: Event, *, key: str | None = None) -> None:
        """See ``EventBus.publish``: concurrent publishes are coalesced into shared record batches."""
        self._check_open()
        [(topic, key, value, headers)] = await self._router.route((event,), None if key is None else (key,))
        if topic not in self._known_topics:
            await self.ensure_topics((topic,))
        assert self._coalescer is not None  # set by start(), which _check_open() vouches for
        try:
            # The producer bounds the wait by its request_timeout_ms (io_timeout_seconds); an
            # asyncio.timeout here would cost a timer per event on the hottest path.
            await self._coalescer.submit((topic, key, value, headers))
        except BackendUnavailableError:
            self._forget_topics()
            raise

    def _forget_topics(self) -> None:
        """After a failed send, check the topics again before the next: the broker may have lost them."""
        self._known_topics.clear()
        if self._coalescer is not None:
            self._coalescer.forget_partitions()

    async def publish_many(
        self, events: Sequence[Event], *, keys: Sequence[str | None] | None = None, validate: bool = True
    ) -> None:
        """See ``EventBus.publish_many``: all events are sent together and acknowledged by all replicas."""
        self._check_open()
        routed = await self._router.route(events, keys, validate=validate)
        if not routed:
            return
        await self.ensure_topics({record[0] for record in routed})
        try:
            if len(routed) >= _BATCH_THRESHOLD:
                await self._send_batched(routed)
            else:
                await self._send_all(routed)
        except BackendUnavailableError:
            self._forget_topics()
            raise

    async def _send_all(self, records: Sequence[Outbound]) -> None:
        """Send through the producer's shared batches: concurrent small publishes batch together."""
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout(self._options.io_timeout_seconds):
                for topic, key, value, headers in records:
                    raw_key = None if key is None else key.encode()
                    with record_context(headers):  # the send span joins the event's trace
                        futures.append(await self._producer.send(topic, value, key=raw_key, headers=headers))
                await self._settle(futures)
        except (KafkaError, TimeoutError) as exc:
            self._abandon(futures)
            raise BackendUnavailableError("kafka", describe_error(exc)) from exc

    async def _send_batched(self, records: Sequence[Outbound]) -> None:
        """Build whole record batches and submit each once, skipping ``send``'s per-record bookkeeping.

        Keyed records land where ``send`` would put them (the default partitioner); a call's
        keyless records share one random partition per topic, as Kafka's sticky partitioner does.
        """
        producer = self._producer
        partitions: dict[str, tuple[list[int], int]] = {}  # topic → its partitions, and the keyless one
        builders: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        try:
            # One submitter at a time: aiokafka's add_batch mis-counts its timeout when several
            # callers wait for the same partition's queue to drain, and fails them spuriously.
            async with asyncio.timeout(self._options.io_timeout_seconds), self._submit_lock:
                for topic, text_key, value, headers in records:
                    key = None if text_key is None else text_key.encode()
                    if topic not in partitions:
                        every = sorted(await producer.partitions_for(topic))
                        partitions[topic] = every, random.choice(every)  # noqa: S311 - load spreading only
                    known, sticky = partitions[topic]
                    partition = sticky if key is None else _PARTITIONER(key, known, known)
                    builder = builders.get((topic, partition))
                    if builder is None:
                        builder = builders[topic, partition] = producer.create_batch()
                    if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        futures.append(await producer.send_batch(builder, topic, partition=partition))
                        builder = builders[topic, partition] = producer.create_batch()
                        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                            raise EventError(f"a {len(value or b'')}-byte event does not fit in a batch")
                for (topic, partition), builder in builders.items():
                    builder.close()
                    futures.append(await producer.send_batch(builder, topic, partition=partition))
            async with asyncio.timeout(self._options.io_timeout_seconds):
                await self._settle(futures)
        except (KafkaError, TimeoutError) as exc:
            self._abandon(futures)
            raise BackendUnavailableError("kafka", describe_error(exc)) from exc

    @staticmethod
    async def _settle(futures: list[asyncio.Future[Any]]) -> None:
        if len(futures) == 1:  # a single publish: skip gather's bookkeeping
            await futures[0]
            return
        results = await asyncio.gather(*futures, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise BackendUnavailableError("kafka", describe_error(result)) from result

    @staticmethod
    def _abandon(futures: list[asyncio.Future[Any]]) -> None:
        for future in futures:  # nobody awaits them now: keep their errors out of the loop's log
            future.add_done_callback(lambda f: f.cancelled() or f.exception())

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

    # -- consuming and dead letters ------------------------------------------------------------------

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for member in self._consumers.values():
                tasks.create_task(member.run(), name="plexica-events-consumer")

    async def _dead_letter(self, letter: DeadLetter) -> None:
        _, value, headers = to_record(letter)
        if self._topics.dead_letter not in self._known_topics:  # known since start, unless a send failed
            async with self._topic_lock:
                await self._create_topics([self._topics.dead_letter], {"cleanup.policy": "compact"})
        await self._send_all([(self._topics.dead_letter, letter.id, value, headers)])

    async def _read_letters(self) -> dict[str, DeadLetter]:
        topic, partitions = self._topics.dead_letter, None
        if self._producer is not None and self._started and not self._closed:
            try:  # the producer's metadata knows the topic; a fresh group-less consumer's may not
                async with asyncio.timeout(self._options.io_timeout_seconds):
                    partitions = await self._producer.partitions_for(topic)
            except (KafkaError, TimeoutError) as exc:
                raise BackendUnavailableError("kafka", describe_error(exc)) from exc
        return await read_dead_letters(self._bootstrap, topic, self._options, partitions)

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
        await self._send_all([(letter.topic, letter.key, value, headers)])
        await self._send_all([(self._topics.dead_letter, id, None, [DISMISSED])])

    async def dlq_dismiss(self, id: str) -> None:
        """See ``EventBus.dlq_dismiss``: writes a tombstone for the dead letter's key."""
        await self.dlq_get(id)
        self._check_open()
        await self._send_all([(self._topics.dead_letter, id, None, [DISMISSED])])
