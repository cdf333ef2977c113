"""The fleet lock: concurrent ``plexica migrate`` processes take turns; ``--no-wait`` says who runs.

Everything here is a real process: the lock holder, the two migrate runs and the ``--no-wait``
one, on SQLite files and on a fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from tests.plexica.db.support import write_migrations

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]

#: Holds the fleet lock as role "migrate" until a line arrives on stdin (prints "held" once it has it).
HOLDER = """
import asyncio, sys
from pathlib import Path
from plexica.db.engine import create_database
from plexica.db.fleet_lock import FleetLock
from plexica.settings import load_settings

async def main(data_dir: str, url: str) -> None:
    settings = load_settings(environ={}, data_dir=data_dir, load_entry_points=False, environment="test",
                             database={"url": url} if url else {})
    async with create_database(settings.database, Path(data_dir)) as db, FleetLock(db).hold():
        print("held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main(*sys.argv[1:3]))
"""


def _env(tmp_path: Path, revisions: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXICA_")}
    env["PYTHONPATH"] = str(ROOT)
    env["TEST_ITEMS_PLUGIN_MIGRATIONS"] = write_migrations(tmp_path / f"items-{revisions}", revisions)
    return env


def _settings(tmp_path: Path, database_url: str | None) -> Path:
    settings = tmp_path / "plexica.toml"
    database = f'\n[database]\nurl = "{database_url}"\n' if database_url else ""
    settings.write_text(
        f'environment = "test"\ndata_dir = "{tmp_path / "data"}"\nload_entry_points = false\n'
        f'plugins = ["tests.plexica.db.support:EnvItemsPlugin"]\n{database}',
        encoding="utf-8",
    )
    return settings


def _line(stream: IO[str] | None, timeout: float = 60) -> str:
    """The next line of a child's pipe, or fail after ``timeout`` seconds (never hang the suite)."""
    assert stream is not None
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no line from the child process in time"
    return stream.readline().strip()


def test_concurrent_migrates_take_turns_and_no_wait_names_the_holder(
    database_url: str | None, tmp_path: Path, anyio_backend: str
) -> None:
    settings = _settings(tmp_path, database_url)
    cli = [sys.executable, "-m", "plexica.cli", "--settings", str(settings)]
    old, new = _env(tmp_path, 1), _env(tmp_path, 3)
    for slug in ("acme", "globex", "initech"):
        created = subprocess.run([*cli, "tenants", "create", slug], env=old, capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "data"), database_url or ""],
        env=new,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    runs: list[subprocess.Popen[str]] = []
    try:
        assert _line(holder.stdout) == "held"
        who = f"another plexica migrate (pid {holder.pid} on host {socket.gethostname()})"
        for _ in range(2):
            run = subprocess.Popen(
                [*cli, "migrate", "--json"], env=new, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            runs.append(run)
            assert _line(run.stderr) == f"waiting for {who}"

        refused = subprocess.run([*cli, "migrate", "--no-wait"], env=new, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1
        assert refused.stderr.strip() == f"error: {who} is running; not waiting (--no-wait)"

        time.sleep(0.5)  # both runs are still waiting: nothing migrated while the lock is held
        assert all(run.poll() is None for run in runs)
        assert holder.stdin is not None
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.wait(timeout=30) == 0

        reports = []
        for run in runs:
            out, err = run.communicate(timeout=120)
            assert run.returncode == 0, err
            reports.append(json.loads(out)["counts"])
    finally:
        for process in (holder, *runs):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
            for stream in (process.stdin, process.stdout, process.stderr):
                if stream is not None:
                    stream.close()

    # One run migrated all three tenants; the other waited for it and found them at head.
    assert sorted(r["migrated"] for r in reports) == [0, 3]
    assert sorted(r["up-to-date"] for r in reports) == [0, 3]
    assert all(r["failed"] == r["skipped"] == 0 for r in reports)
    status = subprocess.run([*cli, "migrate", "status", "--json"], env=new, capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    states = json.loads(status.stdout)
    assert {(s["slug"], s["stream"], s["revision"], s["state"]) for s in states if s["stream"] == "plugin:items"} == {
        (slug, "plugin:items", "items_0003", "current") for slug in ("acme", "globex", "initech")
    }
    assert {s["state"] for s in states} == {"current"}


def test_unorchestrated_race_both_succeed(database_url: str | None, tmp_path: Path, anyio_backend: str) -> None:
    """Two runs started together, nobody holding the lock first: both exit 0, each tenant migrated once."""
    settings = _settings(tmp_path, database_url)
    cli = [sys.executable, "-m", "plexica.cli", "--settings", str(settings)]
    old, new = _env(tmp_path, 1), _env(tmp_path, 3)
    for slug in ("acme", "globex"):
        assert (
            subprocess.run([*cli, "tenants", "create", slug], env=old, capture_output=True, timeout=60).returncode == 0
        )
    runs = [
        subprocess.Popen(
            [*cli, "migrate", "--json"], env=new, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    migrated = sorted(json.loads(out)["counts"]["migrated"] for out, _ in outputs)
    assert migrated == [0, 2]  # never [2, 2]: the second run planned after the first committed
