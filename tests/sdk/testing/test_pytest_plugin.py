"""The pytest plugin: loaded everywhere yet inert, light to import, and its plugin_mode registry."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import plexica_sdk.testing.plugin as kit_plugin

_PROBE = """
import json, sys
import plexica_sdk.testing, plexica_sdk.testing.plugin
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
      {"plexica", "sqlalchemy", "starlette", "httpx2", "redis", "aiokafka", "aioboto3"})))
"""


def test_importing_the_testing_kit_imports_no_host_database_or_web_library() -> None:
    completed = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(completed.stdout) == []


def test_the_plugin_is_loaded_in_this_suite_and_adds_no_autouse_fixture(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config
) -> None:
    assert pytestconfig.pluginmanager.get_plugin("plexica") is kit_plugin
    assert not set(kit_plugin.__all__) & set(request.fixturenames)


def run_pytest(tmp_path: Path, *args: str, conftest: str = "") -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(conftest))
    (tmp_path / "test_modes.py").write_text(
        textwrap.dedent(
            """
            import pytest
            pytestmark = pytest.mark.anyio

            async def test_host(plexica_host, plugin_mode):
                assert plexica_host.plugins == ("notes",)
            """
        )
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--plexica-plugin",
            "plexica_plugin_notes:NotesPlugin",
            *args,
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=tmp_path,
    )


@pytest.mark.slow
def test_an_unknown_mode_is_refused_with_one_clear_line(tmp_path: Path) -> None:
    completed = run_pytest(tmp_path, "--plexica-plugin-mode", "sidecar")
    assert completed.returncode == 4
    assert "unknown plugin mode 'sidecar' (available: embedded, remote)" in completed.stderr


@pytest.mark.slow
def test_a_registered_mode_runs_every_plugin_mode_test_once_more(tmp_path: Path) -> None:
    conftest = """
        import contextlib
        from plexica_sdk.testing import register_plugin_mode

        @contextlib.asynccontextmanager
        async def wrapped(plugin):
            yield plugin

        register_plugin_mode("shadow", wrapped)

        def pytest_plexica_plugin_modes(config):
            return ["embedded", "shadow"]
    """
    completed = run_pytest(tmp_path, "-rA", conftest=conftest)
    assert completed.returncode == 0, completed.stdout
    passed = sorted(line.split("::")[1] for line in completed.stdout.splitlines() if line.startswith("PASSED"))
    assert passed == ["test_host[asyncio-embedded]", "test_host[asyncio-shadow]"]


@pytest.mark.slow
def test_remote_mode_on_sqlite_skips_a_plugin_with_tables_saying_why(tmp_path: Path) -> None:
    completed = run_pytest(tmp_path, "-rs", "--plexica-plugin-mode", "remote", "--plexica-services", "none")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "remote mode on SQLite: notes has tables" in completed.stdout
    assert "set TEST_DATABASE_URL" in completed.stdout


@pytest.mark.slow
@pytest.mark.postgres
def test_remote_mode_serves_the_plugin_from_its_own_process(tmp_path: Path, postgres_url: str) -> None:
    completed = run_pytest(tmp_path, "-rA", "--plexica-plugin-mode", "remote", "--plexica-services", "postgres")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert [line.split("::")[1] for line in completed.stdout.splitlines() if line.startswith("PASSED")] == [
        "test_host[asyncio-remote]"
    ]
