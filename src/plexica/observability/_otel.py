"""Everything that imports OpenTelemetry: the per-app tracer provider, instrumentations, span helpers.

Imported only by :func:`plexica.observability.tracing.build_tracing` when tracing is enabled.

The contrib instrumentations do the work where one fits: SQLAlchemy (every engine, instrumented
on its first connection, since the host creates engines lazily, one per SQLite tenant), aiokafka
(send/receive spans and the ``traceparent`` record header) and redis, process-wide, once. They get
a tracer provider that asks :data:`~plexica.observability.tracing.active` which app's tracer to use
on each span, so an untraced app in the same process only ever gets non-recording spans. The host
adds the spans no library knows about: the server span of each request (:class:`_ServerSpans`,
which replaced the contrib ASGI middleware: that cost about 150 µs a request, most of the
tracing budget), hook calls, outbox relay publishes and event handlers.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, final

import attrs
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes, AttributeValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plexica.observability import tracing as switch
from plexica.observability.logging import context_ids
from plexica.observability.metrics import UNMATCHED_ROUTE

if TYPE_CHECKING:
    from plexica.http.route_templates import RouteTemplates
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


_TENANT_KEYS: Final = ("tenant.id", "tenant.slug", "user.id")


def _tenant_attributes(attributes: dict[str, AttributeValue]) -> None:
    """Add the tenant context's ``tenant.id``, ``tenant.slug`` and ``user.id`` (those set) to ``attributes``."""
    for key, value in zip(_TENANT_KEYS, context_ids(), strict=True):
        if value is not None:
            attributes[key] = value


class _TenantAttributes(SpanProcessor):
    """Stamps ``tenant.id``, ``tenant.slug`` and ``user.id`` on every span started in a tenant's work.

    A span the host already stamped at creation (the query spans) is left alone: a second
    ``set_attributes`` would only take the span's lock and validate the same values again.
    """

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        attributes = span.attributes
        if attributes is not None and "tenant.id" in attributes:
            return
        found: dict[str, AttributeValue] = {}
        _tenant_attributes(found)
        if found:
            span.set_attributes(found)  # one lock, not three

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
            sampler=_PARENT_OR_ALWAYS_ON
            if settings.sampler_ratio >= 1.0
            else ParentBased(TraceIdRatioBased(settings.sampler_ratio)),
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

    def wrap(self, app: ASGIApp, *, routes: RouteTemplates) -> ASGIApp:
        """The app behind this tracing's server spans (the outermost stage of the request path).

        ``routes`` names each span by the mounted route template, as the HTTP metrics label it.
        """
        return _ServerSpans(app, self, routes)

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


@final
class _ParentOrAlwaysOn(Sampler):
    """``ParentBased(ALWAYS_ON)`` in one call: follow a parent's sampled flag, sample every new trace.

    The SDK's pair reads the parent span twice (once for the decision, once for the trace state)
    and dispatches to a second sampler; this makes the same decision with one read.
    """

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, None)
        if parent.trace_flags.sampled:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, parent.trace_state)
        return SamplingResult(Decision.DROP, None, parent.trace_state)

    def get_description(self) -> str:
        return "ParentBased{root:AlwaysOnSampler}"


_PARENT_OR_ALWAYS_ON: Final = _ParentOrAlwaysOn()


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


#: The methods semantic conventions name; any other is ``_OTHER`` (a bounded span name and attribute).
_KNOWN_METHODS: Final = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
#: The base of an incoming request's context: a new root, never whatever span the server task had.
_ROOT: Final = otel_context.Context()
_SERVER: Final = trace.SpanKind.SERVER
_CLIENT: Final = trace.SpanKind.CLIENT
_ERROR: Final = trace.StatusCode.ERROR


