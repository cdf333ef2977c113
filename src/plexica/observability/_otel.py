"""Everything that imports OpenTelemetry: the per-app tracer provider, instrumentations, span helpers.

Imported only by :func:`plexica.observability.tracing.build_tracing` when tracing is enabled.

The contrib instrumentations do the work where one fits: ASGI (server spans, ``traceparent``
extraction) per app; SQLAlchemy (every engine, instrumented on its first connection, since the
host creates engines lazily, one per SQLite tenant), aiokafka (send/receive spans and the
``traceparent`` record header) and redis process-wide, once. The process-wide ones get a tracer
provider that asks :data:`~plexica.observability.tracing.active` which app's tracer to use on each
span, so an untraced app in the same process only ever gets non-recording spans. The host adds the
spans no library knows about: hook calls, outbox relay publishes and event handlers.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, final

import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plexica.observability import tracing as switch
from plexica.observability.logging import context_ids

if TYPE_CHECKING:
    from plexica.settings import TracingSettings
    from plexica_sdk.types import Event

__all__ = ["Tracing"]

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_NOOP_TRACER: Final = trace.NoOpTracer()
_CE_TRACEPARENT: Final = "ce_traceparent"


def _traceparent_of(span: trace.Span) -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return carrier.get("traceparent")


def _context_from(traceparent: str | None) -> otel_context.Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class _TenantAttributes(SpanProcessor):
    """Stamps ``tenant.id``, ``tenant.slug`` and ``user.id`` on every span started in a tenant's work."""

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        tenant_id, slug, user_id = context_ids()
        if tenant_id is None and user_id is None:
            return
        found = {"tenant.id": tenant_id, "tenant.slug": slug, "user.id": user_id}
        span.set_attributes({key: value for key, value in found.items() if value is not None})  # one lock, not three

    def on_end(self, span: ReadableSpan) -> None:
        return None


@final
class Tracing:
    """One app's tracing: its tracer provider (sampler, exporter) and the spans the host adds.

    Args:
        settings: ``[tracing]``; must be enabled.
    """

    def __init__(self, settings: TracingSettings) -> None:
        self.settings = settings
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            # Always-on skips the ratio sampler's per-span trace-id arithmetic.
            sampler=ParentBased(
                ALWAYS_ON if settings.sampler_ratio >= 1.0 else TraceIdRatioBased(settings.sampler_ratio)
            ),
        )
        self.provider.add_span_processor(_TenantAttributes())
        self._export = _Export(settings)
        self.provider.add_span_processor(self._export)
        self.tracer = self.provider.get_tracer("plexica")
        self._tracers: dict[tuple[str, str | None, str | None], trace.Tracer] = {}
        _install_process_instrumentations()

    def tracer_for(self, name: str, version: str | None, schema_url: str | None) -> trace.Tracer:
        """This app's tracer for an instrumentation library (cached)."""
        key = (name, version, schema_url)
        found = self._tracers.get(key)
        if found is None:
            found = self._tracers[key] = self.provider.get_tracer(name, version, schema_url=schema_url)
        return found

    # --------------------------------------------------------------- lifetime

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """The app behind this tracing's server spans (the outermost stage of the request path)."""
        inner = OpenTelemetryMiddleware(
            _ServerSpanAttributes(app),
            tracer_provider=self.provider,
            meter_provider=NoOpMeterProvider(),  # the host's own metrics already count requests
            exclude_spans=["receive", "send"],
        )
        return _Activate(inner, self)

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        """Trace the work started inside (the lifespan: relay, consumers, hooks); opens the exporter."""
        self._export.open()
        token = switch.active.set(self)
        try:
            yield
        finally:
            switch.active.reset(token)

    def close(self) -> None:
        """Export what is left and close the exporter (blocking: call it in a thread); ``activate`` reopens it."""
        self._export.close()

    # ------------------------------------------------------------------ spans

    def current_trace_id(self) -> str | None:
        span_context = trace.get_current_span().get_span_context()
        return format(span_context.trace_id, "032x") if span_context.is_valid else None

    def current_traceparent(self) -> str | None:
        span = trace.get_current_span()
        return _traceparent_of(span) if span.get_span_context().is_valid else None

    @contextlib.contextmanager
    def hook_span(self, plugin: str, hook: str) -> Iterator[None]:
        with self.tracer.start_as_current_span(
            f"hook {hook}", attributes={"plexica.plugin": plugin, "plexica.hook": hook}
        ):
            yield

    @contextlib.contextmanager
    def handler_span(
        self, plugin: str, subscription: str, event: Event, topic: str, headers: Sequence[tuple[str, bytes]]
    ) -> Iterator[None]:
        # The Kafka instrumentation's header names the send span; the event's own, the publisher.
        parent = _context_from(_header(headers, "traceparent") or event.traceparent)
        attributes: dict[str, str] = {
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.message.id": event.id,
            "cloudevents.event_type": event.type,
            "plexica.plugin": plugin,
            "plexica.subscription": subscription,
        }
        if event.userid is not None:  # handlers run for the tenant, not as the user: name who caused it
            attributes["user.id"] = event.userid
        with self.tracer.start_as_current_span(
            f"{event.type} process", context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
        ):
            yield

    @contextlib.contextmanager
    def record_context(self, headers: Sequence[tuple[str, bytes]]) -> Iterator[None]:
        parent = _context_from(_header(headers, _CE_TRACEPARENT))
        if parent is None:
            yield
            return
        token = otel_context.attach(parent)
        try:
            yield
        finally:
            otel_context.detach(token)

    @contextlib.contextmanager
    def relay_spans(self, events: list[Event]) -> Iterator[list[Event]]:
        spans: list[trace.Span] = []
        relayed: list[Event] = []
        for event in events:
            parent = _context_from(event.traceparent)
            if parent is None:  # published untraced: nothing to continue
                relayed.append(event)
                continue
            span = self.tracer.start_span(
                f"{event.type} publish",
                context=parent,
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.operation.type": "send",
                    "messaging.message.id": event.id,
                    "cloudevents.event_type": event.type,
                    "plexica.outbox": True,
                    # The relay works outside any tenant context: the event says whose it is.
                    **({"tenant.id": event.tenantid} if event.tenantid is not None else {}),
                    **({"user.id": event.userid} if event.userid is not None else {}),
                },
            )
            spans.append(span)
            traceparent = _traceparent_of(span) if span.get_span_context().is_valid else event.traceparent
            relayed.append(attrs.evolve(event, traceparent=traceparent))
        try:
            yield relayed
        except BaseException as exc:
            for span in spans:
                span.record_exception(exc)
                span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            for span in spans:
                span.end()


