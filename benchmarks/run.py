"""Run the benchmarks, each in its own process, and print one table of every figure.

Usage::

    set -a; . /tmp/plexica-services/env; set +a     # after scripts/services.sh up
    .venv/bin/python benchmarks/run.py [--only NAME ...] [--rounds N] [--quick] [-- BENCH OPTIONS]

A bench is any ``benchmarks/*.py`` module that is not private (``_paired.py``) or this runner;
its name is the file's stem without ``_bench`` (``permissions_bench.py`` -> ``permissions``,
``request_path.py`` -> ``request_path``). ``--rounds`` and ``--quick`` are passed to each bench
that accepts them; everything after ``--`` is passed to every selected bench as is (so use it
with ``--only``). Every ratio is the median of paired rounds against a baseline doing the same
work in the same run (``benchmarks/_paired.py``). Exit status: non-zero if any bench failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _paired  # noqa: E402 - the runner's own directory, put on the path just above


def discover() -> dict[str, Path]:
    """Every bench module of this directory, by name."""
    found = {}
    for path in sorted(HERE.glob("*.py")):
        if path.name.startswith("_") or path.name == "run.py":
            continue
        found[path.stem.removesuffix("_bench")] = path
    return found


def accepted(path: Path, flags: list[str]) -> set[str]:
    """Which of ``flags`` the bench's command line takes: all of them for a ``_paired`` bench, else by ``--help``."""
    if "_paired.parser(" in path.read_text(encoding="utf-8"):
        return set(flags)
    result = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, check=False)
    return {flag for flag in flags if flag in result.stdout}


def arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    own, passed = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    benches = discover()
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=f"benches: {', '.join(benches)}. Bench options: python benchmarks/<module>.py --help",
    )
    parser.add_argument("--only", action="append", choices=list(benches), metavar="NAME", help="run only this bench")
    parser.add_argument("--rounds", type=int, help="paired rounds per figure, passed to each bench")
    parser.add_argument("--quick", action="store_true", help="short rounds: a smoke run, not figures to quote")
    parser.add_argument("--list", action="store_true", help="list the benches and exit")
    return parser.parse_args(own), passed


def main(argv: list[str]) -> int:
    args, passed = arguments(argv)
    benches = discover()
    if args.list:
        print("\n".join(f"{name:<14} {path.name}" for name, path in benches.items()))
        return 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}
    figures: list[_paired.Figure] = []
    summary: list[str] = []
    failed = []
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="plexica-bench-") as tmp:
        for name in args.only or list(benches):
            path = benches[name]
            wanted = {"--quick": [] if args.quick else None, "--rounds": [str(args.rounds)] if args.rounds else None}
            asked = [flag for flag, value in wanted.items() if value is not None]
            takes = accepted(path, asked) if asked else set()
            common = [part for flag in asked if flag in takes for part in [flag, *(wanted[flag] or [])]]
            skipped = [flag for flag in asked if flag not in takes]
            report = Path(tmp) / f"{name}.json"
            command = [sys.executable, str(path), *common, *passed]
            print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
            before = os.getloadavg()
            started = time.perf_counter()
            result = subprocess.run(command, env={**env, "PLEXICA_BENCH_JSON": str(report)}, check=False)
            seconds = time.perf_counter() - started
            after = os.getloadavg()
            if result.returncode != 0:
                failed.append(name)
            if report.exists():
                figures += _paired.load(report)[0]
            load = f"load {before[0]:.2f} -> {after[0]:.2f}"
            ignored = f"; does not take {', '.join(skipped)}" if skipped else ""
            table = "" if report.exists() else "; no figures handed over (its own output is above)"
            summary.append(f"  {name:<14} exit {result.returncode} in {seconds:.0f} s, {load}{ignored}{table}")
    print("\n=== all figures")
    print(_paired.table(figures) if figures else "(no figures)")
    print(_paired.RATIO_NOTE)
    print("\n".join(summary))
    print(_paired.describe(_paired.machine(), load_at_start))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
