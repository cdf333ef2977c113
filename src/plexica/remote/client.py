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
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final, final

import httpx2

from plexica.remote.breaker import CircuitBreaker
from plexica.remote.context_tokens import ContextSigner
from plexica.settings import RemotePluginSettings
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import (
    PlexicaError,
    PluginAnswerError,
    PluginCallError,
    PluginTimeoutError,
    PluginUnavailableError,
    ValidationError,
)
from plexica_sdk.remote.wire import (
    CONTEXT_HEADER,
    EVENTS_PATH,
    HEALTH_PATH,
    PROTOCOL_HEADER,
    RPC_PATH,
    decode_problem,
    decode_result,
)
from plexica_sdk.types import Event, TenantContext

__all__ = ["IDEMPOTENT_HOOKS", "MAX_ANSWER_BYTES", "RemoteClient", "transport_error"]

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


class _Failure(Exception):
    """One failed attempt: the error to raise, and whether the request may have reached the plugin."""

    def __init__(self, error: PlexicaError, *, sent: bool, retryable: bool = True) -> None:
        super().__init__(str(error))
        self.error = error
        self.sent = sent
        self.retryable = retryable


def transport_error(plugin: str, what: str, exc: httpx2.HTTPError, timeout: float) -> tuple[PluginCallError, bool]:
    """The SDK error an HTTP transport failure stands for, and whether the request may have been sent.

    Connection refused, a connect timeout or a full pool: the request never left (503). A read or
    write timeout: 504. A dropped connection: 503, possibly after the plugin acted. Anything else
    (an HTTP answer that does not parse): 502.
    """
    if isinstance(exc, httpx2.ConnectError | httpx2.ConnectTimeout | httpx2.PoolTimeout):
        return PluginUnavailableError(plugin, what, f"cannot connect ({type(exc).__name__})"), False
    if isinstance(exc, httpx2.TimeoutException):
        return PluginTimeoutError(plugin, what, timeout), True
    if isinstance(exc, httpx2.ReadError | httpx2.WriteError) or (
        isinstance(exc, httpx2.RemoteProtocolError) and "disconnect" in str(exc).lower()
    ):
        return PluginUnavailableError(plugin, what, f"the connection dropped ({type(exc).__name__})"), True
    return PluginAnswerError(plugin, what, f"answered malformed HTTP ({type(exc).__name__})"), True


@final
class RemoteClient:
    """Calls one remote plugin. Build it when the host is built; enter it with the host (it closes its pool).

    Args:
        config: the plugin's ``[[plugins.remote]]`` entry.
        signer: the host's context-token signer.
        breaker: the plugin's breaker; default: one from ``config``.
        transport: an HTTP transport (tests); default: a pooled one bounded by ``config.max_connections``.
    """

    def __init__(
        self,
        config: RemotePluginSettings,
        signer: ContextSigner,
        *,
        breaker: CircuitBreaker | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.signer = signer
        self.breaker = breaker or CircuitBreaker(
            config.name, failures=config.breaker_failures, reset_seconds=config.breaker_reset_seconds
        )
        limits = httpx2.Limits(max_connections=config.max_connections, max_keepalive_connections=config.max_connections)
        self.timeout = httpx2.Timeout(
            config.timeout_seconds, connect=config.connect_timeout_seconds, pool=config.connect_timeout_seconds
        )
        self.http = httpx2.AsyncClient(
            base_url=config.url.rstrip("/"),
            timeout=self.timeout,
            transport=transport or httpx2.AsyncHTTPTransport(limits=limits, retries=0),
            follow_redirects=False,  # a remote URL comes from settings, never from the plugin's answer
            trust_env=False,  # no proxy from the environment between the host and its plugins
        )

    async def __aenter__(self) -> RemoteClient:
        await self.http.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

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

    async def deliver(self, subscription: str, event: Event, ctx: TenantContext | None, plugins: Sequence[str]) -> None:
        """Run the plugin's ``subscription`` handler for ``event`` in ``ctx``'s tenant (once: the bus retries).

        Raises:
            PlexicaError: the handler failed, or the plugin could not be reached (the bus then retries).
        """
        body = {"subscription": subscription, "event": unstructure(event), "plugins": list(plugins)}
        try:
            await self._post(EVENTS_PATH, body, ctx, f"subscription {subscription}", empty_ok=True)
        except _Failure as failure:
            raise failure.error from None

    # ------------------------------------------------------------ probing

    async def probe(self) -> dict[str, Any]:
        """``GET /.plexica/health`` (no token, not counted by the breaker); the plugin's answer.

        Raises:
            PlexicaError: no answer, or not a wire protocol v1 health document.
        """
        try:
            response = await self.http.get(HEALTH_PATH, timeout=self.config.connect_timeout_seconds)
        except httpx2.HTTPError as exc:
            raise transport_error(self.name, "a health probe", exc, self.config.connect_timeout_seconds)[0] from None
        if response.status_code != 200 or response.headers.get(PROTOCOL_HEADER) != "1":
            raise PluginAnswerError(self.name, "a health probe", f"answered HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError:
            raise PluginAnswerError(self.name, "a health probe", "answered something that is not JSON") from None
        if not isinstance(document, dict) or document.get("status") != "ok":
            raise PluginAnswerError(self.name, "a health probe", "did not say it is ok")
        return document

    # ------------------------------------------------------------ one attempt

    async def _post(
        self, path: str, body: Mapping[str, Any], ctx: TenantContext | None, what: str, *, empty_ok: bool = False
    ) -> Any:
        """One attempt through the breaker; the decoded JSON answer, or a :class:`_Failure`."""
        try:
            trial = self.breaker.admit(what)
        except PluginUnavailableError as exc:
            raise _Failure(exc, sent=False, retryable=False) from None
        outcome: bool | None = None
        try:
            try:
                async with self.http.stream("POST", path, json=body, headers=self.headers(ctx)) as response:
                    content = await _read_capped(response, MAX_ANSWER_BYTES)
            except httpx2.HTTPError as exc:
                outcome = False
                error, sent = transport_error(self.name, what, exc, self.config.timeout_seconds)
                raise _Failure(error, sent=sent) from None
            except _TooLarge:
                outcome = False
                raise _Failure(PluginAnswerError(self.name, what, "answered more than 8 MiB"), sent=True) from None
            status = response.status_code
            outcome = status < 500
            if response.headers.get(PROTOCOL_HEADER) != "1":
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
                return answer
            if status >= 400:
                # A 4xx is the plugin's considered answer: raised as is, never retried.
                raise _Failure(decode_problem(status, answer, plugin=self.name), sent=True, retryable=status >= 500)
            outcome = False
            raise _Failure(PluginAnswerError(self.name, what, f"answered HTTP {status}"), sent=True)
        finally:
            self.breaker.record(outcome, trial=trial)


class _TooLarge(Exception):
    pass


async def _read_capped(response: httpx2.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)