class _Export(SpanProcessor):
    """The exporter's batch processor, alive from the lifespan's start to its end (its HTTP session too)."""

    def __init__(self, settings: TracingSettings) -> None:
        self._settings = settings
        self._batch: BatchSpanProcessor | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            if self._batch is None:
                exporter = _exporter(self._settings)
                self._batch = None if exporter is None else BatchSpanProcessor(exporter)

    def close(self) -> None:
        with self._lock:
            batch, self._batch = self._batch, None
        if batch is not None:
            batch.shutdown()  # type: ignore[no-untyped-call]  # flushes, then closes the exporter

    def on_end(self, span: ReadableSpan) -> None:
        batch = self._batch
        if batch is not None:
            batch.on_end(span)

    def shutdown(self) -> None:
        self.close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        batch = self._batch
        return True if batch is None else batch.force_flush(timeout_millis)


def _exporter(settings: TracingSettings) -> SpanExporter | None:
    if settings.exporter == "console":
        return ConsoleSpanExporter(service_name=settings.service_name)
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=settings.endpoint) if settings.endpoint else OTLPSpanExporter()
    return None


@final
class _Activate:
    """Marks a request as this app's traced work, outside the ASGI instrumentation's server span."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = switch.active.set(self.tracing)
        try:
            await self.app(scope, receive, send)
        finally:
            switch.active.reset(token)


@final
class _ServerSpanAttributes:
    """Names the server span by its route template and stamps the tenant and user the request resolved.

    Runs inside the server span; the tenant is known only once the inner stages ran, so the
    attributes are set when the response starts (the span is still open then).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        span = trace.get_current_span()

        async def stamping_send(message: Message) -> None:
            if message["type"] == "http.response.start" and span.is_recording():
                _stamp(span, scope)
            await send(message)

        await self.app(scope, receive, stamping_send)


def _stamp(span: trace.Span, scope: Scope) -> None:
    state = scope.get("plexica")
    tenant = getattr(state, "tenant", None)
    principal = getattr(state, "principal", None)
    if tenant is not None:
        span.set_attribute("tenant.id", tenant.id)
        span.set_attribute("tenant.slug", tenant.slug)
    if principal is not None:
        span.set_attribute("user.id", principal.id)
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        template = scope.get("root_path", "") + path
        span.set_attribute("http.route", template)
        span.update_name(f"{scope.get('method', 'HTTP')} {template}")


# ------------------------------------------------------- process-wide instrumentation


class _ActiveTracer(trace.Tracer):
    """A library's tracer that defers, per span, to the tracer of the app whose work is running.

    Library spans only join a trace, never start one: a query, cache call or poll with no span
    around it (the relay's claim queries, the cache's invalidation listener) records nothing,
    so background polling does not flood the backend with one-span traces.
    """

    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        self._key = (name, version, schema_url)

    def _resolve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> trace.Tracer:
        tracing = switch.active.get()
        if tracing is None:
            return _NOOP_TRACER
        parent = kwargs.get("context", args[0] if args else None)
        if not trace.get_current_span(parent).get_span_context().is_valid:
            return _NOOP_TRACER
        return tracing.tracer_for(*self._key)

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> trace.Span:
        return self._resolve(args, kwargs).start_span(name, *args, **kwargs)

    @contextlib.contextmanager
    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[trace.Span]:  # type: ignore[override]
        with self._resolve(args, kwargs).start_as_current_span(name, *args, **kwargs) as span:
            yield span


