"""Render the key panels of ``plexica-dashboard.json`` from a real run, as ``dashboard.png``.

Grafana is not installable here (not in Debian, not on PyPI), so this draws the panels with
matplotlib from real scrapes instead: it starts a Plexica host (embedded mode, the notes example
plugin) behind uvicorn on a free port, drives mixed traffic over HTTP (reads, writes, 401s, 403s,
404s, a tenant suspended half-way), scrapes ``/metrics`` every second, and evaluates each panel's
query locally (``rate`` over a sliding window, ``histogram_quantile`` by linear interpolation, as
Prometheus does). Panel titles come from the dashboard JSON, so the picture and the dashboard
cannot drift apart silently.

Run from the repository root (about a minute)::

    .venv/bin/python docs/observability/render_dashboard.py [--seconds 60] [--out docs/observability/dashboard.png]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import random
import socket
import tempfile
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2
import matplotlib as mpl
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

mpl.use("Agg")
import matplotlib.pyplot as plt

from plexica import create_app, load_settings
from plexica_sdk import Event, Host, PluginManifest, Subscription, hookimpl

HERE = Path(__file__).resolve().parent
DASHBOARD = HERE / "plexica-dashboard.json"
WINDOW = 5.0  # seconds: the rate() window of the local evaluation
TENANTS = ("acme", "globex", "initech")

Labels = tuple[tuple[str, str], ...]
Scrape = tuple[float, dict[str, dict[Labels, float]]]  # (seconds since start, sample name -> labels -> value)


# ------------------------------------------------------------------------------------------ the run


class Auditor:
    """A plugin whose handler fails on one note in twenty: those end in the dead-letter queue."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="auditor", version="1.0.0", description="audits notes, badly")

    @hookimpl
    def plexica_subscriptions(self) -> Sequence[Subscription]:
        return [Subscription(event_type="notes.note.created", handler=self.audit)]

    async def audit(self, event: Event, host: Host) -> None:
        if zlib.crc32(str(event.id).encode()) % 20 == 0:
            raise RuntimeError("the auditor cannot read this note")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def running_host(data_dir: Path) -> AsyncIterator[tuple[str, Any]]:
    """A real host on a TCP port: yields its base URL and its platform (for tokens and tenants)."""
    from plexica_plugin_notes import NotesPlugin

    # The load would exceed the standard plan within seconds: the limiter is not what this run shows.
    settings = load_settings(
        environ={},
        data_dir=str(data_dir),
        load_entry_points=False,
        environment="development",
        rate_limit={"enabled": False},
        events={"retry_backoff_seconds": 0.05},
        metrics={"refresh_seconds": 2.0},
    )
    app = create_app(settings, plugins=[NotesPlugin(), Auditor()])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app.state.platform
    finally:
        server.should_exit = True
        await task


def parse(text: str) -> dict[str, dict[Labels, float]]:
    samples: dict[str, dict[Labels, float]] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name][tuple(sorted(sample.labels.items()))] = float(sample.value)
    return samples


async def drive(base: str, platform: Any, seconds: float, workers: int = 6) -> list[Scrape]:
    """Mixed traffic for ``seconds``, with a scrape of ``/metrics`` every second."""
    for slug in TENANTS:
        await platform.tenants.provision(slug)
    issuer = platform.dev_issuer

    def token(slug: str, roles: Sequence[str], user: str = "alice") -> dict[str, str]:
        minted = issuer.mint(realm=f"tenant-{slug}", subject=user, username=user, roles=list(roles))
        return {"Authorization": f"Bearer {minted}"}

    editors = {slug: token(slug, ["member", "notes-editor"]) for slug in TENANTS}
    readers = {slug: token(slug, ["member"], user="bob") for slug in TENANTS}
    notes: dict[str, list[str]] = {slug: [] for slug in TENANTS}
    rng = random.Random(11)  # noqa: S311 - traffic shape, not security
    started = time.monotonic()
    scrapes: list[Scrape] = []
    suspended: set[str] = set()

    async with httpx2.AsyncClient(base_url=base, timeout=10.0) as client:

        async def one() -> None:
            slug = rng.choice([s for s in TENANTS if s not in suspended] or list(TENANTS))
            roll = rng.random()
            if roll < 0.40:
                await client.get("/api/plugins/notes/notes", headers=readers[slug])
            elif roll < 0.58:
                response = await client.post(
                    "/api/plugins/notes/notes", json={"title": f"n{rng.randrange(10**6)}"}, headers=editors[slug]
                )
                if response.status_code == 201:
                    notes[slug].append(response.json()["id"])
            elif roll < 0.70 and notes[slug]:
                await client.get(f"/api/plugins/notes/notes/{rng.choice(notes[slug])}", headers=readers[slug])
            elif roll < 0.80:  # bob may read, not write: a 403 problem
                await client.post("/api/plugins/notes/notes", json={"title": "nope"}, headers=readers[slug])
            elif roll < 0.87:
                await client.get(f"/api/plugins/notes/notes/{rng.randrange(10**9)}", headers=readers[slug])
            elif roll < 0.92:
                await client.get(f"/no/such/path/{rng.randrange(100)}")
            elif roll < 0.96:
                await client.get("/api/plugins/notes/notes")  # no token: 401
            else:
                await client.get("/api/core/v1/me", headers=readers[slug])

        async def worker() -> None:
            while time.monotonic() - started < seconds:
                await one()

        async def scraper() -> None:
            while time.monotonic() - started < seconds + 1:
                response = await client.get("/metrics")
                scrapes.append((time.monotonic() - started, parse(response.text)))
                await asyncio.sleep(1.0)

        async def lifecycle() -> None:
            await asyncio.sleep(seconds / 2)
            await platform.tenants.suspend("initech")  # active_tenants drops; its requests now fail
            suspended.add("initech")

        await asyncio.gather(scraper(), lifecycle(), *(worker() for _ in range(workers)))
    return scrapes


