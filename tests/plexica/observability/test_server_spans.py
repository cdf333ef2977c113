"""The server span of each request (``_otel._ServerSpans``), read from the SDK's in-memory exporter.

A small Starlette app behind the tracing stage and the ``X-Trace-ID`` stage, as ``create_app``
stacks them: the caller's ``traceparent`` is continued, the span is named by the mounted route
template, 5xx and exceptions mark it failed, host spans nest under it, and it ends exactly once,
after the last byte (a client gone mid-response included). The full host's trace tree is in
``test_tracing.py``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import httpx2
import pytest
from opentelemetry import baggage, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from plexica.http.middleware import TraceIdMiddleware
from plexica.http.route_templates import RouteTemplates
from plexica.observability import tracing as switch
from plexica.observability._otel import Tracing
from plexica.settings import TracingSettings

pytestmark = pytest.mark.anyio


async def _item(request: Request) -> Response:
    return PlainTextResponse(request.path_params["id"])


async def _hooked(request: Request) -> Response:
    with switch.hook_span("audit", "plexica_probe"):
        inside = switch.current_trace_id()
    return JSONResponse({"trace": inside, "baggage": baggage.get_baggage("plan")})


async def _unavailable(request: Request) -> Response:
    return PlainTextResponse("down", status_code=503)


async def _refused(request: Request) -> Response:
    return PlainTextResponse("no", status_code=403)


async def _broken(request: Request) -> Response:
    raise RuntimeError("the handler broke")


async def _stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first"
        yield b"second"

    return StreamingResponse(chunks())


ROUTES = [
    Route("/hooked", _hooked),
    Route("/unavailable", _unavailable),
    Route("/refused", _refused, methods=["POST"]),
    Route("/broken", _broken),
    Route("/stream", _stream),
    Mount("/api/things", routes=[Route("/{id}", _item)]),
]


@attrs.define
class Served:
    app: Starlette
    tracing: Tracing
    exporter: InMemorySpanExporter
    client: httpx2.AsyncClient

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def server(self) -> ReadableSpan:
        found = [span for span in self.spans() if span.kind is SpanKind.SERVER]
        assert len(found) == 1, [span.name for span in self.spans()]
        return found[0]


@pytest.fixture
def span_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The SDK logs (never raises) an end or attribute on an ended span: none may be logged."""
    with caplog.at_level(logging.WARNING, logger="opentelemetry"):
        yield
    assert [r.getMessage() for r in caplog.records if r.name.startswith("opentelemetry")] == []


@pytest.fixture
async def served(span_warnings: None) -> AsyncIterator[Served]:
    tracing = switch.build_tracing(TracingSettings(enabled=True, exporter="none"))
    assert tracing is not None
    exporter = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Starlette(
        routes=ROUTES,
        middleware=[Middleware(tracing.wrap, routes=RouteTemplates(ROUTES)), Middleware(TraceIdMiddleware)],
    )
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Served(app, tracing, exporter, client)


def _traceparent() -> tuple[str, int, int]:
    trace_id, span_id = secrets.randbits(128) | 1, secrets.randbits(64) | 1
    return f"00-{trace_id:032x}-{span_id:016x}-01", trace_id, span_id


async def test_the_server_span_continues_the_callers_traceparent_and_tracestate(served: Served) -> None:
    traceparent, trace_id, span_id = _traceparent()
    response = await served.client.get(
        "/api/things/7",
        headers={"traceparent": traceparent, "tracestate": "vendor=abc", "host": "api.example.com:8443"},
    )
    assert response.status_code == 200
    span = served.server()
    assert span.context is not None and span.context.trace_id == trace_id
    assert span.parent is not None and span.parent.span_id == span_id and span.parent.is_remote
    assert span.context.trace_state.get("vendor") == "abc"
    assert response.headers["x-trace-id"] == f"{trace_id:032x}"  # the correlation id is the trace id
    assert span.name == "GET /api/things/{id}"
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/api/things/7",
        "server.address": "api.example.com",
        "server.port": 8443,
        "http.route": "/api/things/{id}",
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET


async def test_without_a_traceparent_the_request_starts_a_trace_of_its_own(served: Served) -> None:
    # The caller's ambient span (a test's, a server task's) is no parent of an incoming request.
    with served.tracing.tracer.start_as_current_span("ambient"):
        response = await served.client.get("/api/things/1", headers={"host": "[::1]"})
    span = served.server()
    assert span.parent is None
    assert span.context is not None and response.headers["x-trace-id"] == f"{span.context.trace_id:032x}"
    assert (span.attributes or {})["server.address"] == "::1"
    assert "server.port" not in (span.attributes or {})


