"""Tracing: one trace from an HTTP request through the outbox and the bus to a plugin's handler.

The spans are read from the SDK's in-memory exporter; the request comes with a caller's W3C
``traceparent``, so the whole tree must hang off that caller's span.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import http.server
import json
import logging
import secrets
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio
import attrs
import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from plexica_plugin_notes import NotesPlugin
from starlette.applications import Starlette

from plexica import create_app, load_settings
from plexica.events.envelope import decode, encode
from plexica.events.outbox import from_envelope, to_envelope
from plexica.observability.logging import JsonFormatter
from plexica.platform import Platform
from plexica_sdk import EventTypeDef, Host, PluginManifest, Subscription, hookimpl
from plexica_sdk.errors import SettingsError
from plexica_sdk.types import Event, TenantContext
from tests.plexica.events.conftest import IDEMPOTENCE, unique

pytestmark = pytest.mark.anyio

audit_log = logging.getLogger("plexica.test.audit")


@attrs.define(eq=False)
class AuditPlugin:
    """Consumes the notes plugin's events and logs each one."""

    handled: list[Event] = attrs.Factory(list)
    arrived: asyncio.Event = attrs.Factory(asyncio.Event)

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="audit", version="1.0.0", event_types=[EventTypeDef(type="audit.entry.written")])

    @hookimpl
    def plexica_subscriptions(self) -> list[Subscription]:
        return [Subscription(event_type="notes.note.created", handler=self.handle, name="record")]

    @hookimpl
    async def plexica_tenant_provisioned(self, tenant: TenantContext) -> None:
        audit_log.info("tenant ready")

    async def handle(self, event: Event, host: Host) -> None:
        audit_log.info("audited %s", event.type)
        self.handled.append(event)
        self.arrived.set()


@attrs.define
class Traced:
    app: Starlette
    client: httpx2.AsyncClient
    spans: InMemorySpanExporter
    audit: AuditPlugin
    lines: list[str]

    @property
    def platform(self) -> Platform:
        return self.app.state.platform  # type: ignore[no-any-return]

    def token(self, tenant: str) -> str:
        issuer = self.platform.dev_issuer
        assert issuer is not None
        return issuer.mint(
            realm=f"tenant-{tenant}", subject="alice", username="alice", roles=["member", "notes-editor"]
        )