# ------------------------------------------------------------------------------- local evaluation


Series = dict[str, list[tuple[float, float]]]


def _select(scrape: Scrape, name: str, match: Callable[[dict[str, str]], bool] = lambda _: True) -> dict[Labels, float]:
    return {labels: value for labels, value in scrape[1].get(name, {}).items() if match(dict(labels))}


def _window_start(scrapes: Sequence[Scrape], i: int) -> int | None:
    now = scrapes[i][0]
    for j in range(i):
        if now - scrapes[j][0] <= WINDOW + 0.5:
            return j if j < i else None
    return None


def rate_by(
    scrapes: Sequence[Scrape], name: str, by: Sequence[str], match: Callable[[dict[str, str]], bool] = lambda _: True
) -> Series:
    """``sum by (by) (rate(name[WINDOW]))`` at each scrape."""
    out: Series = defaultdict(list)
    for i in range(1, len(scrapes)):
        j = _window_start(scrapes, i)
        if j is None:
            continue
        dt = scrapes[i][0] - scrapes[j][0]
        before = _select(scrapes[j], name, match)
        sums: dict[str, float] = defaultdict(float)
        for labels, value in _select(scrapes[i], name, match).items():
            key = ",".join(dict(labels).get(label, "") for label in by) or "total"
            sums[key] += max(0.0, value - before.get(labels, 0.0)) / dt
        for key, value in sums.items():
            out[key].append((scrapes[i][0], value))
    return out


def gauge_by(scrapes: Sequence[Scrape], name: str, by: Sequence[str] = ()) -> Series:
    out: Series = defaultdict(list)
    for scrape in scrapes:
        sums: dict[str, float] = defaultdict(float)
        for labels, value in _select(scrape, name).items():
            sums[",".join(dict(labels).get(label, "") for label in by) or name] += value
        for key, value in sums.items():
            out[key].append((scrape[0], value))
    return out


def quantile_by(scrapes: Sequence[Scrape], base: str, q: float, by: Sequence[str] = ()) -> Series:
    """``histogram_quantile(q, sum by (le, by) (rate(base_bucket[WINDOW])))``."""
    out: Series = defaultdict(list)
    for i in range(1, len(scrapes)):
        j = _window_start(scrapes, i)
        if j is None:
            continue
        before = _select(scrapes[j], f"{base}_bucket")
        buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
        for labels, value in _select(scrapes[i], f"{base}_bucket").items():
            named = dict(labels)
            key = ",".join(named.get(label, "") for label in by) or "all"
            buckets[key][float(named["le"])] += max(0.0, value - before.get(labels, 0.0))
        for key, cumulative in buckets.items():
            found = _histogram_quantile(q, sorted(cumulative.items()))
            if found is not None:
                out[key].append((scrapes[i][0], found))
    return out


def _histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # Prometheus answers the highest finite bound
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / span if span else 0.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def ratio(numerator: Series, denominator: Series, name: str) -> Series:
    top = dict(next(iter(numerator.values()), []))
    return {name: [(t, top.get(t, 0.0) / d) for t, d in next(iter(denominator.values()), []) if d > 0]}


def _sum(series: Series) -> Series:
    totals: dict[float, float] = defaultdict(float)
    for points in series.values():
        for t, v in points:
            totals[t] += v
    return {"total": sorted(totals.items())}


