"""HTTP routes of the webhooks plugin, mounted by the host at ``/api/plugins/webhooks/``.

Every route needs ``webhooks:endpoint:manage``. An endpoint's secret is in the answer of its
creation and of each rotation, and never again.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any, Final

import attrs
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import plexica_sdk
from plexica_plugin_webhooks.delivery import DeliveryWorker, utc
from plexica_plugin_webhooks.models import deliveries, endpoints
from plexica_plugin_webhooks.signing import new_secret
from plexica_plugin_webhooks.ssrf import resolve
from plexica_sdk.errors import ConflictError, NotFoundError, ValidationError

__all__ = ["MANAGE", "build_routes"]

MANAGE: Final = "webhooks:endpoint:manage"
#: An exact event type (``notes.note.created``), a prefix pattern (``notes.*``) or ``*``.
_PATTERN_RE: Final = re.compile(r"^(\*|[a-z][a-z0-9-]*(\.[a-z0-9_-]+)*(\.\*)?)\Z")
_STATUSES: Final = ("pending", "succeeded", "failed", "dead")


def _patterns(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value)


def _check_patterns(_instance: Any, _attribute: Any, value: tuple[str, ...] | None) -> None:
    if value is None:
        return
    if not 1 <= len(value) <= 100:
        raise ValueError("event_types needs 1 to 100 entries")
    bad = [p for p in value if not _PATTERN_RE.match(p)]
    if bad:
        raise ValueError(f"not an event type or pattern (type, prefix.* or *): {bad}")


@attrs.frozen(kw_only=True)
class EndpointInput:
    """The body of ``POST /endpoints``."""

    url: str = attrs.field(validator=attrs.validators.max_len(2048))
    event_types: tuple[str, ...] = attrs.field(converter=_patterns, validator=_check_patterns)
    description: str = attrs.field(default="", validator=attrs.validators.max_len(500))


@attrs.frozen(kw_only=True)
class EndpointChange:
    """The body of ``PATCH /endpoints/{id}``: only the fields given change."""

    url: str | None = attrs.field(default=None, validator=attrs.validators.optional(attrs.validators.max_len(2048)))
    event_types: tuple[str, ...] | None = attrs.field(default=None, validator=_check_patterns)
    description: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.max_len(500))
    )
    enabled: bool | None = None


def _iso(value: dt.datetime | None) -> str | None:
    aware = utc(value)
    return aware.isoformat() if aware else None


def _endpoint(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "url": row.url,
        "event_types": list(row.event_types),
        "description": row.description,
        "enabled": row.enabled,
        "disabled_reason": row.disabled_reason,
        "consecutive_failures": row.consecutive_failures,
        "failing_since": _iso(row.failing_since),
        "created_by": row.created_by,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def _delivery(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "event_id": row.event_id,
        "event_type": row.event_type,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": _iso(row.next_attempt_at),
        "last_attempt_at": _iso(row.last_attempt_at),
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "created_at": _iso(row.created_at),
    }


def build_routes(worker: DeliveryWorker) -> list[Route]:
    """The plugin's routes, sharing ``worker`` (its settings, and the tenants it must look at)."""
    settings = worker.settings

    async def _manager(request: Request) -> plexica_sdk.Host:
        host = plexica_sdk.host(request)
        await host.require(MANAGE)
        worker.notify(host.tenant)  # the tenant is known now: its due retries resume
        return host

    async def _get(session: Any, endpoint_id: str) -> Any:
        row = (await session.execute(sa.select(endpoints).where(endpoints.c.id == endpoint_id))).first()
        if row is None:
            raise NotFoundError("webhook endpoint not found", resource="webhook-endpoint")
        return row

    async def list_endpoints(request: Request) -> JSONResponse:
        """The tenant's endpoints (without secrets), oldest first."""
        host = await _manager(request)
        async with host.session() as session:
            rows = (await session.execute(sa.select(endpoints).order_by(endpoints.c.created_at))).all()
        return JSONResponse({"items": [_endpoint(row) for row in rows]})

    async def create_endpoint(request: Request) -> JSONResponse:
        """Register an endpoint; the answer holds its secret, shown this once."""
        host = await _manager(request)
        body = await plexica_sdk.json_body(request, EndpointInput)
        await resolve(body.url, settings)  # refused URLs are a 422 naming the reason
        now = dt.datetime.now(dt.UTC)
        endpoint_id, secret = str(uuid.uuid4()), new_secret()
        values: dict[str, Any] = {
            "id": endpoint_id,
            "url": body.url,
            "event_types": list(body.event_types),
            "description": body.description,
            "secret": secret,
            "previous_secret": None,
            "previous_secret_expires_at": None,
            "enabled": True,
            "disabled_reason": None,
            "consecutive_failures": 0,
            "failing_since": None,
            "created_by": host.tenant.user.id if host.tenant.user else "system",
            "created_at": now,
            "updated_at": now,
        }
        async with host.session() as session:
            count = await session.scalar(sa.select(sa.func.count()).select_from(endpoints))
            if (count or 0) >= settings.max_endpoints:
                raise ConflictError(
                    f"this tenant may register at most {settings.max_endpoints} endpoints", resource="webhook-endpoint"
                )
            await session.execute(endpoints.insert().values(**values))
            row = await _get(session, endpoint_id)
        return JSONResponse({**_endpoint(row), "secret": secret}, status_code=201)

    async def get_endpoint(request: Request) -> JSONResponse:
        host = await _manager(request)
        async with host.session() as session:
            row = await _get(session, request.path_params["id"])
        return JSONResponse(_endpoint(row))

    async def update_endpoint(request: Request) -> JSONResponse:
        """Change an endpoint; enabling a disabled one clears its failure streak."""
        host = await _manager(request)
        change = await plexica_sdk.json_body(request, EndpointChange)
        if change.url is not None:
            await resolve(change.url, settings)
        values: dict[str, Any] = {"updated_at": dt.datetime.now(dt.UTC)}
        if change.url is not None:
            values["url"] = change.url
        if change.event_types is not None:
            values["event_types"] = list(change.event_types)
        if change.description is not None:
            values["description"] = change.description
        if change.enabled is True:
            values.update(enabled=True, disabled_reason=None, consecutive_failures=0, failing_since=None)
        elif change.enabled is False:
            values.update(enabled=False, disabled_reason="disabled by the tenant")
        async with host.session() as session:
            await _get(session, request.path_params["id"])
            await session.execute(
                endpoints.update().where(endpoints.c.id == request.path_params["id"]).values(**values)
            )
            row = await _get(session, request.path_params["id"])
        return JSONResponse(_endpoint(row))

    async def delete_endpoint(request: Request) -> Response:
        """Delete an endpoint and its delivery log."""
        host = await _manager(request)
        async with host.session() as session:
            await _get(session, request.path_params["id"])
            await session.execute(deliveries.delete().where(deliveries.c.endpoint_id == request.path_params["id"]))
            await session.execute(endpoints.delete().where(endpoints.c.id == request.path_params["id"]))
        return Response(status_code=204)

    async def rotate_secret(request: Request) -> JSONResponse:
        """A new secret; the previous one still signs (a second ``v1``) for the grace period."""
        host = await _manager(request)
        now = dt.datetime.now(dt.UTC)
        secret = new_secret()
        async with host.session() as session:
            row = await _get(session, request.path_params["id"])
            await session.execute(
                endpoints.update()
                .where(endpoints.c.id == row.id)
                .values(
                    secret=secret,
                    previous_secret=row.secret,
                    previous_secret_expires_at=now + dt.timedelta(seconds=settings.rotation_grace_seconds),
                    updated_at=now,
                )
            )
        expires = now + dt.timedelta(seconds=settings.rotation_grace_seconds)
        return JSONResponse({"id": row.id, "secret": secret, "previous_secret_expires_at": expires.isoformat()})

    async def list_deliveries(request: Request) -> JSONResponse:
        """An endpoint's delivery log, newest first; ``?status=dead`` lists its dead letters."""
        host = await _manager(request)
        status = request.query_params.get("status")
        if status is not None and status not in _STATUSES:
            raise ValidationError(f"status must be one of {', '.join(_STATUSES)}", field="status")
        limit = plexica_sdk.query_int(request, "limit", default=50, minimum=1, maximum=500)
        query = sa.select(deliveries).where(deliveries.c.endpoint_id == request.path_params["id"])
        if status is not None:
            query = query.where(deliveries.c.status == status)
        async with host.session() as session:
            await _get(session, request.path_params["id"])
            rows = (await session.execute(query.order_by(deliveries.c.created_at.desc()).limit(limit))).all()
        return JSONResponse({"items": [_delivery(row) for row in rows]})

    async def replay_delivery(request: Request) -> JSONResponse:
        """Send a failed or dead-lettered delivery again, with a fresh set of attempts."""
        host = await _manager(request)
        async with host.session() as session:
            row = (
                await session.execute(sa.select(deliveries).where(deliveries.c.id == request.path_params["id"]))
            ).first()
            if row is None:
                raise NotFoundError("webhook delivery not found", resource="webhook-delivery")
            if row.status not in ("failed", "dead"):
                raise ConflictError(
                    f"only failed or dead deliveries are replayed; this one is {row.status}",
                    resource="webhook-delivery",
                )
            endpoint = await _get(session, row.endpoint_id)
            if not endpoint.enabled:
                raise ConflictError("the endpoint is disabled: enable it first", resource="webhook-endpoint")
            await session.execute(
                deliveries.update()
                .where(deliveries.c.id == row.id)
                .values(status="pending", attempts=0, next_attempt_at=dt.datetime.now(dt.UTC), last_error=None)
            )
            replayed = (await session.execute(sa.select(deliveries).where(deliveries.c.id == row.id))).one()
        worker.notify(host.tenant)
        return JSONResponse(_delivery(replayed), status_code=202)

    return [
        Route("/endpoints", list_endpoints, methods=["GET"]),
        Route("/endpoints", create_endpoint, methods=["POST"]),
        Route("/endpoints/{id}", get_endpoint, methods=["GET"]),
        Route("/endpoints/{id}", update_endpoint, methods=["PATCH"]),
        Route("/endpoints/{id}", delete_endpoint, methods=["DELETE"]),
        Route("/endpoints/{id}/rotate-secret", rotate_secret, methods=["POST"]),
        Route("/endpoints/{id}/deliveries", list_deliveries, methods=["GET"]),
        Route("/deliveries/{id}/replay", replay_delivery, methods=["POST"]),
    ]
