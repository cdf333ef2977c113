"""What observability costs on the full request path: metrics on, tracing on, both, against all off.

Four hosts run in one process, built identically (SQLite, the notes plugin, one tenant with 20
notes, the rate limiter off) except for observability:

* ``off``: ``metrics.enabled = false``, tracing off (the baseline of every figure);
* ``metrics``: the default metrics;
* ``tracing``: OpenTelemetry on with the always-on sampler (``sampler_ratio = 1.0``) and spans
  handed to an in-memory exporter through a batch span processor (export cost without a network);
* ``metrics + tracing``: both;
* ``tracing, OTLP to a closed port``: tracing on with the production exporter (OTLP/HTTP behind
  the host's batch span processor) pointed at a port nothing listens on: every export fails in
  the processor's worker thread, and the request path must not wait for it.

Besides the mix, one warm request alone, ``GET /api/plugins/notes/notes`` (20 notes), is timed with
tracing off against tracing on (in-memory sink) and against the OTLP exporter on the closed port.
For the latter the note gives the slowest single request (wall time) on both sides: a request
path that waited for an export would show its connect timeout there.

Each request is driven straight into the ASGI app (no HTTP client, whose cost would dilute the
ratio), ``--concurrency`` at a time: the middleware stack, JWT verification, tenant and user
resolution, the ``notes:note:read`` check and one tenant query, for a mix of ``GET /notes``,
``GET /notes/{id}`` and ``GET /api/core/v1/me``. Every response must be a 200. Each host's
lifespan runs in a task of its own, so one host's tracing never leaks into another's requests.
The process-wide instrumentations a traced host installs stay installed for the ``off`` host too;
there they cost one context-variable read per instrumented call, which this baseline includes.

Each round alternates chunks of ``--chunk`` requests between the two sides (see :func:`interleaved`), and a
request's cost is the process's CPU time by default (``--clock wall`` for elapsed time). The
ratio is throughput relative to ``off`` (off time / subject time): the targets are a metrics
cost of at most 5 % (ratio >= 0.95x) and a tracing cost of at most 15 % (ratio >= 0.85x).

Usage::

    .venv/bin/python benchmarks/observability_bench.py [--rounds 7] [--count 600] [--chunk 5] [--concurrency 1]
        [--clock cpu|wall] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import _paired
import attrs
from _paired import Figure
from plexica_plugin_notes import NotesPlugin

from plexica import create_app, load_settings

BENCH = "observability"
SLUG = "bench"
NOTES = 20
OTLP = "tracing, OTLP to a closed port"
METRICS_TARGET = 0.95
TRACING_TARGET = 0.85
#: Only the switches differ between the hosts.
CONFIGS: dict[str, dict[str, Any]] = {
    "off": {"metrics": {"enabled": False}},
    "metrics": {},
    "tracing": {"metrics": {"enabled": False}, "tracing": {"enabled": True, "exporter": "none", "sampler_ratio": 1.0}},
    "metrics + tracing": {"tracing": {"enabled": True, "exporter": "none", "sampler_ratio": 1.0}},
    OTLP: {"metrics": {"enabled": False}, "tracing": {"enabled": True, "exporter": "otlp", "sampler_ratio": 1.0}},
}
#: The warm request timed alone.
NOTES_PATH = "/api/plugins/notes/notes"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@attrs.define
class Running:
    """One host whose lifespan runs in its own task, and the requests it answers."""

    name: str
    app: Any
    requests: list[tuple[str, bytes]]
    exporter: Any = None
    stop: asyncio.Event = attrs.Factory(asyncio.Event)
    slowest: float = 0.0  # the slowest single request so far, wall seconds
    _next: Iterator[tuple[str, bytes]] | None = None

    def only(self, path: str) -> Running:
        """The same host answering only the requests of ``path`` in the mix."""
        return attrs.evolve(self, requests=[r for r in self.requests if r[0] == path], next=None, slowest=0.0)

    def take(self, count: int) -> list[tuple[str, bytes]]:
        """The next ``count`` requests of the mix (it carries on where the last chunk stopped)."""
        if self._next is None:
            self._next = itertools.cycle(self.requests)
        return list(itertools.islice(self._next, count))

    @property
    def spans(self) -> int:
        return len(self.exporter.get_finished_spans()) if self.exporter is not None else 0


async def call(app: Any, path: str, token: bytes) -> int:
    """One GET through the whole ASGI app; returns the status."""
    status = 0
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench.local"), (b"authorization", b"Bearer " + token)],
        "client": ("127.0.0.1", 50000),
        "server": ("bench.local", 80),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


#: What a request costs: the process's CPU time (all its threads, the span exporter's included) or
#: wall time. CPU time is the default: on a shared machine other people's load moves wall time by
#: tens of percent between chunks, and CPU time is what bounds throughput on a dedicated core.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter}
clock = CLOCKS["cpu"]


async def measure(host: Running, count: int, concurrency: int, *, keep_spans: bool = False) -> float:
    """Seconds (of :data:`clock`) per request for ``count`` requests, ``concurrency`` in flight; all 200s."""
    queue = host.take(count)
    failures: list[int] = []

    async def worker(share: Sequence[tuple[str, bytes]]) -> None:
        for path, token in share:
            began = time.perf_counter()
            status = await call(host.app, path, token)
            host.slowest = max(host.slowest, time.perf_counter() - began)
            if status != 200:
                failures.append(status)

    started = clock()
    await asyncio.gather(*(worker(queue[i::concurrency]) for i in range(concurrency)))
    elapsed = clock() - started
    if failures:
        raise RuntimeError(f"{host.name}: {len(failures)} requests failed, e.g. status {failures[0]}")
    if host.exporter is not None and not keep_spans:
        host.exporter.clear()  # memory stays flat over the rounds
    return elapsed / count


@contextlib.asynccontextmanager
async def host(name: str, overrides: dict[str, Any], data_dir: Path) -> AsyncIterator[Running]:
    settings = load_settings(
        environ={},
        data_dir=str(data_dir),
        load_entry_points=False,
        rate_limit={"enabled": False},
        http={"access_log": False},
        # Reads only, so the relays have nothing to do: their polls would only add noise to both sides.
        events={"outbox": {"poll_seconds": 60.0}},
        **overrides,
    )
    app = create_app(settings, plugins=[NotesPlugin()])
    running = Running(name, app, [])
    ready = asyncio.Event()

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            ready.set()
            await running.stop.wait()

    task = asyncio.create_task(lifespan(), name=f"bench-host-{name}")  # its own context: tracing stays inside
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        platform = app.state.platform
        tracing = getattr(app.state, "tracing", None)
        if tracing is not None and settings.tracing.exporter == "none":
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

            running.exporter = InMemorySpanExporter()
            tracing.provider.add_span_processor(BatchSpanProcessor(running.exporter))
        await platform.tenants.provision(SLUG)
        issuer = platform.dev_issuer
        token = issuer.mint(
            realm=f"tenant-{SLUG}", subject="alice", username="alice", roles=["member", "notes-editor"]
        ).encode()
        ids = await _seed(app, token)
        running.requests = [
            ("/api/plugins/notes/notes", token),
            (f"/api/plugins/notes/notes/{ids[0]}", token),
            ("/api/plugins/notes/notes", token),
            (f"/api/plugins/notes/notes/{ids[-1]}", token),
            ("/api/core/v1/me", token),
        ]
        yield running
    finally:
        running.stop.set()
        await task


async def _seed(app: Any, token: bytes) -> list[str]:
    """NOTES notes, created through the API as a user would."""
    import httpx2

    transport = httpx2.ASGITransport(app=app)
    ids = []
    async with httpx2.AsyncClient(transport=transport, base_url="http://bench.local") as client:
        for n in range(NOTES):
            response = await client.post(
                "/api/plugins/notes/notes",
                json={"title": f"note {n}", "body": "x" * 200},
                headers={"Authorization": f"Bearer {token.decode()}"},
            )
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


async def interleaved(
    name: str, subject: Running, base: Running, *, rounds: int, count: int, concurrency: int, chunk: int = 40
) -> Figure:
    """Like :func:`_paired.paired`, but each round alternates chunks of ``chunk`` requests per side.

    On a shared machine the load swings within seconds; alternating small chunks (B S S B B S ...)
    lets both sides see the same load far more closely than one block per side would.
    """
    await measure(base, chunk, concurrency)  # warm up both
    await measure(subject, chunk, concurrency)
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(rounds):
        spent = {"base": 0.0, "subject": 0.0}
        for index in range(max(1, count // chunk)):
            order = (("base", base), ("subject", subject))
            for side, running in order if index % 2 == 0 else reversed(order):
                spent[side] += await measure(running, chunk, concurrency)
        theirs.append(spent["base"])
        ours.append(spent["subject"])
    ratios = [b / s for b, s in zip(theirs, ours, strict=True)]
    chunks = max(1, count // chunk)
    return Figure(
        bench=BENCH,
        name=name,
        subject=statistics.median(ours) / chunks,
        rounds=rounds,
        baseline="all off",
        base=statistics.median(theirs) / chunks,
        ratio=statistics.median(ratios),
        low=min(ratios),
        high=max(ratios),
    )


def _verdict(figure: Figure, target: float) -> Figure:
    ratio = figure.ratio or 0.0
    cost = (1 - ratio) * 100
    verdict = "ok" if ratio >= target else "MISSED"
    return attrs.evolve(figure, note=f"cost {cost:+.1f} % (target <= {(1 - target) * 100:.0f} %): {verdict}")


async def run(argv: list[str]) -> int:
    parser = _paired.parser(__doc__)
    parser.add_argument("--count", type=int, default=600, help="requests per side and round (--quick: 100)")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    parser.add_argument("--chunk", type=int, default=5, help="requests per side before switching sides")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="cpu", help="what a request costs (default cpu)")
    args = parser.parse_args(argv)
    global clock
    clock = CLOCKS[args.clock]
    rounds = _paired.rounds_for(args)
    count = 100 if args.quick else args.count
    endpoint = f"http://127.0.0.1:{closed_port()}/v1/traces"
    configs = {**CONFIGS, OTLP: {**CONFIGS[OTLP], "tracing": {**CONFIGS[OTLP]["tracing"], "endpoint": endpoint}}}
    with tempfile.TemporaryDirectory(prefix="plexica-obs-bench-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            hosts = {
                name: await stack.enter_async_context(host(name, overrides, Path(tmp) / f"h{i}"))
                for i, (name, overrides) in enumerate(configs.items())
            }
            off = hosts["off"]
            figures = []
            for name, target in (
                ("metrics", METRICS_TARGET),
                ("tracing", TRACING_TARGET),
                ("metrics + tracing", METRICS_TARGET * TRACING_TARGET),
            ):
                figure = await interleaved(
                    f"{name} on",
                    hosts[name],
                    off,
                    rounds=rounds,
                    count=count,
                    concurrency=args.concurrency,
                    chunk=args.chunk,
                )
                figures.append(_verdict(figure, target))
            figures.extend(await _one_request(hosts, rounds=rounds, count=count, args=args))
            spans = await _spans_per_request(hosts["tracing"], args.concurrency)
            off_metrics = _recorded(off)
    notes = [
        f"{args.clock} time",
        f"tracing: {spans:.1f} spans per request",
        f"off host recorded {off_metrics} request samples",
    ]
    figures.append(attrs.evolve(figures[-1], name="(context)", note="; ".join(notes), ratio=None, low=None, high=None))
    _paired.finish(figures)
    return 1 if any("MISSED" in f.note for f in figures) else 0


async def _one_request(hosts: dict[str, Running], *, rounds: int, count: int, args: argparse.Namespace) -> list[Figure]:
    """The warm ``GET /api/plugins/notes/notes`` alone: tracing off vs on (in-memory sink), vs OTLP on a closed port."""
    figures = []
    for label, name in (("in-memory batch sink", "tracing"), ("OTLP to a closed port", OTLP)):
        off, traced = hosts["off"].only(NOTES_PATH), hosts[name].only(NOTES_PATH)
        figure = _verdict(
            await interleaved(
                f"tracing on, {label}: GET notes",
                traced,
                off,
                rounds=rounds,
                count=count,
                concurrency=args.concurrency,
                chunk=args.chunk,
            ),
            TRACING_TARGET,
        )
        slowest = f"slowest request {traced.slowest * 1e3:.1f} ms (off {off.slowest * 1e3:.1f} ms, wall)"
        figures.append(attrs.evolve(figure, note=f"{figure.note}; {slowest}"))
    return figures


async def _spans_per_request(traced: Running, concurrency: int) -> float:
    """How many spans one request of the mix makes (a sanity check that tracing really ran)."""
    tracing = traced.app.state.tracing
    await asyncio.to_thread(tracing.provider.force_flush)
    traced.exporter.clear()
    await measure(traced, 50, concurrency, keep_spans=True)
    await asyncio.to_thread(tracing.provider.force_flush)
    finished = traced.spans
    traced.exporter.clear()
    return finished / 50


def _recorded(running: Running) -> int:
    """Requests counted by ``http_requests_total`` on a host: 0 when ``metrics.enabled = false`` records nothing."""
    total = 0
    for family in running.app.state.platform.metrics.registry.collect():
        if family.name == "http_requests":
            total += int(sum(s.value for s in family.samples if s.name == "http_requests_total"))
    return total


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv[1:])))
