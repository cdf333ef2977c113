"""Coalescing concurrent single publishes into whole record batches (the Kafka bus's ``publish``).

``producer.send`` costs more per record than building the record batch ourselves (see
``KafkaEventBus._send_batched``), which is what made concurrent ``publish`` calls reach only ~0.6x
raw aiokafka. Here each ``publish`` validates and encodes its event in the caller, queues the
record with a future, and returns that future; one flusher task per bus takes everything queued,
appends it to per-partition batches, submits them, and resolves each caller's future when its
batch is acknowledged. Callers never wait on one another: a cancelled caller only cancels its own
future (its record is skipped if not yet submitted), and a failed batch fails only its own callers.

Imported only by :mod:`plexica.events.kafka`, after its guarded aiokafka import.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
from collections.abc import Callable
from typing import Any, final

from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from plexica.events.dispatch import Outbound
from plexica.events.dlq import describe_error
from plexica_sdk.errors import BackendUnavailableError, EventError

__all__ = ["Coalescer"]

_PARTITIONER = DefaultPartitioner()
_Pending = tuple[Outbound, "asyncio.Future[None]"]


def _settle(futures: list[asyncio.Future[None]]) -> Callable[[asyncio.Future[Any]], None]:
    def done(batch: asyncio.Future[Any]) -> None:
        error = None
        if batch.cancelled():
            error = BackendUnavailableError("kafka", "the batch was cancelled")
        elif (exc := batch.exception()) is not None:
            error = BackendUnavailableError("kafka", describe_error(exc))
        for future in futures:
            if future.done():  # its caller was cancelled
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

    return done


@final
class Coalescer:
    """Batches the records of concurrent ``publish`` calls; one per bus.

    Args:
        producer: the started aiokafka producer.
        submit_lock: held while submitting batches (shared with ``publish_many``'s batched path).
        io_timeout: seconds a flush may take to submit its batches.
    """

    def __init__(self, producer: Any, submit_lock: asyncio.Lock, io_timeout: float) -> None:
        self._producer = producer
        self._lock = submit_lock
        self._timeout = io_timeout
        self._pending: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._partitions: dict[str, list[int]] = {}

    def submit(self, record: Outbound) -> asyncio.Future[None]:
        """Queue ``record``; the future resolves once the broker acknowledged its batch.

        The future fails with ``BackendUnavailableError`` when the batch could not be sent.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((record, future))
        if self._task is None:
            # Its own context: the flusher serves every caller, and must not carry one's tenant.
            self._task = loop.create_task(self._flush(), context=contextvars.Context())
        return future

    def forget_partitions(self) -> None:
        """Look the partitions up again (after a failure: the broker may have lost the topics)."""
        self._partitions.clear()

    async def close(self) -> None:
        """Wait until everything queued was submitted."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def _flush(self) -> None:
        try:
            while self._pending:
                items, self._pending = self._pending, []
                try:
                    await self._submit([item for item in items if not item[1].done()])
                except (KafkaError, TimeoutError, EventError) as exc:
                    self._fail([future for _, future in items], exc)
                except BaseException as exc:  # cancelled (the loop is closing) or a bug: nobody may hang
                    self._fail([future for _, future in items], exc)
                    raise
        finally:
            self._task = None

    @staticmethod
    def _fail(futures: list[asyncio.Future[None]], exc: BaseException) -> None:
        error = BackendUnavailableError("kafka", describe_error(exc))
        for future in futures:
            if not future.done():
                future.set_exception(error)

    async def _submit(self, items: list[_Pending]) -> None:
        producer = self._producer
        sticky: dict[str, int] = {}  # this flush's partition for keyless records, per topic
        builders: dict[tuple[str, int], tuple[Any, list[asyncio.Future[None]]]] = {}
        async with asyncio.timeout(self._timeout), self._lock:
            for (topic, text_key, value, headers), future in items:
                key = None if text_key is None else text_key.encode()
                known = self._partitions.get(topic)
                if known is None:
                    known = self._partitions[topic] = sorted(await producer.partitions_for(topic))
                if key is not None:
                    partition = _PARTITIONER(key, known, known)
                elif topic in sticky:
                    partition = sticky[topic]
                else:
                    partition = sticky[topic] = random.choice(known)  # noqa: S311 - load spreading only
                slot = builders.get((topic, partition))
                if slot is None:
                    slot = builders[topic, partition] = (producer.create_batch(), [])
                if slot[0].append(key=key, value=value, timestamp=None, headers=headers) is None:
                    await self._send(slot, topic, partition)
                    slot = builders[topic, partition] = (producer.create_batch(), [])
                    if slot[0].append(key=key, value=value, timestamp=None, headers=headers) is None:
                        future.set_exception(EventError(f"a {len(value or b'')}-byte event does not fit in a batch"))
                        continue
                slot[1].append(future)
            for (topic, partition), slot in builders.items():
                await self._send(slot, topic, partition)

    async def _send(self, slot: tuple[Any, list[asyncio.Future[None]]], topic: str, partition: int) -> None:
        builder, futures = slot
        builder.close()
        try:
            batch = await self._producer.send_batch(builder, topic, partition=partition)
        except BaseException as exc:
            self._fail(futures, exc)
            raise
        batch.add_done_callback(_settle(futures))
