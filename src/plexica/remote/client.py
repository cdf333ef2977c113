"""The host's client of one remote plugin: hook calls, event deliveries and health probes over wire protocol v1.

Every attempt carries a fresh context token (a retried call with the same token would be refused
as a replay), passes the plugin's circuit breaker, and is bounded by the plugin's timeouts and its
own connection pool, so a plugin that hangs holds only its own connections. What goes wrong
becomes a typed SDK error, never a host 500:

* no connection, a full pool, a dropped connection, the breaker open: :class:`PluginUnavailableError` (503);
* no answer in time: :class:`PluginTimeoutError` (504);
* an answer that is not wire protocol v1 (no ``Plexica-Protocol: 1``, not JSON, a result of the
  wrong type, an unknown error class): :class:`PluginAnswerError` (502);
* a problem the plugin raised on purpose: the same SDK exception an embedded plugin would raise.

Retries: a call that never reached the plugin (connection refused, pool full) may be retried for
every hook; one that may have reached it (a timeout, a 5xx, a dropped connection) only for
:data:`IDEMPOTENT_HOOKS`; a 4xx never. Event deliveries are not retried here: the event bus
retries them, with backoff and its dead-letter queue, exactly as for an embedded handler.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, final

import aiohttp
import attrs

from plexica.remote.breaker import CircuitBreaker
from plexica.remote.context_tokens import ContextSigner
from plexica.remote.transport import AnswerTooLarge, plugin_url, read_capped, session_for, transport_error
from plexica.settings import RemotePluginSettings
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import (
    PlexicaError,
    PluginAnswerError,
    PluginUnavailableError,
    ValidationError,
)
from plexica_sdk.remote.wire import (
    BOOT_HEADER,
    CONTEXT_HEADER,
    EVENT_BATCH_PATH,
    EVENTS_PATH,
    HEALTH_PATH,
    MAX_EVENT_BATCH,
    MAX_EVENT_BATCH_BYTES,
    PROTOCOL_HEADER,
    RPC_PATH,
    decode_problem,
    decode_result,
)
from plexica_sdk.types import Event, TenantContext

__all__ = ["IDEMPOTENT_HOOKS", "MAX_ANSWER_BYTES", "RemoteClient"]

logger = logging.getLogger(__name__)

#: Hooks a retry cannot harm: queries, start-up contributions, and the lifecycle hooks the hook
#: specifications already require to be idempotent.
IDEMPOTENT_HOOKS: Final = frozenset(
    {
        "plexica_manifest",
        "plexica_permissions",
        "plexica_default_roles",
        "plexica_policies",
        "plexica_event_types",
        "plexica_storage_namespaces",
        "plexica_resource_attributes",
        "plexica_tenant_provisioned",
        "plexica_tenant_deleting",
    }
)
#: The largest answer to a hook call or delivery the host reads (a plugin spewing bytes is cut off).
MAX_ANSWER_BYTES: Final = 8 * 1024 * 1024
_BACKOFF_SECONDS: Final = 0.05
#: A delivery larger than this travels alone (a batch's body, with its framing, stays under the limit).
_MAX_ITEM_BYTES: Final = MAX_EVENT_BATCH_BYTES - 64 * 1024


class _Failure(Exception):
    """One failed attempt: the error to raise, and whether the request may have reached the plugin."""

    def __init__(self, error: PlexicaError, *, sent: bool, retryable: bool = True) -> None:
        super().__init__(str(error))
        self.error = error
        self.sent = sent
        self.retryable = retryable


@final
class RemoteClient:
    """Calls one remote plugin. Build it when the host is built; enter it with the host (it closes its pool).

    Args:
        config: the plugin's ``[[plugins.remote]]`` entry.
        signer: the host's context-token signer.
        breaker: the plugin's breaker; default: one from ``config``.
    """

    def __init__(
        self,
        config: RemotePluginSettings,
        signer: ContextSigner,
        *,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.signer = signer
        self.breaker = breaker or CircuitBreaker(
            config.name, failures=config.breaker_failures, reset_seconds=config.breaker_reset_seconds
        )
        self._session: aiohttp.ClientSession | None = None
        paths = (RPC_PATH, EVENTS_PATH, EVENT_BATCH_PATH, HEALTH_PATH)
        self._urls = {path: plugin_url(config.url, path) for path in paths}
        self._batches = False
        self._lanes: dict[TenantContext | None, _Lane] = {}
        self._senders: set[asyncio.Task[None]] = set()
        #: The boot id the plugin's process last answered with (None: not seen, or an older SDK).
        self.boot_id: str | None = None

    def session(self) -> aiohttp.ClientSession:
        """The plugin's connection pool (made on first use, inside the running loop)."""
        if self._session is None:
            self._session = session_for(self.config)
        return self._session

    async def __aenter__(self) -> RemoteClient:
        self.session()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._senders):
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def headers(self, ctx: TenantContext | None) -> dict[str, str]:
        """A fresh context token for one attempt, and the protocol version."""
        return {CONTEXT_HEADER: self.signer.issue(self.name, ctx), PROTOCOL_HEADER: "1"}

    # ------------------------------------------------------------ hook calls

    async def call(self, hook: str, args: Mapping[str, Any], ctx: TenantContext | None) -> Any:
        """Call ``hook`` with ``args`` (no ``tenant``/``host``) for ``ctx``; its structured result.

        Raises:
            PlexicaError: what the plugin raised, or the 502/503/504 errors of the module docstring.
        """
        body = {"hook": hook, "args": unstructure(dict(args))}
        retries = self.config.retries
        for attempt in range(retries + 1):
            try:
                answer = await self._post(RPC_PATH, body, ctx, hook)
                return self._result(hook, answer)
            except _Failure as failure:
                may_retry = failure.retryable and (not failure.sent or hook in IDEMPOTENT_HOOKS)
                if attempt == retries or not may_retry:
                    raise failure.error from None
                logger.info(
                    "retrying a remote hook call",
                    extra={"plugin": self.name, "hook": hook, "attempt": attempt + 1, "error": str(failure.error)},
                )
                await asyncio.sleep(_BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _result(self, hook: str, answer: Any) -> Any:
        if not isinstance(answer, dict) or "result" not in answer:
            raise _Failure(PluginAnswerError(self.name, hook, "answered without a 'result'"), sent=True)
        try:
            return decode_result(hook, answer["result"])
        except ValidationError as exc:
            error = PluginAnswerError(self.name, hook, f"returned a result of the wrong type: {exc}"[:300])
            raise _Failure(error, sent=True, retryable=False) from None

    # ------------------------------------------------------------ events

    def use_event_batches(self, enabled: bool) -> None:
        """Whether deliveries may share a call (the plugin's contributions say it serves ``EVENT_BATCH_PATH``)."""
        self._batches = enabled

    async def deliver(self, subscription: str, event: Event, ctx: TenantContext | None, plugins: Sequence[str]) -> None:
        """Run the plugin's ``subscription`` handler for ``event`` in ``ctx``'s tenant (once: the bus retries).

        Deliveries for the same tenant that are waiting at the same time travel together in one
        call (see :class:`_Lane`); each still gets its own outcome.

        Raises:
            PlexicaError: the handler failed, or the plugin could not be reached (the bus then retries).
        """
        item = {"subscription": subscription, "event": unstructure(event)}
        if self._batches:
            if ctx is not None and ctx.trace_id is not None:
                item["trace_id"] = ctx.trace_id
            encoded = json.dumps(item, separators=(",", ":")).encode()
            if len(encoded) <= _MAX_ITEM_BYTES:
                key = ctx if ctx is None or ctx.trace_id is None else attrs.evolve(ctx, trace_id=None)
                await self._lane(key).deliver(f"subscription {subscription}", encoded, plugins)
                return
            item.pop("trace_id", None)
        try:
            await self._post(
                EVENTS_PATH, {**item, "plugins": list(plugins)}, ctx, f"subscription {subscription}", empty_ok=True
            )
        except _Failure as failure:
            raise failure.error from None

    def _lane(self, ctx: TenantContext | None) -> _Lane:
        lane = self._lanes.get(ctx)
        if lane is None:
            lane = self._lanes[ctx] = _Lane(self, ctx)
        return lane

    async def _deliver_batch(self, ctx: TenantContext | None, batch: Sequence[_Waiting]) -> list[PlexicaError | None]:
        """One call carrying ``batch``; each delivery's error, or None when its handler returned.

        Raises:
            PlexicaError: the call as a whole failed (every delivery in it then failed with this).
        """
        named = {waiting.what for waiting in batch}
        what = named.pop() if len(named) == 1 else f"{len(batch)} event deliveries"
        body = b"".join(
            (
                b'{"plugins":',
                json.dumps(list(batch[0].plugins)).encode(),
                b',"deliveries":[',
                b",".join(waiting.item for waiting in batch),
                b"]}",
            )
        )
        try:
            answer = await self._post(EVENT_BATCH_PATH, body, ctx, what, healthy=_no_server_error)
        except _Failure as failure:
            raise failure.error from None
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list) or len(results) != len(batch):
            raise PluginAnswerError(self.name, what, "answered without one result per delivery")
        return [
            None if result is None else decode_problem(_problem_status(result), result, plugin=self.name)
            for result in results
        ]

    # ------------------------------------------------------------ probing

    async def probe(self) -> dict[str, Any]:
        """``GET /.plexica/health`` (no token, not counted by the breaker); the plugin's answer.

        Raises:
            PlexicaError: no answer, or not a wire protocol v1 health document.
        """
        seconds = self.config.connect_timeout_seconds
        try:
            async with self.session().get(
                self._urls[HEALTH_PATH],
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds, connect=seconds),
            ) as response:
                status = response.status
                protocol = response.headers.get(PROTOCOL_HEADER)
                content = await read_capped(response, MAX_ANSWER_BYTES)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise transport_error(self.name, "a health probe", exc, seconds)[0] from None
        except AnswerTooLarge:
            raise PluginAnswerError(self.name, "a health probe", "answered more than 8 MiB") from None
        if status != 200 or protocol != "1":
            raise PluginAnswerError(self.name, "a health probe", f"answered HTTP {status}")
        try:
            document = json.loads(content)
        except ValueError:
            raise PluginAnswerError(self.name, "a health probe", "answered something that is not JSON") from None
        if not isinstance(document, dict) or document.get("status") != "ok":
            raise PluginAnswerError(self.name, "a health probe", "did not say it is ok")
        self._answered_by(document.get("boot_id"))
        return document

    def _answered_by(self, boot_id: object) -> None:
        """Remember the boot id of the process that answered (none, or not a short string: an older SDK)."""
        if isinstance(boot_id, str) and 0 < len(boot_id) <= 128:
            self.boot_id = boot_id

    # ------------------------------------------------------------ one attempt

    async def _post(
        self,
        path: str,
        body: Mapping[str, Any] | bytes,
        ctx: TenantContext | None,
        what: str,
        *,
        empty_ok: bool = False,
        healthy: Callable[[Any], bool] | None = None,
    ) -> Any:
        """One attempt through the breaker; the decoded JSON answer, or a :class:`_Failure`.

        ``body`` is a JSON document or its encoding; ``healthy`` judges a 200 answer for the
        breaker (a batch whose handlers failed with 5xx problems counts as a failure).
        """
        try:
            trial = self.breaker.admit(what)
        except PluginUnavailableError as exc:
            raise _Failure(exc, sent=False, retryable=False) from None
        outcome: bool | None = None
        headers = self.headers(ctx)
        headers["Content-Type"] = "application/json"
        data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        try:
            try:
                async with self.session().post(
                    self._urls[path], data=data, headers=headers, allow_redirects=False
                ) as response:
                    status = response.status
                    protocol = response.headers.get(PROTOCOL_HEADER)
                    self._answered_by(response.headers.get(BOOT_HEADER))
                    content = await read_capped(response, MAX_ANSWER_BYTES)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome = False
                error, sent = transport_error(self.name, what, exc, self.config.timeout_seconds)
                raise _Failure(error, sent=sent) from None
            except AnswerTooLarge:
                outcome = False
                raise _Failure(PluginAnswerError(self.name, what, "answered more than 8 MiB"), sent=True) from None
            outcome = status < 500
            if protocol != "1":
                outcome = False
                error = PluginAnswerError(self.name, what, f"answered HTTP {status} without {PROTOCOL_HEADER}: 1")
                raise _Failure(error, sent=True)
            if empty_ok and status == 204:
                return None
            try:
                answer = json.loads(content)
            except ValueError:
                outcome = False
                error = PluginAnswerError(self.name, what, f"answered HTTP {status} with something that is not JSON")
                raise _Failure(error, sent=True) from None
            if status == 200:
                if healthy is not None:
                    outcome = healthy(answer)
                return answer
            if status >= 400:
                # A 4xx is the plugin's considered answer: raised as is, never retried.
                raise _Failure(decode_problem(status, answer, plugin=self.name), sent=True, retryable=status >= 500)
            outcome = False
            raise _Failure(PluginAnswerError(self.name, what, f"answered HTTP {status}"), sent=True)
        finally:
            self.breaker.record(outcome, trial=trial)


