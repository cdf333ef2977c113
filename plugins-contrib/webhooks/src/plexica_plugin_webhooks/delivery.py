"""Delivering recorded events to endpoints: one attempt, its outcome, and the worker that runs them.

The event handler only records pending deliveries (in its own transaction); the worker sends
them outside any handler or request, so a slow receiver never holds a transaction or delays the
bus. Only 5xx answers, timeouts and connection errors are retried (exponential backoff with
jitter); any other answer ends the delivery at once: retrying a 4xx only repeats the refusal
(Saleor's delivery storms). An endpoint whose deliveries keep ending failed is disabled, and
``webhooks.endpoint.disabled`` is published in the same transaction: never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import ssl
import time
from collections.abc import Mapping
from typing import Any, Final, Literal, final

import attrs
import httpx2
import sqlalchemy as sa

from plexica_plugin_webhooks.models import deliveries, endpoints
from plexica_plugin_webhooks.settings import WebhooksSettings
from plexica_plugin_webhooks.signing import SIGNATURE_HEADER, signature_header
from plexica_plugin_webhooks.ssrf import AddressRefusedError, resolve
from plexica_sdk import Host, TenantContext, context

__all__ = ["DISABLED_EVENT", "DeliveryWorker", "Outcome", "attempt", "backoff_delay", "utc"]

log = logging.getLogger(__name__)

DISABLED_EVENT: Final = "webhooks.endpoint.disabled"
USER_AGENT: Final = "Plexica-Webhooks/1.0"
_BATCH: Final = 50
_ERROR_CHARS: Final = 500
_JITTER: Final = random.SystemRandom()


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` as an aware UTC time (SQLite hands back naive ones; every time stored here is UTC)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def backoff_delay(attempts: int, settings: WebhooksSettings, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: doubling, capped, jittered.

    Equal jitter (half fixed, half random) spreads the retries of many deliveries that failed
    together, without ever retrying at once.
    """
    ceiling = min(settings.backoff_max_seconds, settings.backoff_base_seconds * 2.0 ** max(attempts - 1, 0))
    return ceiling / 2 + (rng or _JITTER).uniform(0, ceiling / 2)


@final
@attrs.frozen(kw_only=True)
class Outcome:
    """What one attempt came to: ``ok``, ``retry`` (5xx, timeout, connection) or ``refused``."""

    kind: Literal["ok", "retry", "refused"]
    status_code: int | None = None
    error: str | None = None


async def attempt(
    client: httpx2.AsyncClient,
    settings: WebhooksSettings,
    *,
    url: str,
    secrets: list[str],
    body: str,
    headers: Mapping[str, str],
) -> Outcome:
    """Send one signed delivery to ``url``, connected to the address the SSRF guard just checked."""
    try:
        target = await resolve(url, settings)
    except AddressRefusedError as exc:
        return Outcome(kind="refused", error=str(exc))
    raw = body.encode("utf-8")
    sent = {
        **headers,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Host": target.host_header,
        SIGNATURE_HEADER: signature_header(secrets, int(time.time()), raw),
    }
    extensions = {"sni_hostname": target.hostname} if target.scheme == "https" else {}
    try:
        async with asyncio.timeout(settings.timeout_seconds):
            response = await client.post(target.url_for(url), content=raw, headers=sent, extensions=extensions)
    except (TimeoutError, httpx2.TimeoutException):
        return Outcome(kind="retry", error=f"timed out after {settings.timeout_seconds:g} s")
    except httpx2.TransportError as exc:
        return Outcome(kind="retry", error=f"connection failed: {type(exc).__name__}: {exc}"[:_ERROR_CHARS])
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(kind="ok", status_code=code)
    if code >= 500:
        return Outcome(kind="retry", status_code=code, error=f"the endpoint answered {code}")
    # 3xx are not followed (a redirect could lead anywhere the guard refuses); 4xx are final.
    return Outcome(kind="refused", status_code=code, error=f"the endpoint answered {code}; not retried")


