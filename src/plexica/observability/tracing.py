"""OpenTelemetry tracing, switched per app and free when off.

:func:`build_tracing` returns ``None`` unless ``[tracing] enabled``; only then is OpenTelemetry
imported (by :mod:`plexica.observability._otel`). Each app with tracing sets :data:`active` for
its requests and for the background tasks its lifespan starts, so two apps in one process (a
benchmark building one with and one without tracing) never share spans: the helpers below read
:data:`active` and return at once when it is ``None``. That is the whole cost when tracing is off:
one context-variable read per hook call, handler call and relay batch, and nothing on the request
path, which gets no tracing middleware at all.

Context crosses every hop with the W3C ``traceparent``: HTTP (the ASGI instrumentation), events
(``Event.traceparent``, stored with the outbox row and sent as the ``ce_traceparent`` header),
Kafka records (the aiokafka instrumentation's ``traceparent`` header) and hook calls (the current
context). See ``docs/tracing.md``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING

from plexica_sdk.errors import MissingDependencyError

if TYPE_CHECKING:
    from plexica.observability._otel import Tracing
    from plexica.settings import TracingSettings
    from plexica_sdk.types import Event

__all__ = [
    "active",
    "build_tracing",
    "current_trace_id",
    "current_traceparent",
    "fresh_context",
    "handler_span",
    "hook_span",
    "record_context",
    "relay_spans",
    "untraced",
]

#: The tracing of the app the current request or background task belongs to; ``None``: not traced.
active: ContextVar[Tracing | None] = ContextVar("plexica_tracing", default=None)

_NULL: contextlib.nullcontext[None] = contextlib.nullcontext()


def build_tracing(settings: TracingSettings) -> Tracing | None:
    """The tracing ``settings`` ask for: ``None`` when disabled (nothing is imported or instrumented).

    Raises:
        MissingDependencyError: tracing is enabled but the ``otel`` extra is not installed.
    """
    if not settings.enabled:
        return None
    try:
        from plexica.observability import _otel
    except ImportError as exc:  # pragma: no cover - the extra is installed in development
        raise MissingDependencyError("otel", "opentelemetry") from exc
    return _otel.Tracing(settings)


@contextlib.contextmanager
def untraced() -> Iterator[None]:
    """Run a block as no app's traced work (an untraced app's lifespan, in a process with a traced one)."""
    token = active.set(None)
    try:
        yield
    finally:
        active.reset(token)


def fresh_context() -> contextvars.Context:
    """An empty context that keeps only the current app's tracing (for work isolated from its caller)."""
    ctx = contextvars.Context()
    tracing = active.get()
    if tracing is not None:
        ctx.run(active.set, tracing)
    return ctx


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits, or ``None`` when not traced."""
    tracing = active.get()
    return None if tracing is None else tracing.current_trace_id()


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, for an event about to be published."""
    tracing = active.get()
    return None if tracing is None else tracing.current_traceparent()


def hook_span(plugin: str, hook: str) -> contextlib.AbstractContextManager[None]:
    """A span around one plugin's implementation of ``hook`` (a no-op when not traced)."""
    tracing = active.get()
    return _NULL if tracing is None else tracing.hook_span(plugin, hook)


def handler_span(
    plugin: str, subscription: str, event: Event, topic: str, headers: Sequence[tuple[str, bytes]]
) -> contextlib.AbstractContextManager[None]:
    """A consumer span around one handler call, a child of the publisher's span."""
    tracing = active.get()
    return _NULL if tracing is None else tracing.handler_span(plugin, subscription, event, topic, headers)


def record_context(headers: Sequence[tuple[str, bytes]]) -> contextlib.AbstractContextManager[None]:
    """Make the span named by a record's ``ce_traceparent`` current while the record is sent."""
    tracing = active.get()
    return _NULL if tracing is None else tracing.record_context(headers)


@contextlib.contextmanager
def relay_spans(events: list[Event]) -> Iterator[list[Event]]:
    """Continue each stored event's trace with an outbox-relay span while the batch is published.

    Yields the events to publish: each traced one carries its relay span's ``traceparent``.
    """
    tracing = active.get()
    if tracing is None:
        yield events
        return
    with tracing.relay_spans(events) as relayed:
        yield relayed
