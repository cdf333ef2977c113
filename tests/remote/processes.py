"""Real processes on loopback for the remote-plugin tests: a host (``plexica serve``) and remote plugins.

The plugins run as ``python -m plexica_sdk.remote MODULE:OBJECT``, exactly what a container runs.

Ports are picked first, so each side knows the other's URL before either starts: the plugin
verifies the host's tokens against ``{host}/.well-known/plexica/jwks.json``, the host finds the
plugin in its ``[[plugins.remote]]`` settings.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import httpx2
import pytest

from plexica.auth import DevIssuer
from plexica.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
PROBE = "tests.remote.probe_plugin:ProbePlugin"
NOTES = "plexica_plugin_notes:NotesPlugin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environ(extra: Mapping[str, str]) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PLEXICA_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**environ, **extra}


def wait_until(check: Callable[[], bool], *, seconds: float = 20.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _answers(url: str) -> bool:
    try:
        return httpx2.get(url, timeout=1).status_code < 500
    except httpx2.HTTPError:
        return False


@attrs.define
class Process:
    """A child process serving HTTP on ``port``; ``start`` waits until ``ready_path`` answers."""

    argv: list[str]
    port: int
    ready_path: str
    environ: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Process:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(self.argv, env=self.environ, cwd=ROOT, stdout=output, stderr=output)

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(f"{self.argv[:4]} exited: {self.log.read_text(errors='replace')[-3000:]}")
            return _answers(self.url + self.ready_path)

        wait_until(up, what=f"{' '.join(self.argv[2:4])} on port {self.port}")
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process vanishes mid-whatever, as a crashed container does."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def ensure_running(self) -> None:
        if not self.running:
            self.start()


def plugin_process(plugin: str, port: int, host_url: str, tmp: Path, **extra: str) -> Process:
    argv = [sys.executable, "-m", "plexica_sdk.remote", plugin, "--port", str(port), "--host-url", host_url]
    name = plugin.rsplit(":", 1)[-1].lower()
    return Process(argv, port, "/.plexica/health", clean_environ(extra), tmp / f"{name}.log")


@attrs.define
class Stack:
    """A host and its remote plugins, all real processes."""

    host: Process
    plugins: dict[str, Process]
    settings: Settings
    probe_log: Path

    @property
    def url(self) -> str:
        return self.host.url

    def client(self) -> httpx2.Client:
        return httpx2.Client(base_url=self.url, timeout=30)

    def token(self, tenant: str, user: str = "alice", roles: tuple[str, ...] = ("member",)) -> dict[str, str]:
        issuer = DevIssuer.from_settings(self.settings)
        token = issuer.mint(realm=f"tenant-{tenant}", subject=user, username=user, roles=list(roles))
        return {"Authorization": f"Bearer {token}"}

    def admin(self) -> dict[str, str]:
        issuer = DevIssuer.from_settings(self.settings)
        return {
            "Authorization": f"Bearer {issuer.mint(realm='plexica-platform', subject='root', roles=['super_admin'])}"
        }

    def provision(self, slug: str) -> httpx2.Response:
        with self.client() as client:
            return client.post("/api/core/v1/tenants", json={"slug": slug}, headers=self.admin())

    def probed(self, kind: str | None = None) -> list[dict[str, Any]]:
        """What reached the probe plugin so far."""
        if not self.probe_log.exists():
            return []
        lines = [json.loads(line) for line in self.probe_log.read_text().splitlines() if line.strip()]
        return [line for line in lines if kind is None or line["kind"] == kind]

    def health(self) -> dict[str, Any]:
        with self.client() as client:
            return client.get("/health").json()  # type: ignore[no-any-return]

    def breaker(self, plugin: str = "probe") -> str:
        return str(self.health()["checks"][f"plugin:{plugin}"]["breaker"]["state"])

    def close(self) -> None:
        self.host.stop()
        for plugin in self.plugins.values():
            plugin.stop()


def settings_text(data_dir: Path, remote: Mapping[str, Mapping[str, Any]], extra: str = "") -> str:
    """The host's TOML: test environment, no entry points, fast retries, the remote plugins."""
    lines = [
        'environment = "test"',
        f'data_dir = "{data_dir}"',
        "load_entry_points = false",
        extra,
        "[rate_limit]",
        "enabled = false",
        "[events]",
        "retry_backoff_seconds = 0.02",
        "max_attempts = 14",
    ]
    for name, entry in remote.items():
        lines.append("[[plugins.remote]]")
        lines.append(f'name = "{name}"')
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in entry.items())
    return "\n".join(lines) + "\n"


def start_stack(
    tmp: Path,
    plugins: Mapping[str, str],
    *,
    remote: Mapping[str, Mapping[str, Any]] | None = None,
    extra: str = "",
    environ: Mapping[str, str] | None = None,
) -> Stack:
    """Start each plugin (name → MODULE:OBJECT), then a host registering them; stop them all on failure."""
    host_port = free_port()
    host_url = f"http://127.0.0.1:{host_port}"
    probe_log = tmp / "probe.jsonl"
    processes = {
        name: plugin_process(path, free_port(), host_url, tmp, PROBE_LOG=str(probe_log))
        for name, path in plugins.items()
    }
    data_dir = tmp / "host-data"
    entries = {name: {"url": process.url, **(remote or {}).get(name, {})} for name, process in processes.items()}
    settings_path = tmp / "plexica.toml"
    settings_path.write_text(settings_text(data_dir, entries, extra), encoding="utf-8")
    settings = load_settings(settings_path, environ={**(environ or {})})
    host = Process(
        [sys.executable, "-m", "plexica.cli", "serve", "--port", str(host_port)],
        host_port,
        "/health",
        clean_environ({"PLEXICA_SETTINGS": str(settings_path), **(environ or {})}),
        tmp / "host.log",
    )
    stack = Stack(host=host, plugins=processes, settings=settings, probe_log=probe_log)
    try:
        for process in processes.values():
            process.start()
        host.start()
    except BaseException:
        stack.close()
        raise
    return stack


def probe_stack(tmp: Path) -> Stack:
    """A host with the probe plugin remote (timeouts of 1 s, a breaker that opens after 3 failures for 1 s)."""
    knobs = {"timeout_seconds": 1.0, "breaker_failures": 3, "breaker_reset_seconds": 1.0, "deferred_attempts": 30}
    return start_stack(tmp, {"probe": PROBE}, remote={"probe": knobs}, extra="[http]\nmax_body_bytes = 4096")
