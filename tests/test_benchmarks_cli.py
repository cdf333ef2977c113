"""The benchmark runner's command line, and the paired-rounds arithmetic every ratio rests on."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RUN = BENCHMARKS / "run.py"


def load_paired() -> ModuleType:
    """``benchmarks/_paired.py`` by path: the benches import it as a top-level module, not a package's."""
    spec = importlib.util.spec_from_file_location("_paired", BENCHMARKS / "_paired.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=60, check=False)


def test_help_lists_the_options_and_every_bench() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for word in ("--only", "--rounds", "--quick", "cache", "permissions", "tenancy"):
        assert word in result.stdout


def test_an_unknown_bench_is_refused() -> None:
    result = run("--only", "nosuch")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_a_quick_run_passes_options_through_and_prints_one_table() -> None:
    """``--rounds`` reaches the bench and bench options after ``--`` too (no services needed)."""
    result = run("--quick", "--rounds", "2", "--only", "cache", "--", "--no-services", "--count", "50")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.split("=== all figures", 1)[1]
    row = next(line for line in summary.splitlines() if line.startswith("cache  L1 hit"))
    assert re.search(r" us\s+2\s+target <= 1 us", row), row  # the rounds column: --rounds 2 was passed on
    assert "CPUs, load average" in summary
    assert "services: SQLite" in summary


@pytest.mark.anyio
async def test_paired_alternates_sides_and_takes_the_median_of_per_round_ratios() -> None:
    paired = load_paired()
    calls: list[str] = []
    costs = iter([4.0, 1.0, 1.0, 2.0, 3.0, 1.0])  # rounds: (base 4, ours 1), (ours 1, base 2), (base 3, ours 1)

    def side(name: str) -> Callable[[], Awaitable[float]]:
        async def measure() -> float:
            calls.append(name)
            return next(costs)

        return measure

    figure = await paired.paired("t", "ours", side("ours"), "base", side("base"), rounds=3, warm_up=False)
    assert calls == ["base", "ours", "ours", "base", "base", "ours"]
    assert figure.ratio == 3.0  # per-round ratios 4, 2, 3
    assert (figure.low, figure.high) == (2.0, 4.0)
    assert figure.subject == 1.0
    assert figure.base == 3.0