def panels(scrapes: Sequence[Scrape]) -> dict[str, tuple[Series, str]]:
    """Each panel title of the dashboard → its series, evaluated as the panel's queries do."""
    is_4xx: Callable[[dict[str, str]], bool] = lambda labels: labels.get("status", "").startswith("4")  # noqa: E731
    is_5xx: Callable[[dict[str, str]], bool] = lambda labels: labels.get("status", "").startswith("5")  # noqa: E731
    all_requests = _sum(rate_by(scrapes, "http_requests_total", ()))
    by_route = rate_by(scrapes, "http_requests_total", ("route",))
    top_routes = sorted(by_route, key=lambda k: -sum(v for _, v in by_route[k]))[:10]
    hits = _sum(rate_by(scrapes, "permission_cache_hits_total", ()))
    misses = _sum(rate_by(scrapes, "permission_cache_misses_total", ()))
    lookups = _sum({"hits": hits["total"], "misses": misses["total"]})
    return {
        "Request rate by status": (rate_by(scrapes, "http_requests_total", ("status",)), "req/s"),
        "Request rate by route (top 10)": ({k: by_route[k] for k in top_routes}, "req/s"),
        "Latency p50 / p95 / p99": (
            {
                f"p{round(q * 100)}": quantile_by(scrapes, "http_request_duration_seconds", q).get("all", [])
                for q in (0.5, 0.95, 0.99)
            },
            "seconds",
        ),
        "4xx and 5xx ratio": (
            {
                "4xx": ratio(_sum(rate_by(scrapes, "http_requests_total", (), is_4xx)), all_requests, "4xx")["4xx"],
                "5xx": ratio(_sum(rate_by(scrapes, "http_requests_total", (), is_5xx)), all_requests, "5xx")["5xx"],
            },
            "ratio",
        ),
        "DB query duration p95 by operation": (
            quantile_by(scrapes, "db_query_duration_seconds", 0.95, ("operation",)),
            "seconds",
        ),
        "Events published by type": (rate_by(scrapes, "events_published_total", ("event_type",)), "events/s"),
        "Active tenants and plugins": (
            {**gauge_by(scrapes, "active_tenants"), **gauge_by(scrapes, "active_plugins")},
            "count",
        ),
        "Outbox lag and relay throughput": (
            {
                "oldest unsent (s)": gauge_by(scrapes, "outbox_oldest_unsent_age_seconds").get(
                    "outbox_oldest_unsent_age_seconds", []
                ),
                "relayed / s": _sum(rate_by(scrapes, "outbox_relayed_total", ()))["total"],
            },
            "s  |  rows/s",
        ),
        "Dead-letter queue size by plugin": (gauge_by(scrapes, "dlq_size", ("plugin",)), "letters"),
        "Permission cache hit ratio": (ratio(hits, lookups, "hit ratio"), "ratio"),
    }


# -------------------------------------------------------------------------------------- drawing


def draw(
    evaluated: Mapping[str, tuple[Series, str]], titles: Sequence[str], out: Path, caption: str, seconds: float
) -> None:
    plt.style.use("dark_background")
    columns = 3
    rows = math.ceil(len(titles) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(18, 4.2 * rows), facecolor="#111217")
    for axis in axes.flat[len(titles) :]:
        axis.set_visible(False)
    for axis, title in zip(axes.flat, titles, strict=False):
        series, unit = evaluated[title]
        axis.set_facecolor("#181b1f")
        axis.set_title(title, loc="left", fontsize=11, color="#d8d9da")
        axis.set_ylabel(unit, fontsize=8, color="#8e8e8e")
        axis.grid(color="#2c3235", linewidth=0.6)
        drawn = 0
        for name, points in sorted(series.items()):
            if points:
                axis.plot([t for t, _ in points], [v for _, v in points], linewidth=1.4, label=name or "(none)")
                drawn += 1
        if drawn:
            axis.legend(fontsize=7, loc="upper left", ncol=2, frameon=False)
        else:
            axis.text(0.5, 0.5, "no data in this run", ha="center", va="center", transform=axis.transAxes)
        axis.set_xlim(0, seconds + 1)
        axis.tick_params(labelsize=7, colors="#8e8e8e")
        axis.set_xlabel("seconds into the run", fontsize=7, color="#8e8e8e")
    figure.suptitle("Plexica — " + caption, x=0.01, ha="left", fontsize=12, color="#d8d9da")
    figure.tight_layout(rect=(0, 0, 1, 0.97))
    figure.savefig(out, dpi=80, facecolor=figure.get_facecolor())


def totals(last: Scrape) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for labels, value in last[1].get("http_requests_total", {}).items():
        counts[dict(labels)["status"]] += int(value)
    return dict(sorted(counts.items()))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--out", type=Path, default=HERE / "dashboard.png")
    args = parser.parse_args()
    logging.disable(logging.ERROR)  # the dead letters are the point of the auditor, not news
    dashboard = json.loads(DASHBOARD.read_text())
    with tempfile.TemporaryDirectory(prefix="plexica-dashboard-") as data_dir:
        async with running_host(Path(data_dir)) as (base, platform):
            scrapes = await drive(base, platform, args.seconds)
    evaluated = panels(scrapes)
    titles = [panel["title"] for panel in dashboard["panels"] if panel["title"] in evaluated]
    skipped = [panel["title"] for panel in dashboard["panels"] if panel["title"] not in evaluated]
    counts = totals(scrapes[-1])
    caption = (
        f"{len(scrapes)} scrapes of /metrics over a {args.seconds:.0f} s real run, "
        f"{sum(counts.values())} requests by status {counts}; 'initech' suspended at {args.seconds / 2:.0f} s"
    )
    draw(evaluated, titles, args.out, caption, args.seconds)
    print(f"wrote {args.out}: {caption}")
    if skipped:
        print("not rendered (no local data in embedded mode):", ", ".join(skipped))


if __name__ == "__main__":
    asyncio.run(main())