def _problem_status(problem: Any) -> int:
    status = problem.get("status") if isinstance(problem, dict) else None
    return status if isinstance(status, int) and 400 <= status <= 599 else 500


def _no_server_error(answer: Any) -> bool:
    results = answer.get("results") if isinstance(answer, dict) else None
    return isinstance(results, list) and all(result is None or _problem_status(result) < 500 for result in results)


@attrs.frozen
class _Waiting:
    """One delivery waiting for a call: what it is for errors, its encoded JSON, the host's plugins."""

    what: str
    item: bytes
    plugins: Sequence[str]
    done: asyncio.Future[None]


@final
class _Lane:
    """The deliveries of one tenant context waiting for a call, and the calls that carry them.

    A delivery joins the queue; a sender started for it waits one loop pass (so deliveries made
    in the same pass join), then sends up to :data:`MAX_EVENT_BATCH` of them in one call, and
    goes on while more wait. Up to ``max_connections`` senders run at once, so a lone delivery
    is sent at once, never held back for company, while under load the waiting ones batch up.
    """

    def __init__(self, client: RemoteClient, ctx: TenantContext | None) -> None:
        self.client = client
        self.ctx = ctx
        self.waiting: collections.deque[_Waiting] = collections.deque()
        self.senders = 0
        self.collecting = False

    async def deliver(self, what: str, item: bytes, plugins: Sequence[str]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(_Waiting(what, item, plugins, done))
        if not self.collecting and self.senders < self.client.config.max_connections:
            self.collecting = True
            self.senders += 1
            task = asyncio.create_task(self._send(), name=f"plexica-remote-events-{self.client.name}")
            self.client._senders.add(task)
            task.add_done_callback(self.client._senders.discard)
        await done

    def _take(self) -> list[_Waiting]:
        """The next batch: one ``plugins`` list, at most MAX_EVENT_BATCH deliveries and MAX_EVENT_BATCH_BYTES."""
        batch: list[_Waiting] = []
        plugins = self.waiting[0].plugins
        size = 0
        while self.waiting and len(batch) < MAX_EVENT_BATCH:
            waiting = self.waiting[0]
            if waiting.plugins != plugins or size + len(waiting.item) > _MAX_ITEM_BYTES:
                break
            self.waiting.popleft()
            if waiting.done.done():  # its caller gave up (cancelled): nothing waits for the outcome
                continue
            batch.append(waiting)
            size += len(waiting.item) + 1
        return batch

    async def _send(self) -> None:
        batch: list[_Waiting] = []
        collected = False
        try:
            await asyncio.sleep(0)  # let the deliveries made in this loop pass join
            self.collecting, collected = False, True
            while self.waiting:
                batch = self._take()
                if not batch:
                    continue
                try:
                    outcomes: Sequence[PlexicaError | None] = await self.client._deliver_batch(self.ctx, batch)
                except PlexicaError as exc:
                    outcomes = [exc] * len(batch)
                for waiting, outcome in zip(batch, outcomes, strict=True):
                    if waiting.done.done():
                        continue
                    if outcome is None:
                        waiting.done.set_result(None)
                    else:
                        waiting.done.set_exception(outcome)
                batch = []
        finally:
            if not collected:  # cancelled before it took anything: let the next delivery start a sender
                self.collecting = False
            self.senders -= 1
            for waiting in batch:  # cancelled mid-call (the host is stopping)
                if not waiting.done.done():
                    stopping = PluginUnavailableError(self.client.name, waiting.what, "the host is stopping")
                    waiting.done.set_exception(stopping)
            if not self.senders and not self.waiting:
                self.client._lanes.pop(self.ctx, None)
