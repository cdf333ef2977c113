"""The fleet lock: ``plexica migrate`` and ``plugins --all`` runs take turns; ``--no-wait`` says who runs.

Everything here is a real process: the lock holder, the runs that wait and the ``--no-wait``
ones, on SQLite files and on a fresh PostgreSQL database.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import pytest

from plexica.cli.main import main
from tests.plexica.db.support import write_migrations

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]

#: Holds the fleet lock as ROLE (default "migrate") until a line arrives on stdin (prints "held" once it has it).
HOLDER = """
import asyncio, sys
from pathlib import Path
from plexica.db.engine import create_database
from plexica.db.fleet_lock import FleetLock
from plexica.settings import load_settings

async def main(data_dir: str, url: str, role: str = "migrate") -> None:
    settings = load_settings(environ={}, data_dir=data_dir, load_entry_points=False, environment="test",
                             database={"url": url} if url else {})
    async with create_database(settings.database, Path(data_dir)) as db, FleetLock(db, role).hold():
        print("held", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main(*sys.argv[1:4]))
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


def _fleet(
    tmp_path: Path, database_url: str | None, slugs: tuple[str, ...], revisions: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], dict[str, str]]:
    """Tenants made with the items plugin at its first revision; the CLI, and the env of ``revisions``.

    The tenants are made in this process (a child's start costs a second or two): only the runs
    that race for the lock are processes of their own.
    """
    settings = _settings(tmp_path, database_url)
    monkeypatch.setenv("TEST_ITEMS_PLUGIN_MIGRATIONS", _env(tmp_path, 1)["TEST_ITEMS_PLUGIN_MIGRATIONS"])
    for slug in slugs:
        main(["--settings", str(settings), "tenants", "create", slug])
    return [sys.executable, "-m", "plexica.cli", "--settings", str(settings)], _env(tmp_path, revisions)


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("release\n")
    holder.stdin.flush()
    assert holder.wait(timeout=30) == 0


def _reap(processes: Sequence[subprocess.Popen[str]]) -> None:
    """Kill what still runs and close every pipe: a failed test leaves no child behind."""
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_concurrent_migrates_take_turns_and_no_wait_names_the_holder(
    database_url: str | None, tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli, new = _fleet(tmp_path, database_url, ("acme", "globex", "initech"), 3, monkeypatch)

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
        _release(holder)

        reports = []
        for run in runs:
            out, err = run.communicate(timeout=120)
            assert run.returncode == 0, err
            reports.append(json.loads(out)["counts"])
    finally:
        _reap([holder, *runs])

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


def test_unorchestrated_race_both_succeed(
    database_url: str | None, tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two runs started together, nobody holding the lock first: both exit 0, each tenant migrated once."""
    cli, new = _fleet(tmp_path, database_url, ("acme", "globex"), 3, monkeypatch)
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


def test_plugins_all_takes_the_fleet_lock_like_migrate(
    database_url: str | None, tmp_path: Path, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a ``plugins --all`` run holds the lock, another waits and ``--no-wait`` runs (migrate too) refuse."""
    cli, new = _fleet(tmp_path, database_url, ("acme",), 2, monkeypatch)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "data"), database_url or "", "plugins"],
        env=new,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    processes = [holder]
    try:
        assert _line(holder.stdout) == "held"
        commands = {
            "upgrade": ("plugins", "upgrade", "items", "--all", "--json"),
            "install": ("plugins", "install", "items", "--all", "--no-wait"),
            "migrate": ("migrate", "--no-wait"),
            "single": ("plugins", "upgrade", "items", "--tenant", "acme", "--json"),  # one tenant: no fleet lock
        }
        runs = {
            name: subprocess.Popen([*cli, *args], env=new, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, args in commands.items()
        }
        processes.extend(runs.values())
        who = f"another plexica plugins --all (pid {holder.pid} on host {socket.gethostname()})"
        assert _line(runs["upgrade"].stderr) == f"waiting for {who}"
        for name in ("install", "migrate"):
            _, err = runs[name].communicate(timeout=60)
            assert (runs[name].returncode, err.strip()) == (1, f"error: {who} is running; not waiting (--no-wait)")
        out, err = runs["single"].communicate(timeout=60)
        assert runs["single"].returncode == 0, err
        assert json.loads(out)[0]["after"] == "items_0002"

        assert runs["upgrade"].poll() is None  # still waiting while the lock is held
        _release(holder)
        out, err = runs["upgrade"].communicate(timeout=60)
        assert runs["upgrade"].returncode == 0, err
        assert [(o["tenant"], o["result"]) for o in json.loads(out)] == [("acme", "done")]
    finally:
        _reap(processes)