@final
class _ServerSpans:
    """The server span of each HTTP request, current while the inner stages run; marks the request as traced.

    A lean stand-in for the contrib ASGI middleware (which cost about 150 µs a request): one pass
    over the headers picks the host and the propagator's headers (``traceparent``, ``tracestate``,
    ``baggage`` by default: whatever the global propagator reads), the span gets its request
    attributes at creation, and the response start adds the status, the route template and the
    tenant and user the inner stages resolved in one call. It ends exactly once, when the inner
    app returns or raises (a client gone mid-response included).
    """

    def __init__(self, app: ASGIApp, tracing: Tracing, routes: RouteTemplates) -> None:
        self.app = app
        self.tracing = tracing
        self.tracer = tracing.tracer
        self.routes = routes
        self._propagator: TextMapPropagator | None = None
        self._fields: frozenset[bytes] = frozenset()

    def _propagation(self) -> tuple[TextMapPropagator, frozenset[bytes]]:
        """The global propagator and the header names it reads (recomputed only if it was replaced)."""
        propagator = propagate.get_global_textmap()
        if propagator is not self._propagator:
            self._fields = frozenset(field.lower().encode("latin-1") for field in propagator.fields)
            self._propagator = propagator
        return propagator, self._fields

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = switch.active.set(self.tracing)
        try:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            propagator, fields = self._propagation()
            carrier: dict[str, list[str]] | None = None
            host: bytes | None = None
            for key, value in scope["headers"]:
                if key == b"host":
                    host = value
                elif key in fields:
                    carrier = carrier or {}
                    carrier.setdefault(key.decode("latin-1"), []).append(value.decode("latin-1"))
            parent = _ROOT if carrier is None else propagator.extract(carrier, context=_ROOT)
            method = scope["method"]
            attributes: dict[str, AttributeValue] = {
                "http.request.method": method,
                "url.scheme": scope.get("scheme", "http"),
                "url.path": scope["path"],
            }
            if method not in _KNOWN_METHODS:
                attributes["http.request.method"] = "_OTHER"
                attributes["http.request.method_original"] = method
                method = "HTTP"
            _server_address(attributes, host, scope)
            span = self.tracer.start_span(method, context=parent, kind=_SERVER, attributes=attributes)
            context_token = otel_context.attach(trace.set_span_in_context(span, parent))
            root_path = scope.get("root_path", "")

            started = False

            async def traced_send(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                    self._respond(span, scope, root_path, method, message["status"])
                await send(message)

            try:
                await self.app(scope, receive, traced_send)
            except BaseException as exc:
                failed: dict[str, AttributeValue] = {"error.type": _qualname(type(exc))}
                if not started:  # raised before any response: still named by the route it reached
                    self._route(span, scope, root_path, method, failed)
                span.record_exception(exc, escaped=True)
                span.set_attributes(failed)
                span.set_status(_ERROR, f"{type(exc).__name__}: {exc}")
                raise
            finally:
                span.end()
                otel_context.detach(context_token)
        finally:
            switch.active.reset(token)

    def _respond(self, span: trace.Span, scope: Scope, root_path: str, method: str, status: int) -> None:
        """What the response start tells: status, route template, and the tenant and user resolved by now."""
        attributes: dict[str, AttributeValue] = {"http.response.status_code": status}
        self._route(span, scope, root_path, method, attributes)
        state = scope.get("plexica")
        tenant = getattr(state, "tenant", None)
        principal = getattr(state, "principal", None)
        if tenant is not None:
            attributes["tenant.id"] = tenant.id
            attributes["tenant.slug"] = tenant.slug
        if principal is not None:
            attributes["user.id"] = principal.id
        if status >= 500:
            attributes["error.type"] = str(status)
            span.set_status(_ERROR)
        span.set_attributes(attributes)  # one lock, not one per attribute

    def _route(
        self, span: trace.Span, scope: Scope, root_path: str, method: str, attributes: dict[str, AttributeValue]
    ) -> None:
        template = self.routes.of(scope, root_path)
        if template != UNMATCHED_ROUTE:  # an unmatched path keeps the bare method: a bounded name
            attributes["http.route"] = template
            span.update_name(f"{method} {template}")


def _server_address(attributes: dict[str, AttributeValue], host: bytes | None, scope: Scope) -> None:
    """``server.address`` (and ``server.port`` when named) from the ``Host`` header, else the ASGI server."""
    if host is None:
        server = scope.get("server")
        if server:
            attributes["server.address"] = server[0]
            if server[1] is not None:
                attributes["server.port"] = server[1]
        return
    text = host.decode("latin-1")
    name, colon, port = text.rpartition(":") if not text.endswith("]") else ("", "", "")
    if not colon or not port.isdigit():  # no port, or an IPv6 literal without one
        name, port = text, ""
    attributes["server.address"] = name.strip("[]")
    if port:
        attributes["server.port"] = int(port)


def _qualname(cls: type[BaseException]) -> str:
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


# ------------------------------------------------------- process-wide instrumentation


class _ActiveTracer(trace.Tracer):
    """A library's tracer that defers, per span, to the tracer of the app whose work is running.

    Library spans only join a trace, never start one: a query, cache call or poll with no span
    around it (the relay's claim queries, the cache's invalidation listener) records nothing,
    so background polling does not flood the backend with one-span traces.
    """

    def __init__(self, name: str, version: str | None, schema_url: str | None) -> None:
        self._key = (name, version, schema_url)

    def joining(self, parent: otel_context.Context | None = None) -> trace.Tracer | None:
        """The running app's tracer when there is a span to join, else ``None`` (nothing to record)."""
        tracing = switch.active.get()
        if tracing is None or not trace.get_current_span(parent).get_span_context().is_valid:
            return None
        return tracing.tracer_for(*self._key)

    def _resolve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> trace.Tracer:
        found = self.joining(kwargs.get("context", args[0] if args else None))
        return _NOOP_TRACER if found is None else found

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
            # No traced app, or no span to join (a relay poll): no attributes, name or span at all.
            tracer = self.tracer.joining() if isinstance(self.tracer, _ActiveTracer) else self.tracer
            if tracer is None or not is_instrumentation_enabled():
                return statement, params
            static = self._static
            if static is None:  # an engine's URL, database and server do not change between statements
                static = self._static = self._connection_attributes(conn, cursor)
            attributes = dict(static)
            name: str = self._operation_name(self._db_name, statement)  # type: ignore[no-untyped-call]
            _set_db_statement(attributes, statement, self._sem_conv_opt_in_mode_db)
            _set_db_operation(attributes, name, self._sem_conv_opt_in_mode_db)
            _tenant_attributes(attributes)  # at creation: the tenant processor then has nothing to add
            context._otel_span = tracer.start_span(name, kind=_CLIENT, attributes=attributes)
            return statement, params

    return LeanEngineTracer


_POOL_EVENTS: Final = frozenset({"connect", "close", "checkin", "checkout"})
