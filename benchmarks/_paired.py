"""Paired rounds, machine context and the one table format that every benchmark shares.

A ratio is only honest when its baseline did the same work on the same machine at the same
time. :func:`paired` runs the baseline and the subject in alternating order, round after round
(B S, S B, B S, ...), takes the ratio within each round, and reports the median of those
per-round ratios: load that drifts over the run hits both sides of a round alike. Every
benchmark reports :class:`Figure` rows through :func:`finish`, which prints them with the
machine's context (CPUs, load average before and after, Python, services) and, under
``benchmarks/run.py``, hands them to the runner as JSON (``PLEXICA_BENCH_JSON``).

A ratio is always *speed relative to the baseline*: baseline time / subject time. 1.00x is
parity, 0.50x means the subject takes twice the baseline's time, 4.00x that it is 4 times faster.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benches reuse tests/ helpers (fresh PostgreSQL databases)
    sys.path.insert(0, str(ROOT))

Measure = Callable[[], Awaitable[float]]
"""One round of one side: does the work and returns its cost in seconds per operation."""

LOAD_AT_START = os.getloadavg()


@attrs.frozen
class Figure:
    """One measured row: a subject's cost per operation, and its ratio to an in-run baseline."""

    bench: str
    name: str
    subject: float  # median seconds per operation over the rounds
    rounds: int
    baseline: str = ""
    base: float | None = None  # the baseline's median seconds per operation
    ratio: float | None = None  # median of per-round (baseline / subject)
    low: float | None = None  # lowest and highest per-round ratio
    high: float | None = None
    note: str = ""


async def per_op(op: Callable[[], Awaitable[object]], count: int) -> float:
    """Seconds per call of ``op`` over ``count`` sequential calls."""
    started = time.perf_counter()
    for _ in range(count):
        await op()
    return (time.perf_counter() - started) / count


def sync_per_op(op: Callable[[], object], count: int) -> float:
    """Seconds per call of a synchronous ``op`` over ``count`` sequential calls."""
    started = time.perf_counter()
    for _ in range(count):
        op()
    return (time.perf_counter() - started) / count


async def paired(
    bench: str,
    name: str,
    subject: Measure,
    baseline_name: str,
    baseline: Measure,
    *,
    rounds: int,
    note: str = "",
    warm_up: bool = True,
) -> Figure:
    """Alternate ``baseline`` and ``subject`` for ``rounds`` rounds; the median per-round ratio."""
    if warm_up:
        await baseline()
        await subject()
    ours: list[float] = []
    theirs: list[float] = []
    for index in range(rounds):
        if index % 2 == 0:
            theirs.append(await baseline())
            ours.append(await subject())
        else:
            ours.append(await subject())
            theirs.append(await baseline())
    ratios = [b / s for b, s in zip(theirs, ours, strict=True)]
    return Figure(
        bench=bench,
        name=name,
        subject=statistics.median(ours),
        rounds=rounds,
        baseline=baseline_name,
        base=statistics.median(theirs),
        ratio=statistics.median(ratios),
        low=min(ratios),
        high=max(ratios),
        note=note,
    )


async def single(bench: str, name: str, subject: Measure, *, rounds: int, note: str = "") -> Figure:
    """A figure without a baseline (an absolute cost): the median of ``rounds`` rounds."""
    costs = [await subject() for _ in range(rounds)]
    return Figure(bench=bench, name=name, subject=statistics.median(costs), rounds=rounds, note=note)


def parser(doc: str | None, *, rounds: int = 7) -> argparse.ArgumentParser:
    """The options every bench takes (``--rounds``, ``--quick``), so ``run.py`` can pass them on."""
    result = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--rounds", type=int, default=rounds, help=f"paired rounds per figure (default {rounds})")
    result.add_argument("--quick", action="store_true", help="few, short rounds: a smoke run, not a figure to quote")
    return result


def rounds_for(args: argparse.Namespace, quick: int = 3) -> int:
    """``--rounds``, capped at ``quick`` under ``--quick`` (an explicit smaller value wins)."""
    return min(int(args.rounds), quick) if args.quick else int(args.rounds)


def _reachable(url: str | None, default_port: int) -> bool:
    if not url:
        return False
    first = url.split(",")[0]
    parts = urlsplit(first if "://" in first else f"tcp://{first}")
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=0.5):
            return True
    except OSError:
        return False


def machine() -> dict[str, Any]:
    """What a figure depends on besides the code: CPUs, load, Python and which services answered."""
    import sqlite3

    env = os.environ
    return {
        "cpus": os.cpu_count(),
        "load": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "services": {
            "SQLite": sqlite3.sqlite_version,
            "PostgreSQL": _reachable(env.get("TEST_DATABASE_URL"), 5432),
            "Redis": _reachable(env.get("TEST_REDIS_URL"), 6379),
            "Kafka": _reachable(env.get("TEST_KAFKA_BOOTSTRAP"), 9092),
        },
    }


def describe(context: dict[str, Any], load_before: Sequence[float] | None = None) -> str:
    """One line of machine context; ``load_before`` adds the 1/5/15-min load at the start."""
    services = ", ".join(
        f"{name} {'yes' if up is True else 'no' if up is False else up}" for name, up in context["services"].items()
    )
    before = f"{'/'.join(f'{x:.2f}' for x in load_before)} -> " if load_before is not None else ""
    load = "/".join(f"{x:.2f}" for x in context["load"])
    return f"{context['cpus']} CPUs, load average {before}{load}, Python {context['python']}; services: {services}"


def _cost(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.2f} us"


def table(figures: Sequence[Figure]) -> str:
    """The shared table: subject and baseline cost per op, median paired ratio and its spread."""
    header = ["bench", "measure", "per op", "baseline", "baseline per op", "ratio", "round ratios", "n", "note"]
    rows = [header]
    for f in figures:
        spread = f"{f.low:.2f}-{f.high:.2f}" if f.low is not None and f.high is not None else ""
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
        rows.append(
            [f.bench, f.name, _cost(f.subject), f.baseline, _cost(f.base), ratio, spread, str(f.rounds), f.note]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {2, 4, 5, 6, 7}
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


RATIO_NOTE = "ratio = baseline time / subject time, median of paired rounds (1.00x parity, <1 slower)"


def finish(figures: Sequence[Figure]) -> int:
    """Print the figures with the machine's context; hand them to ``run.py`` when it asked."""
    context = machine()
    print()
    print(table(figures))
    print(RATIO_NOTE)
    print(describe(context, LOAD_AT_START))
    target = os.environ.get("PLEXICA_BENCH_JSON")
    if target:
        payload = {"figures": [attrs.asdict(f) for f in figures], "load_before": LOAD_AT_START, "context": context}
        Path(target).write_text(json.dumps(payload), encoding="utf-8")
    return 0


def load(path: Path) -> tuple[list[Figure], dict[str, Any]]:
    """The figures and context one bench process handed over (see :func:`finish`)."""
    payload = json.loads(path.read_text(encoding="utf-8"))
    return [Figure(**f) for f in payload["figures"]], payload