class _ActiveTracerProvider(trace.TracerProvider):
    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes | None = None,
    ) -> trace.Tracer:
        return _ActiveTracer(instrumenting_module_name, instrumenting_library_version, schema_url)


_installed = False
_install_lock = threading.Lock()


def _install_process_instrumentations() -> None:
    """Instrument SQLAlchemy, aiokafka and redis once per process (the first traced app does it)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        provider = _ActiveTracerProvider()
        _instrument_sqlalchemy(provider)
        with contextlib.suppress(ImportError):  # the kafka extra is optional
            from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor

            AIOKafkaInstrumentor().instrument(tracer_provider=provider)
        with contextlib.suppress(ImportError):  # the redis extra is optional
            from opentelemetry.instrumentation.redis import RedisInstrumentor

            RedisInstrumentor().instrument(tracer_provider=provider)


def _instrument_sqlalchemy(provider: trace.TracerProvider) -> None:
    # The host's engines are created lazily (one per SQLite tenant file), so each is instrumented
    # by the contrib EngineTracer on its first connection rather than by wrapping create_engine.
    import sqlalchemy as sa
    from opentelemetry.instrumentation.sqlalchemy.version import __version__ as sa_instr_version

    tracer = provider.get_tracer("opentelemetry.instrumentation.sqlalchemy", sa_instr_version)
    engine_tracer = _lean_engine_tracer()
    seen: weakref.WeakSet[sa.engine.Engine] = weakref.WeakSet()
    lock = threading.Lock()

    def on_connect(connection: sa.engine.Connection) -> None:
        engine = connection.engine
        # Only a traced app's engines: they first connect in its lifespan or requests, and an
        # untraced app's engines keep no per-query listener at all.
        if engine in seen or switch.active.get() is None:
            return
        with lock:
            if engine not in seen:
                seen.add(engine)
                engine_tracer(tracer, engine)

    sa.event.listen(sa.engine.Engine, "engine_connect", on_connect)


def _lean_engine_tracer() -> Any:
    """The contrib ``EngineTracer``, minus the per-statement work that tells an operator nothing.

    The benchmark (``benchmarks/observability_bench.py``) found the query span the largest cost of
    tracing a request. The contrib tracer recomputes the engine's connection attributes for every
    statement, sets each attribute under the span's lock after the span started, makes the span
    current only for the SQL commenter (off here), and keeps four pool listeners feeding a
    connection-usage counter that goes to a no-op meter (the host's own metrics count queries).
    This subclass keeps its span (name, kind, ``db.*`` attributes from the same semantic-convention
    helpers, end and error handling) and does that work once per engine, passing every attribute
    at span creation.
    """
    from opentelemetry.instrumentation._semconv import _set_db_operation, _set_db_statement, _set_db_system
    from opentelemetry.instrumentation.sqlalchemy import engine as contrib
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled

    usage = NoOpMeterProvider().get_meter("plexica").create_up_down_counter("db.client.connections.usage")

    class LeanEngineTracer(contrib.EngineTracer):
        def __init__(self, tracer: trace.Tracer, engine: Any) -> None:
            self._static: dict[str, Any] | None = None
            self._db_name: str | None = None
            super().__init__(tracer, engine, usage)  # type: ignore[no-untyped-call]

        @classmethod
        def _register_event_listener(cls, target: Any, identifier: str, func: Any, *args: Any, **kw: Any) -> None:
            if identifier not in _POOL_EVENTS:
                super()._register_event_listener(target, identifier, func, *args, **kw)  # type: ignore[no-untyped-call]

        def _connection_attributes(self, conn: Any, cursor: Any) -> dict[str, Any]:
            db_mode, http_mode = self._sem_conv_opt_in_mode_db, self._sem_conv_opt_in_mode_http
            found: dict[str, Any]
            found, from_url = contrib._get_attributes_from_url(conn.engine.url, db_mode, http_mode)  # type: ignore[no-untyped-call]
            if not from_url:
                found = contrib._get_attributes_from_cursor_or_conn(  # type: ignore[no-untyped-call]
                    self.vendor, conn, cursor, found, db_mode, http_mode
                )
            _set_db_system(found, self.vendor, db_mode)
            self._db_name = contrib._get_db_name_from_cursor_or_conn(self.vendor, conn, cursor)  # type: ignore[no-untyped-call]
            return found

        def _before_cur_exec(
            self, conn: Any, cursor: Any, statement: Any, params: Any, context: Any, _executemany: bool
        ) -> tuple[Any, Any]:
            if not is_instrumentation_enabled():
                return statement, params
            static = self._static
            if static is None:  # an engine's URL, database and server do not change between statements
                static = self._static = self._connection_attributes(conn, cursor)
            attributes = dict(static)
            name: str = self._operation_name(self._db_name, statement)  # type: ignore[no-untyped-call]
            _set_db_statement(attributes, statement, self._sem_conv_opt_in_mode_db)
            _set_db_operation(attributes, name, self._sem_conv_opt_in_mode_db)
            context._otel_span = self.tracer.start_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes)
            return statement, params

    return LeanEngineTracer


_POOL_EVENTS: Final = frozenset({"connect", "close", "checkin", "checkout"})
