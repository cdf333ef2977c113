"""Run every benchmark, one after another, each printing its table against its in-run baseline.

Usage::

    set -a; . /tmp/plexica-services/env; set +a     # after scripts/services.sh up
    .venv/bin/python benchmarks/run.py [auth cache events permissions tenancy]

Each benchmark measures its baseline (raw aiokafka, pycasbin, django-tenants-style migration
chains, uncached verification...) in the same run on the same machine, so the ratios hold even
when the absolute numbers move with the machine's load. Exit status: non-zero if any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = {
    "auth": "auth_bench.py",
    "cache": "cache_bench.py",
    "events": "events_bench.py",
    "permissions": "permissions_bench.py",
    "tenancy": "tenancy_bench.py",
}


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    for name in argv or list(BENCHMARKS):
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(HERE / BENCHMARKS[name])], check=False)
        print(f"=== {name}: exit {result.returncode} in {time.perf_counter() - started:.0f} s", flush=True)
        if result.returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
