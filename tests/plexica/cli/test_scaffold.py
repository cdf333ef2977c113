"""``plexica plugin new``: refuses bad names and existing folders; what it makes installs and passes its tests."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from plexica.cli.main import main
from plexica.cli.scaffold import render_plugin, template_values
from plexica_sdk.testing.host import SERVICE_VARIABLES


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    else:
        code = 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "name",
    ["Tasks", "a", "-tasks", "tasks-", "ta--sks", "tasks_list", "x" * 41, "core", "1tasks"],
    ids=[
        "uppercase",
        "too-short",
        "leading-dash",
        "trailing-dash",
        "double-dash",
        "underscore",
        "too-long",
        "reserved",
        "leading-digit",
    ],
)
def test_bad_name_is_refused_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, _, err = run_cli(capsys, "plugin", "new", name, "--dir", str(tmp_path / "p"))
    assert code != 0
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "p").exists()


def test_existing_directory_is_refused_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mine.txt").write_text("keep")
    code, _, err = run_cli(capsys, "plugin", "new", "tasks", "--dir", str(tmp_path / "tasks"))
    assert code != 0 and "already exists" in err and err.count("\n") == 1
    assert [p.name for p in (tmp_path / "tasks").iterdir()] == ["mine.txt"]


def test_package_has_every_part_of_a_plugin_and_no_placeholder_left() -> None:
    files = render_plugin("time-off")
    assert sorted(files) == [
        "README.md",
        "noxfile.py",
        "pyproject.toml",
        "src/plexica_plugin_time_off/__init__.py",
        "src/plexica_plugin_time_off/migrations/versions/0001_items.py",
        "src/plexica_plugin_time_off/models.py",
        "src/plexica_plugin_time_off/plugin.py",
        "src/plexica_plugin_time_off/py.typed",
        "src/plexica_plugin_time_off/routes.py",
        "tests/test_time_off.py",
    ]
    assert not [path for path, text in files.items() if "{{" in text]
    assert 'time-off = "plexica_plugin_time_off:TimeOffPlugin"' in files["pyproject.toml"]
    assert template_values("time-off")["table"] == "time_off_items"
    for path, text in files.items():
        if path.endswith(".py"):
            compile(text, path, "exec")


@pytest.mark.slow
@pytest.mark.parametrize(
    "backends",
    [
        "embedded",
        pytest.param("services", marks=[pytest.mark.postgres, pytest.mark.redis, pytest.mark.kafka, pytest.mark.s3]),
    ],
)
def test_generated_plugin_installs_into_a_fresh_venv_and_passes_its_own_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backends: str
) -> None:
    # The generated tests use the real servers exactly when the project's TEST_* variables are set.
    service_variables = {name for variables in SERVICE_VARIABLES.values() for name in variables}
    if backends == "embedded":
        environ = {k: v for k, v in os.environ.items() if k not in service_variables}
    else:
        missing = sorted(name for name in service_variables if name not in os.environ)
        assert not missing, f"the services run needs {missing}"
        environ = dict(os.environ)
    started = time.monotonic()
    code, out, _ = run_cli(capsys, "plugin", "new", "demo", "--dir", str(tmp_path / "demo"))
    assert code == 0, out

    # A fresh venv that sees this environment's packages (plexica, pytest, hatchling) through a
    # .pth file, so the install needs no network; the generated package alone is installed in it.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "_plexica_dev.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-e",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert install.returncode == 0, install.stderr
    # The entry point is what a host uses to find the plugin.
    found = subprocess.run(
        [
            python,
            "-c",
            "from importlib.metadata import entry_points as e; print(e(group='plexica.plugins')['demo'].value)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert found.stdout.strip() == "plexica_plugin_demo:DemoPlugin"

    tests = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=tmp_path / "demo",
        env=environ,
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "PASSED tests/test_demo.py::test_items_of_one_tenant_are_invisible_to_another" in tests.stdout
    bad_bodies = [line for line in tests.stdout.splitlines() if "::test_a_bad_body_is_a_422_problem" in line]
    assert len(bad_bodies) == 4 and all(line.startswith("PASSED") for line in bad_bodies), bad_bodies
    assert "\n12 passed in " in tests.stdout
    elapsed = time.monotonic() - started
    print(f"plexica plugin new -> installed -> green ({backends}): {elapsed:.1f}s")