def _client(settings: WebhooksSettings) -> httpx2.AsyncClient:
    verify: ssl.SSLContext | bool = True
    if settings.ca_bundle:
        verify = ssl.create_default_context(cafile=settings.ca_bundle)
    timeout = httpx2.Timeout(settings.timeout_seconds)
    return httpx2.AsyncClient(verify=verify, timeout=timeout, follow_redirects=False, trust_env=False)


@final
class DeliveryWorker:
    """Sends due deliveries of every tenant it knows, until stopped.

    A tenant becomes known when one of its events is recorded or its webhook routes are used
    (the plugin cannot list tenants itself); due retries of a tenant resume once it is known
    again after a restart. Attempts are claimed row by row (``next_attempt_at`` moves forward
    by a lease), so two host processes never send the same attempt.
    """

    def __init__(self, settings: WebhooksSettings) -> None:
        self.settings = settings
        self._tenants: dict[str, TenantContext] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx2.AsyncClient | None = None
        self._stopping = False

    def notify(self, tenant: TenantContext) -> None:
        """Remember ``tenant`` and wake the worker: it has deliveries due now."""
        self._tenants[tenant.tenant_id] = attrs.evolve(tenant, user=None, workspace_id=None, trace_id=None)
        self._wake.set()

    def forget(self, tenant: TenantContext) -> None:
        """Stop looking at ``tenant`` (being deleted, or the plugin uninstalled there)."""
        self._tenants.pop(tenant.tenant_id, None)

    def stopping(self) -> bool:
        """``stop()`` was called: the loop ends at its next step."""
        return self._stopping

    async def start(self, host: Host) -> None:
        """Start the loop; ``host`` is the plugin's host-level handle (tenant calls follow the context)."""
        if self._task is not None:
            return
        self._stopping = False
        self._client = _client(self.settings)
        self._task = asyncio.get_running_loop().create_task(self._run(host), name="webhooks-delivery")

    async def stop(self) -> None:
        """Stop the loop (an attempt in flight is cancelled and retried later) and close the client."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            task.cancel()
            # A cancel landing in a session's rollback can surface as a database error instead.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _run(self, host: Host) -> None:
        while not self.stopping():
            self._wake.clear()
            wait = self.settings.poll_interval_seconds
            for ctx in list(self._tenants.values()):
                try:
                    with context.use(ctx):
                        due_in = await self.run_tenant(host)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    if self.stopping():
                        return
                    log.exception("webhooks: delivering for tenant %s failed; retrying later", ctx.slug)
                    continue
                if due_in is not None:
                    wait = min(wait, due_in)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(wait, 0.0)):
                    await self._wake.wait()

    async def run_tenant(self, host: Host) -> float | None:
        """Send the current tenant's due deliveries; return seconds until its next one is due."""
        assert self._client is not None, "start() first"  # internal invariant
        while True:
            claimed = await self._claim(host)
            disabled: set[str] = set()
            for row in claimed:
                if row.endpoint_id in disabled:
                    continue  # disabling it moved this delivery to the dead letters too
                outcome = await attempt(
                    self._client,
                    self.settings,
                    url=row.url,
                    secrets=_secrets(row),
                    body=row.body,
                    headers={
                        "Plexica-Event-Id": row.event_id,
                        "Plexica-Event-Type": row.event_type,
                        "Plexica-Delivery-Id": row.id,
                        "Plexica-Delivery-Attempt": str(row.attempts + 1),
                    },
                )
                if await self._record(host, row, outcome):
                    disabled.add(row.endpoint_id)
            if len(claimed) < _BATCH:
                break
        async with host.session() as session:
            upcoming = await session.scalar(
                sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(deliveries.c.status == "pending")
            )
        nxt = utc(upcoming)
        return None if nxt is None else max((nxt - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)

    async def _claim(self, host: Host) -> list[Any]:
        now = dt.datetime.now(dt.UTC)
        lease = now + dt.timedelta(seconds=self.settings.timeout_seconds * 2 + 5)
        query = (
            sa.select(
                deliveries,
                endpoints.c.url,
                endpoints.c.secret,
                endpoints.c.previous_secret,
                endpoints.c.previous_secret_expires_at,
            )
            .join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)
            .where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now, endpoints.c.enabled)
            .order_by(deliveries.c.next_attempt_at)
            .limit(_BATCH)
        )
        claimed = []
        async with host.session() as session:
            for row in (await session.execute(query)).all():
                result = await session.execute(
                    deliveries.update()
                    .where(
                        deliveries.c.id == row.id,
                        deliveries.c.status == "pending",
                        deliveries.c.next_attempt_at <= now,
                    )
                    .values(next_attempt_at=lease)
                )
                if result.rowcount == 1:
                    claimed.append(row)
        return claimed

    async def _record(self, host: Host, row: Any, outcome: Outcome) -> bool:
        """Store the attempt's outcome; ``True`` when it got the endpoint disabled."""
        now = dt.datetime.now(dt.UTC)
        attempts = row.attempts + 1
        values: dict[str, Any] = {
            "attempts": attempts,
            "last_attempt_at": now,
            "last_status_code": outcome.status_code,
            "last_error": (outcome.error or "")[:_ERROR_CHARS] or None,
        }
        if outcome.kind == "ok":
            values.update(status="succeeded", next_attempt_at=None)
        elif outcome.kind == "retry" and attempts < self.settings.max_attempts:
            values.update(next_attempt_at=now + dt.timedelta(seconds=backoff_delay(attempts, self.settings)))
        else:
            values.update(status="failed" if outcome.kind == "refused" else "dead", next_attempt_at=None)
        async with host.session() as session:
            await session.execute(deliveries.update().where(deliveries.c.id == row.id).values(**values))
            if outcome.kind == "ok":
                await session.execute(
                    endpoints.update()
                    .where(endpoints.c.id == row.endpoint_id)
                    .values(consecutive_failures=0, failing_since=None)
                )
            elif values.get("status") in ("failed", "dead"):
                return await self._count_failure(host, session, row.endpoint_id, now)
        return False

    async def _count_failure(self, host: Host, session: Any, endpoint_id: str, now: dt.datetime) -> bool:
        await session.execute(
            endpoints.update()
            .where(endpoints.c.id == endpoint_id)
            .values(
                consecutive_failures=endpoints.c.consecutive_failures + 1,
                failing_since=sa.func.coalesce(endpoints.c.failing_since, now),
            )
        )
        endpoint = (await session.execute(sa.select(endpoints).where(endpoints.c.id == endpoint_id))).one()
        if not endpoint.enabled or endpoint.consecutive_failures < self.settings.disable_after_failures:
            return False
        reason = f"{endpoint.consecutive_failures} consecutive deliveries failed"
        await session.execute(
            endpoints.update()
            .where(endpoints.c.id == endpoint_id)
            .values(enabled=False, disabled_reason=reason, updated_at=now)
        )
        # What was still waiting goes to the dead letters, where it can be replayed once re-enabled.
        await session.execute(
            deliveries.update()
            .where(deliveries.c.endpoint_id == endpoint_id, deliveries.c.status == "pending")
            .values(status="dead", next_attempt_at=None, last_error="the endpoint was disabled")
        )
        since = utc(endpoint.failing_since)
        await host.publish(
            DISABLED_EVENT,
            {
                "endpoint_id": endpoint_id,
                "url": endpoint.url,
                "reason": reason,
                "consecutive_failures": endpoint.consecutive_failures,
                "failing_since": since.isoformat() if since else None,
            },
            subject=endpoint_id,
            session=session,
        )
        log.warning("webhooks: endpoint %s of tenant %s disabled: %s", endpoint_id, host.tenant.slug, reason)
        return True


def _secrets(row: Any) -> list[str]:
    found = [row.secret]
    expires = utc(row.previous_secret_expires_at)
    if row.previous_secret and expires is not None and expires > dt.datetime.now(dt.UTC):
        found.append(row.previous_secret)
    return found