async def test_host_spans_nest_under_the_server_span_and_baggage_arrives(served: Served) -> None:
    traceparent, trace_id, _span_id = _traceparent()
    response = await served.client.get("/hooked", headers={"traceparent": traceparent, "baggage": "plan=gold"})
    assert response.json() == {"trace": f"{trace_id:032x}", "baggage": "gold"}
    server = served.server()
    hooks = [span for span in served.spans() if span.name == "hook plexica_probe"]
    assert len(hooks) == 1
    assert server.context is not None and hooks[0].parent is not None
    assert hooks[0].parent.span_id == server.context.span_id
    assert (hooks[0].attributes or {})["plexica.plugin"] == "audit"


@pytest.mark.parametrize(
    ("method", "path", "status", "name", "failed"),
    [
        ("GET", "/unavailable", 503, "GET /unavailable", True),
        ("POST", "/refused", 403, "POST /refused", False),  # a client's error is no server failure
        ("DELETE", "/refused", 405, "DELETE /refused", False),
        ("GET", "/nowhere", 404, "GET", False),  # unmatched: the bare method, never the raw path
        ("PURGE", "/nowhere", 404, "HTTP", False),  # an unknown method: a bounded name too
    ],
)
async def test_the_status_names_and_marks_the_span(
    served: Served, method: str, path: str, status: int, name: str, failed: bool
) -> None:
    response = await served.client.request(method, path)
    assert response.status_code == status
    span = served.server()
    attributes = dict(span.attributes or {})
    assert span.name == name
    assert attributes["http.response.status_code"] == status
    assert ("http.route" in attributes) is (name not in {"GET", "HTTP"})
    if method == "PURGE":
        assert (attributes["http.request.method"], attributes["http.request.method_original"]) == ("_OTHER", "PURGE")
    assert span.status.status_code is (StatusCode.ERROR if failed else StatusCode.UNSET)
    assert attributes.get("error.type") == (str(status) if failed else None)


async def test_an_exception_marks_the_span_and_it_ends_once(served: Served) -> None:
    with pytest.raises(RuntimeError, match="the handler broke"):
        await served.client.get("/broken")
    span = served.server()  # exactly one, and the fixture checks no second end was attempted
    assert span.name == "GET /broken"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "RuntimeError: the handler broke"
    assert (span.attributes or {})["error.type"] == "RuntimeError"
    assert [event.name for event in span.events] == ["exception"]
    assert span.end_time is not None


async def _raw(
    app: Starlette, path: str, fail_on: int | None = None
) -> tuple[list[Message], list[int], BaseException | None]:
    """One GET straight into the app; ``fail_on``: the index of the sent message that finds the client gone."""
    sent: list[Message] = []
    times: list[int] = []
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if fail_on is not None and len(sent) == fail_on:
            raise OSError("the client went away")
        sent.append(message)
        times.append(time.time_ns())

    try:
        await app(scope, receive, send)
    except Exception as exc:
        return sent, times, exc
    return sent, times, None


async def test_the_span_ends_after_the_last_byte_of_a_streamed_response(served: Served) -> None:
    sent, times, failure = await _raw(served.app, "/stream")
    assert failure is None
    assert [m.get("body") for m in sent if m["type"] == "http.response.body"][:2] == [b"first", b"second"]
    span = served.server()
    assert span.end_time is not None and span.end_time >= times[-1]
    assert span.status.status_code is StatusCode.UNSET


async def test_a_client_gone_mid_response_ends_the_span_once_as_failed(served: Served) -> None:
    sent, _times, failure = await _raw(served.app, "/stream", fail_on=2)  # start and first chunk went out
    assert isinstance(failure, ClientDisconnect)
    assert len(sent) == 2
    span = served.server()
    attributes = dict(span.attributes or {})
    assert attributes["http.response.status_code"] == 200  # the response had started
    assert attributes["error.type"] == "starlette.requests.ClientDisconnect"
    assert span.status.status_code is StatusCode.ERROR


async def test_other_scopes_are_traced_work_without_a_server_span(span_warnings: None) -> None:
    tracing = switch.build_tracing(TracingSettings(enabled=True, exporter="none"))
    assert tracing is not None
    exporter = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[object] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(switch.active.get())
        seen.append(trace.get_current_span().get_span_context().is_valid)

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    await tracing.wrap(inner, routes=RouteTemplates(()))({"type": "lifespan"}, receive, send)
    assert seen == [tracing, False]
    assert switch.active.get() is None  # reset once the scope is done
    assert exporter.get_finished_spans() == ()
