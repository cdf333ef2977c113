"""A real ``plexica serve`` subprocess driven through the real CLI: what a new user does."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plexica.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PLEXICA_")}
    environ["PLEXICA_DATA_DIR"] = str(tmp_path / "data")
    return environ


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    created = _cli(env, "tenants", "create", "acme")
    assert created.returncode == 0, created.stderr
    process = subprocess.Popen(
        [sys.executable, "-m", "plexica.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx2.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start: {process.stderr.read() if process.stderr else ''}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_cli_token_and_curl_against_a_real_server(env: dict[str, str], server: str) -> None:
    editor = _cli(env, "token", "--tenant", "acme", "--user", "alice", "--role", "notes-editor")
    assert editor.returncode == 0, editor.stderr
    headers = {"Authorization": f"Bearer {editor.stdout.strip()}"}
    created = httpx2.post(f"{server}/api/plugins/notes/notes", json={"title": "over http"}, headers=headers)
    assert created.status_code == 201, created.text
    listed = httpx2.get(f"{server}/api/plugins/notes/notes", headers=headers).json()["items"]
    assert "over http" in [note["title"] for note in listed]

    reader = _cli(env, "token", "--tenant", "acme", "--user", "bob").stdout.strip()
    denied = httpx2.post(
        f"{server}/api/plugins/notes/notes", json={"title": "x"}, headers={"Authorization": f"Bearer {reader}"}
    )
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    assert httpx2.get(f"{server}/api/plugins/notes/notes").status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tenants", "create", "Bad_Slug"], "invalid tenant slug"),
        (["tenants", "show", "missing"], "no tenant with slug"),
        (["tenants", "suspend", "nope-nope"], "no tenant with slug"),
        (["token"], "exactly one of"),
        (["tenants"], ""),
    ],
    ids=["bad-slug", "unknown-tenant", "suspend-unknown", "token-without-tenant", "group-without-command"],
)
def test_cli_bad_input_is_one_line_and_nonzero(env: dict[str, str], args: list[str], message: str) -> None:
    result = _cli(env, *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    if message:
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_settings_file_names_every_bad_key(env: dict[str, str], tmp_path: Path) -> None:
    settings = tmp_path / "plexica.toml"
    settings.write_text('[http]\nport = "x"\nnope = 1\n[cache]\nttl_seconds = 0\n')
    result = _cli({**env, "PLEXICA_SETTINGS": str(settings)}, "tenants", "list")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "port" in result.stderr and "nope" in result.stderr and "ttl_seconds" in result.stderr


def test_cli_lifecycle(env: dict[str, str]) -> None:
    assert _cli(env, "tenants", "create", "globex", "--name", "Globex").returncode == 0
    assert "globex" in _cli(env, "tenants", "list", "--json").stdout
    assert _cli(env, "tenants", "suspend", "globex").returncode == 0
    assert '"status": "suspended"' in _cli(env, "tenants", "show", "globex").stdout
    assert _cli(env, "tenants", "resume", "globex").returncode == 0
    assert _cli(env, "tenants", "delete", "globex", "--yes").returncode == 0
    assert _cli(env, "tenants", "show", "globex").returncode == 1
    assert "notes" in _cli(env, "plugins", "list").stdout
    assert _cli(env, "version").stdout.strip()
