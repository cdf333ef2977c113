"""Servers of a test's own (Redis, PostgreSQL) on free ports, which the test may stop, freeze and restart.

The shared services of ``scripts/services.sh`` must never be taken down: other tests (and other
people) use them. These are started from the same binaries, live in the test's ``tmp_path``, and
are always resumed and stopped when the test ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.fixtures.services import unavailable

__all__ = ["PrivatePostgres", "PrivateRedis", "free_port", "own_postgres", "own_redis"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing(problem: str) -> None:
    unavailable(problem)


async def _wait_for_port(port: int, alive: Callable[[], bool] | None = None, *, seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        if asyncio.get_running_loop().time() > deadline or (alive is not None and not alive()):
            pytest.fail(f"nothing listens on port {port}")
        await asyncio.sleep(0.05)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a PostgreSQL postmaster and its backends), parents first."""
    found, frontier = [pid], [pid]
    while frontier:
        parent = frontier.pop()
        children = Path(f"/proc/{parent}/task/{parent}/children")
        with contextlib.suppress(OSError):
            for child in children.read_text().split():
                found.append(int(child))
                frontier.append(int(child))
    return found


class PrivateRedis:
    """A ``redis-server`` of the test's own; :meth:`freeze` makes it hang rather than refuse."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "redis.log").open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                self.binary,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
                *("--dir", str(self.directory), "--daemonize", "no"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = self._process
        await _wait_for_port(self.port, lambda: process.returncode is None)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.kill()
        async with asyncio.timeout(10):
            await process.wait()

    def freeze(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (``initdb`` + ``pg_ctl``), run as the ``postgres`` user.

    It lives in a directory of its own under the temporary directory (pytest's ``tmp_path`` is
    private to root, and the ``postgres`` user must own its data directory).
    """

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="plexica-health-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    async def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/"
        )
        _out, err = await process.communicate()
        if process.returncode != 0:
            pytest.fail(f"{args[0]} failed: {err.decode(errors='replace')[-500:]}")

    async def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        await self._run("initdb", "-N", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "pg.log")
        # -w: until it accepts connections (after an immediate stop, crash recovery comes first).
        await self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "30", "-o", options, "start")

    async def stop(self, mode: str = "immediate") -> None:
        """Stop the server: ``immediate`` is a crash (recovery at the next start), ``fast`` a clean shutdown."""
        self.thaw()
        if (self.data / "postmaster.pid").exists():
            await self._run("pg_ctl", "-D", str(self.data), "-m", mode, "stop")

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _postmaster(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: connections stay open but nothing answers."""
        pid = self._postmaster()
        assert pid is not None
        for member in _tree(pid):
            os.kill(member, signal.SIGSTOP)

    def thaw(self) -> None:
        pid = self._postmaster()
        if pid is None:
            return
        for member in _tree(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGCONT)


@contextlib.asynccontextmanager
async def own_redis(directory: Path) -> AsyncIterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server is not installed: run scripts/services.sh up redis")
        raise AssertionError("unreachable")
    server = PrivateRedis(binary, directory)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def own_postgres() -> AsyncIterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        _missing("PostgreSQL 15 is not installed: run scripts/services.sh up postgres")
    server = PrivatePostgres()
    try:
        await server.init()
        await server.start()
        yield server
    finally:
        await server.stop()
        server.remove()
