"""The Kafka bus's consuming side: one plugin's consumer-group loop, and the dead-letter reader.

Imported only by :mod:`plexica.events.kafka`, after its guarded aiokafka import.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, Final

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError

from plexica.events.dispatch import Dispatcher, Inbound
from plexica.events.dlq import DeadLetter, describe_error, from_record
from plexica.events.envelope import decode
from plexica_sdk.errors import BackendUnavailableError, EventError

if TYPE_CHECKING:
    from plexica.events.kafka import KafkaOptions

__all__ = ["DISMISSED", "PluginConsumer", "read_dead_letters"]

log = logging.getLogger("plexica.events.kafka")

#: Records a worker handles between yields to the event loop (handlers that never suspend starve it).
_YIELD_EVERY: Final = 64
#: The header of a dismissal tombstone on the dead-letter topic.
DISMISSED: Final = ("dlq_dismissed", b"1")


class _WaitForBatch(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """Holds a rebalance until the batch in flight is handled and committed, so nothing runs twice."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:
            pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        pass


class PluginConsumer:
    """One plugin's consumer group member: fetch, dispatch by partition and key, commit the done prefix.

    Args:
        plugin: the plugin whose subscriptions this consumer serves.
        consumer: a started, not yet subscribed aiokafka consumer of group ``plexica.{plugin}``.
        pattern: the topic regex of the plugin's subscriptions.
        dispatcher: runs the handlers.
        dead_letter: writes a dead letter; must raise if it could not.
        stopping: set when the bus stops; the loop finishes its batch and returns.
        options: timeouts, batch sizes and concurrency.
    """

    def __init__(
        self,
        plugin: str,
        consumer: AIOKafkaConsumer,
        pattern: str,
        dispatcher: Dispatcher,
        dead_letter: Callable[[DeadLetter], Awaitable[None]],
        stopping: asyncio.Event,
        options: KafkaOptions,
    ) -> None:
        self.plugin = plugin
        self.consumer = consumer
        self._dispatcher = dispatcher
        self._dead_letter = dead_letter
        self._stopping = stopping
        self._options = options
        self._batch = asyncio.Lock()
        self._committed: dict[Any, int] = {}  # the last offset this member committed, per partition
        consumer.subscribe(pattern=pattern, listener=_WaitForBatch(self._batch))

    async def lag(self) -> int:
        """Records on this member's partitions past the committed offset (highwater of the last fetch).

        Offsets this member committed are known locally; for a partition it has not committed
        since being assigned it, the group's committed offset is asked once. Partitions with no
        fetch yet (no highwater) or never committed by the group count 0.
        """
        consumer, total = self.consumer, 0
        assigned = consumer.assignment()
        for tp in self._committed.keys() - assigned:  # revoked: another member may commit past it
            del self._committed[tp]
        for tp in assigned:
            high = consumer.highwater(tp)
            if high is None:
                continue
            done = self._committed.get(tp)
            if done is None:
                found = await consumer.committed(tp)
                if found is None:
                    continue
                done = self._committed.setdefault(tp, found)
            total += max(0, high - done)
        return total

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def run(self) -> None:
        """Consume until the bus stops; failures back off exponentially rather than spin."""
        o = self._options
        failures = 0
        while not self._stopping.is_set():
            try:
                batches = await self.consumer.getmany(timeout_ms=o.poll_timeout_ms, max_records=o.max_poll_records)
            except KafkaError as exc:
                log.warning("fetching for %s failed: %s", self.plugin, describe_error(exc))
                await self._pause(1.0)
                continue
            if not batches:
                continue
            try:
                async with self._batch:
                    clean = await self._process(batches)
            except Exception:  # a bug here must not end consumption: go back to what is committed
                log.exception("consumer of %s failed on a batch; resuming from the committed offsets", self.plugin)
                with contextlib.suppress(KafkaError):
                    await self.consumer.seek_to_committed()
                clean = False
            failures = 0 if clean else failures + 1
            if failures:  # the broker or the host is failing: back off before fetching it all again
                await self._pause(min(0.1 * 2**failures, 30.0))

    async def _process(self, batches: dict[Any, list[Any]]) -> bool:
        """Handle one fetched batch and commit what is done; ``False`` if any record must be fetched again."""
        # Handlers that never suspend would hold the loop for the whole batch: let the fetcher ask
        # for the next batch first, so fetching overlaps handling.
        await asyncio.sleep(0)
        assigned = self.consumer.assignment()
        commits: dict[Any, int] = {}
        retry: list[tuple[Any, int]] = []
        async with asyncio.TaskGroup() as tasks:
            for tp, records in batches.items():
                if records and tp in assigned:  # revoked partitions are their new owner's business
                    tasks.create_task(self._process_partition(tp, records, commits, retry), name="plexica-events-batch")
        for tp, offset in retry:
            self.consumer.seek(tp, offset)
        assigned = self.consumer.assignment()
        commits = {tp: offset for tp, offset in commits.items() if tp in assigned}
        if commits:
            try:
                async with asyncio.timeout(self._options.io_timeout_seconds):
                    await self.consumer.commit(commits)
                self._committed.update(commits)
            except CommitFailedError:
                log.warning(
                    "commit for %s failed after a rebalance: the new owner runs those events again", self.plugin
                )
            except (KafkaError, TimeoutError) as exc:  # a later commit covers these offsets
                log.warning("commit for %s failed: %s", self.plugin, describe_error(exc))
        return not retry

    async def _process_partition(
        self, tp: Any, records: list[Any], commits: dict[Any, int], retry: list[tuple[Any, int]]
    ) -> None:
        """Run one partition's records: in order per key, up to ``concurrency_per_partition`` keys at once."""
        by_key: dict[object, list[Any]] = {}
        for record in records:  # keyless records have no order to keep: each is its own group
            by_key.setdefault(record.key if record.key is not None else record.offset, []).append(record)
        done: set[int] = set()
        groups = iter(by_key.values())

        async def work() -> None:
            handled = 0
            for group in groups:  # the workers share this iterator
                for record in group:
                    handled += 1
                    if not handled % _YIELD_EVERY:  # let the fetcher and heartbeats run between handlers
                        await asyncio.sleep(0)
                    try:
                        await self._handle(record)
                    except Exception as exc:  # infrastructure, not the handler: fetch it again
                        where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                        log.warning("event at %s not handled: %s", where, describe_error(exc))
                        break  # the rest of this key must wait for it
                    done.add(record.offset)

        workers = min(len(by_key), self._options.concurrency_per_partition)
        if workers == 1:
            await work()
        else:
            async with asyncio.TaskGroup() as tasks:
                for _ in range(workers):
                    tasks.create_task(work(), name="plexica-events-worker")
        first = next_offset = records[0].offset
        for record in records:  # commit the prefix that is done; fetch again from the first gap
            if record.offset not in done:
                retry.append((tp, record.offset))
                break
            next_offset = record.offset + 1
        if next_offset > first:
            commits[tp] = next_offset

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            event = decode(record.value, record.headers)
            key = None if record.key is None else record.key.decode(errors="replace")
            msg = Inbound(record.topic, event, key, tuple(record.headers), record.partition, record.offset)
            letters = await self._dispatcher.deliver(self.plugin, msg)
        except EventError as exc:  # not an event of ours, and never will be: skipping is the only way on
            log.warning("skipped record %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
            return
        for letter in letters:
            await self._dead_letter(letter)


async def read_dead_letters(
    bootstrap: str, topic: str, options: KafkaOptions, partitions: Collection[int] | None = None
) -> dict[str, DeadLetter]:
    """Read the dead-letter topic from its first record to its end, without a consumer group.

    The end is where a fetch comes back empty *and* the reported end offsets are reached: Tansu
    under-reports end offsets after multi-record batches, so they alone would stop early.
    ``partitions`` are the topic's partitions when the caller knows them (the bus asks its
    producer); a group-less consumer's own metadata may not list the topic yet on Apache Kafka.

    Raises:
        BackendUnavailableError: the broker did not answer within ``options.io_timeout_seconds``.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=f"{options.client_id}.dlq",
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # offset 0 may be compacted away
        fetch_max_wait_ms=50,
    )
    letters: dict[str, DeadLetter] = {}
    try:
        async with asyncio.timeout(options.io_timeout_seconds):
            await consumer.start()
            if partitions is None:
                await consumer.topics()
                partitions = consumer.partitions_for_topic(topic) or ()
            assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
            if not assigned:
                return letters
            consumer.assign(assigned)
            ends = await consumer.end_offsets(assigned)
            for tp in assigned:
                consumer.seek(tp, 0)
            while True:
                batch = await consumer.getmany(*assigned, timeout_ms=250)
                for records in batch.values():
                    for record in records:
                        _apply(letters, record)
                if not batch and all([await consumer.position(tp) >= ends[tp] for tp in assigned]):
                    return letters
    except (KafkaError, TimeoutError) as exc:
        raise BackendUnavailableError("kafka", describe_error(exc)) from exc
    finally:
        async with asyncio.timeout(options.io_timeout_seconds):
            await consumer.stop()


def _apply(letters: dict[str, DeadLetter], record: ConsumerRecord[bytes, bytes]) -> None:
    if record.key is None:
        return
    try:
        letter = from_record(record.value, record.headers)
    except EventError as exc:
        log.warning("skipped dead-letter record @%d: %s", record.offset, exc)
        return
    if letter is None or DISMISSED in record.headers:
        letters.pop(record.key.decode(errors="replace"), None)
    else:
        letters[letter.id] = letter