class _Lines(logging.Handler):
    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def _capture_lines(lines: list[str]) -> Iterator[None]:
    handler = _Lines(lines)
    logger = logging.getLogger("plexica.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def make_traced(tmp_path: Path) -> Callable[..., contextlib.AbstractAsyncContextManager[Traced]]:
    @contextlib.asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[Traced]:
        settings = load_settings(
            environ={},
            data_dir=str(tmp_path / "data"),
            load_entry_points=False,
            environment="test",
            tracing={"enabled": True, "exporter": "none"},
            **overrides,
        )
        audit = AuditPlugin()
        app = create_app(settings, plugins=[NotesPlugin(), audit])
        exporter = InMemorySpanExporter()
        app.state.tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
        lines: list[str] = []
        with _capture_lines(lines):
            async with app.router.lifespan_context(app):
                transport = httpx2.ASGITransport(app=app)
                async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
                    yield Traced(app, client, exporter, audit, lines)

    return make


def _by_id(spans: Sequence[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {span.context.span_id: span for span in spans if span.context is not None}


def _ancestors(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> list[str]:
    names: list[str] = []
    parent = span.parent
    while parent is not None and parent.span_id in spans:
        ancestor = spans[parent.span_id]
        names.append(ancestor.name)
        parent = ancestor.parent
    return names


def _one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


async def _post_note(traced: Traced, tenant: str) -> tuple[httpx2.Response, int, int]:
    caller_trace, caller_span = secrets.randbits(128) | 1, secrets.randbits(64) | 1
    traceparent = f"00-{caller_trace:032x}-{caller_span:016x}-01"
    response = await traced.client.post(
        "/api/plugins/notes/notes",
        json={"title": "traced"},
        headers={"Authorization": f"Bearer {traced.token(tenant)}", "traceparent": traceparent},
    )
    assert response.status_code == 201, response.text
    return response, caller_trace, caller_span


def _assert_request_tree(spans: Sequence[ReadableSpan], caller_trace: int, caller_span: int, slug: str) -> None:
    by_id = _by_id(spans)
    server = _one(spans, "POST /api/plugins/notes/notes")
    assert server.kind is SpanKind.SERVER
    assert server.context is not None and server.context.trace_id == caller_trace
    assert server.parent is not None and server.parent.span_id == caller_span  # the caller's traceparent
    attributes = dict(server.attributes or {})
    assert attributes["tenant.slug"] == slug
    assert attributes["user.id"] == "alice"
    assert attributes["http.route"] == "/api/plugins/notes/notes"
    tenant_id = attributes["tenant.id"]
    # SQLAlchemy's spans: inside the request, carrying the tenant and user.
    queries = [s for s in spans if s.kind is SpanKind.CLIENT and s.attributes and "db.system" in str(s.attributes)]
    in_request = [q for q in queries if server.name in _ancestors(q, by_id)]
    tenant_queries = [q for q in in_request if (q.attributes or {}).get("tenant.slug") == slug]
    assert tenant_queries, [s.name for s in spans]
    assert all((q.attributes or {}).get("user.id") == "alice" for q in tenant_queries)
    assert all(q.context is not None and q.context.trace_id == caller_trace for q in tenant_queries)
    relay = _one(spans, "notes.note.created publish")
    assert relay.kind is SpanKind.PRODUCER
    assert relay.parent is not None and relay.parent.span_id == server.context.span_id  # request → outbox → relay
    assert (relay.attributes or {})["tenant.id"] == tenant_id
    handler = _one(spans, "notes.note.created process")
    assert handler.kind is SpanKind.CONSUMER
    assert handler.context is not None and handler.context.trace_id == caller_trace
    assert "notes.note.created publish" in _ancestors(handler, by_id)  # relay → (broker) → handler
    handler_attributes = dict(handler.attributes or {})
    assert handler_attributes["plexica.plugin"] == "audit"
    assert handler_attributes["tenant.slug"] == slug
    assert handler_attributes["tenant.id"] == tenant_id
    assert handler_attributes["user.id"] == "alice"


async def test_a_request_event_and_handler_form_one_trace_on_the_in_process_bus(
    make_traced: Callable[..., contextlib.AbstractAsyncContextManager[Traced]],
) -> None:
    async with make_traced() as traced:
        await traced.platform.tenants.provision("acme")
        # notes implements the hook too (it publishes its remote entry): look at audit's span.
        spans = [s for s in traced.spans.get_finished_spans() if (s.attributes or {}).get("plexica.plugin") == "audit"]
        hook = _one(spans, "hook plexica_tenant_provisioned")
        assert (hook.attributes or {})["plexica.plugin"] == "audit"
        assert (hook.attributes or {})["tenant.slug"] == "acme"
        await traced.platform.relay.drain()  # core.tenant.created: a trace of its own
        await traced.platform.bus.join()  # type: ignore[attr-defined]  # MemoryEventBus
        traced.spans.clear()

        response, caller_trace, caller_span = await _post_note(traced, "acme")
        await traced.platform.relay.drain()
        await traced.platform.bus.join()  # type: ignore[attr-defined]  # MemoryEventBus

    assert response.headers["x-trace-id"] == f"{caller_trace:032x}"  # the correlation id is the trace id
    assert [event.traceid for event in traced.audit.handled] == [f"{caller_trace:032x}"]
    spans = traced.spans.get_finished_spans()
    _assert_request_tree(spans, caller_trace, caller_span, "acme")
    # The relay's own claim and mark queries join no trace, so they start none either.
    assert {span.context.trace_id for span in spans if span.context is not None} == {caller_trace}
    # The handler's log line carries the same ids as the request's, and its plugin.
    audited = [line for line in traced.lines if '"audited notes.note.created"' in line]
    assert len(audited) == 1
    assert f'"traceId":"{caller_trace:032x}"' in audited[0]
    assert '"tenantSlug":"acme"' in audited[0] and '"plugin":"audit"' in audited[0]


@pytest.mark.kafka
async def test_the_trace_crosses_kafka_headers_to_the_consumer(
    make_traced: Callable[..., contextlib.AbstractAsyncContextManager[Traced]], kafka_bootstrap: str
) -> None:
    events = {
        "backend": "kafka",
        "bootstrap_servers": kafka_bootstrap,
        "replication_factor": 1,
        "partitions": 1,
        "enable_idempotence": IDEMPOTENCE,
        "dead_letter_topic": unique("dlq-"),
        "kafka": {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "metadata_max_age_ms": 1000},
    }
    slug = unique("t")
    async with make_traced(events=events) as traced:
        await traced.platform.tenants.provision(slug)
        traced.spans.clear()
        _response, caller_trace, caller_span = await _post_note(traced, slug)
        await traced.platform.relay.drain()
        with anyio.fail_after(60):
            await traced.audit.arrived.wait()

    spans = traced.spans.get_finished_spans()
    _assert_request_tree(spans, caller_trace, caller_span, slug)
    by_id = _by_id(spans)
    handler = _one(spans, "notes.note.created process")
    # aiokafka's send span sits between the relay and the handler: the record's traceparent header.
    ancestors = _ancestors(handler, by_id)
    assert any(name.endswith(" send") for name in ancestors), ancestors
    assert ancestors[-1] == "POST /api/plugins/notes/notes"


def test_nothing_from_opentelemetry_is_imported_when_tracing_is_off(tmp_path: Path) -> None:
    script = f"""
import sys
from plexica import create_app, load_settings
from plexica.events.envelope import decode, encode
from plexica.events.outbox import from_envelope, to_envelope
settings = load_settings(environ={{}}, data_dir={str(tmp_path)!r}, load_entry_points=False, environment="test")
app = create_app(settings)
assert app.state.tracing is None
loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry"))
assert not loaded, loaded
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


async def test_two_apps_in_one_process_trace_only_the_enabled_one(
    make_traced: Callable[..., contextlib.AbstractAsyncContextManager[Traced]], tmp_path: Path
) -> None:
    plain_settings = load_settings(environ={}, data_dir=str(tmp_path / "plain"), load_entry_points=False)
    plain = create_app(plain_settings, plugins=[NotesPlugin()])
    assert plain.state.tracing is None

    async def serve_plain() -> int:
        # As a server runs each app: the untraced app's requests start from a context of their own.
        async with plain.router.lifespan_context(plain):
            await plain.state.platform.tenants.provision("plain")
            transport = httpx2.ASGITransport(app=plain)
            async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
                token = plain.state.platform.dev_issuer.mint(
                    realm="tenant-plain", subject="bob", roles=["member", "notes-editor"]
                )
                response = await client.post(
                    "/api/plugins/notes/notes", json={"title": "plain"}, headers={"Authorization": f"Bearer {token}"}
                )
            await plain.state.platform.relay.drain()
            await plain.state.platform.bus.join()
            assert len(response.headers["x-trace-id"]) == 32
            return response.status_code

    async with make_traced() as traced:
        await traced.platform.tenants.provision("acme")
        await traced.platform.relay.drain()  # its own core.tenant.created, handled by the notes plugin
        await traced.platform.bus.join()  # type: ignore[attr-defined]  # MemoryEventBus
        traced.spans.clear()
        status = await asyncio.create_task(serve_plain(), context=contextvars.Context())
        assert status == 201
        # Its request, queries, relay and handlers ran while the traced app's instrumentation was installed.
        assert [(s.name, dict(s.attributes or {})) for s in traced.spans.get_finished_spans()] == []
        _response, _trace, _span = await _post_note(traced, "acme")  # and the traced app still traces
        assert any(span.name == "POST /api/plugins/notes/notes" for span in traced.spans.get_finished_spans())


def test_the_traceparent_survives_the_outbox_envelope_and_the_kafka_headers() -> None:
    traceparent = f"00-{secrets.randbits(128) | 1:032x}-{secrets.randbits(64) | 1:016x}-01"
    event = Event(type="notes.note.created", source="/plugins/notes", data={"id": "n1"}, traceparent=traceparent)
    assert from_envelope(to_envelope(event)).traceparent == traceparent
    value, headers = encode(event)
    assert ("ce_traceparent", traceparent.encode()) in headers
    assert decode(value, headers).traceparent == traceparent
    legacy = json.loads(to_envelope(event))
    del legacy["traceparent"]  # rows written before the field existed
    assert from_envelope(json.dumps(legacy)).traceparent is None


def test_tracing_is_configured_from_the_environment() -> None:
    settings = load_settings(
        environ={"PLEXICA_TRACING__ENABLED": "true", "PLEXICA_TRACING__SAMPLER_RATIO": "0.25"}, load_entry_points=False
    )
    assert (settings.tracing.enabled, settings.tracing.sampler_ratio, settings.tracing.exporter) == (True, 0.25, "otlp")
    with pytest.raises(SettingsError):
        load_settings(environ={"PLEXICA_TRACING__SAMPLER_RATIO": "1.5"})


class _Collector(http.server.BaseHTTPRequestHandler):
    """A minimal OTLP/HTTP trace receiver: keeps each export request's span names."""

    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.received.extend(span.name for span in scope_spans.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextlib.contextmanager
def _collector(handler: type[_Collector]) -> Iterator[str]:
    """Serve ``handler`` on a loopback port; yields the OTLP/HTTP traces endpoint."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@contextlib.asynccontextmanager
async def _otlp_client(tmp_path: Path, endpoint: str) -> AsyncIterator[httpx2.AsyncClient]:
    """A client of an app exporting over OTLP/HTTP to ``endpoint``, inside its lifespan (leaving it flushes)."""
    settings = load_settings(
        environ={},
        data_dir=str(tmp_path),
        load_entry_points=False,
        environment="test",
        tracing={"enabled": True, "exporter": "otlp", "endpoint": endpoint, "service_name": "plexica-test"},
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def test_spans_are_exported_over_otlp_http(tmp_path: Path) -> None:
    with _collector(_Collector) as endpoint:
        async with _otlp_client(tmp_path, endpoint) as client:
            assert (await client.get("/openapi.json")).status_code == 200
        # Leaving the lifespan flushed the batch processor.
        assert "GET /openapi.json" in _Collector.received


class _StuckCollector(_Collector):
    """An OTLP/HTTP receiver that holds every export until the test releases it."""

    arrived: ClassVar[threading.Event] = threading.Event()
    release: ClassVar[threading.Event] = threading.Event()

    def do_POST(self) -> None:
        type(self).arrived.set()
        type(self).release.wait(60)
        super().do_POST()


async def test_requests_do_not_wait_for_an_export_in_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")  # the batch worker exports 10 ms after the first span
    _StuckCollector.received.clear()
    with _collector(_StuckCollector) as endpoint:
        try:
            async with _otlp_client(tmp_path, endpoint) as client:
                assert (await client.get("/openapi.json")).status_code == 200
                # The batch worker is now stuck in its export, inside the collector.
                assert await anyio.to_thread.run_sync(_StuckCollector.arrived.wait, 30)
                statuses = [(await client.get("/openapi.json")).status_code for _ in range(5)]
                assert not _StuckCollector.release.is_set()  # all answered while the export hung
                _StuckCollector.release.set()  # before the lifespan's end flushes
        finally:
            _StuckCollector.release.set()  # never leave the collector's handler thread waiting
    assert statuses == [200] * 5
    assert "GET /openapi.json" in _StuckCollector.received


def test_a_request_served_with_tracing_off_loads_no_opentelemetry(tmp_path: Path) -> None:
    """Serving, not only building: lifespan, provisioning and a tenant request import and instrument nothing."""
    script = f"""
import asyncio, sys
import httpx2
from plexica_plugin_notes import NotesPlugin
from plexica import create_app, load_settings
from plexica.observability import tracing

async def main():
    settings = load_settings(environ={{}}, data_dir={str(tmp_path)!r}, load_entry_points=False, environment="test")
    app = create_app(settings, plugins=[NotesPlugin()])
    async with app.router.lifespan_context(app):
        platform = app.state.platform
        await platform.tenants.provision("acme")
        token = platform.dev_issuer.mint(realm="tenant-acme", subject="alice", roles=["member", "notes-editor"])
        headers = {{"Authorization": f"Bearer {{token}}"}}
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            created = await client.post("/api/plugins/notes/notes", json={{"title": "t"}}, headers=headers)
            listed = await client.get("/api/plugins/notes/notes", headers=headers)
        await platform.relay.drain()
        assert (created.status_code, listed.status_code) == (201, 200), (created.text, listed.text)
        assert tracing.active.get() is None
    loaded = sorted(name for name in sys.modules if name.startswith("opentelemetry") or name.endswith("._otel"))
    assert not loaded, loaded
    print("ok")

asyncio.run(main())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
