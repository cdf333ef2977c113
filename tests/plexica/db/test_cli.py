"""``plexica migrate`` and ``plexica plugins install|upgrade|uninstall`` as an operator runs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plexica.cli.main import main
from tests.plexica.db.support import write_migrations

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def plexica(
    database_url: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Run:
    """Run the CLI on a settings file for the test's database; returns (exit code, stdout, stderr)."""
    settings = tmp_path / "plexica.toml"
    database = f'\n[database]\nurl = "{database_url}"\n' if database_url else ""
    settings.write_text(
        f'environment = "test"\ndata_dir = "{tmp_path / "data"}"\nload_entry_points = false\n'
        f'plugins = ["tests.plexica.db.support:EnvItemsPlugin"]\n{database}',
        encoding="utf-8",
    )

    def run(*args: str, revisions: int = 1) -> tuple[int, str, str]:
        monkeypatch.setenv("TEST_ITEMS_PLUGIN_MIGRATIONS", write_migrations(tmp_path / f"items-{revisions}", revisions))
        capsys.readouterr()
        try:
            main(["--settings", str(settings), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def as_json(output: str) -> Any:
    return json.loads(output)


def test_migrate_runs_the_fleet_resumes_and_reports(plexica: Run, anyio_backend: str) -> None:
    for slug in ("acme", "globex", "initech"):
        code, out, _ = plexica("tenants", "create", slug)
        assert code == 0 and out.startswith(f"created tenant {slug}")

    code, out, _ = plexica("migrate", "--json")
    assert code == 0 and as_json(out)["counts"] == {"up-to-date": 3, "migrated": 0, "failed": 0, "skipped": 0}

    code, out, _ = plexica("migrate", "--json", "--concurrency", "2", "--canary", "1", revisions=3)
    report = as_json(out)
    assert code == 0 and report["counts"]["migrated"] == 3 and report["heads"]["plugin:items"] == "items_0003"
    assert report["tenants"][0]["changes"][0] == {
        "stream": "plugin:items",
        "before": "items_0001",
        "after": "items_0003",
    }

    code, out, _ = plexica("migrate", "status", "--json", revisions=3)
    assert code == 0 and {(s["slug"], s["state"]) for s in as_json(out)} == {
        (slug, "current") for slug in ("acme", "globex", "initech")
    }
    code, out, _ = plexica("migrate", revisions=3)
    assert code == 0 and "summary" in out

    code, out, _ = plexica("migrate", "status", "--pending", revisions=3)
    assert code == 0 and "no tenants" in out


def test_plugins_commands_per_tenant_and_for_all(plexica: Run, anyio_backend: str) -> None:
    for slug in ("acme", "globex"):
        plexica("tenants", "create", slug, revisions=3)
    assert plexica("plugins", "uninstall", "items", "--all", "--yes", revisions=3)[0] == 0

    code, out, _ = plexica(
        "plugins", "install", "items", "--tenant", "acme", "--revision", "items_0001", "--json", revisions=3
    )
    assert code == 0 and as_json(out) == [
        {"tenant": "acme", "result": "done", "before": None, "after": "items_0001", "message": ""}
    ]
    code, out, _ = plexica("plugins", "install", "items", "--all", "--json", revisions=3)
    assert code == 0 and [(o["tenant"], o["result"]) for o in as_json(out)] == [("acme", "skipped"), ("globex", "done")]
    code, out, _ = plexica("plugins", "install", "items", "--tenant", "acme", "--json", revisions=3)
    assert code == 0 and as_json(out)[0]["result"] == "skipped" and "already installed" in as_json(out)[0]["message"]
    code, out, _ = plexica("plugins", "upgrade", "items", "--all", "--json", revisions=3)
    assert code == 0 and [o["after"] for o in as_json(out)] == ["items_0003", "items_0003"]
    code, out, _ = plexica("plugins", "uninstall", "items", "--tenant", "acme", "--keep-data", revisions=3)
    assert code == 0 and "acme" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("plugins", "install", "nope", "--all"), "error: unknown plugin 'nope'"),
        (
            ("plugins", "install", "items", "--tenant", "acme", "--revision", "zzz"),
            "error: plugin:items: no revision 'zzz'",
        ),
        (("plugins", "upgrade", "items", "--tenant", "nobody"), "error: no tenant with slug 'nobody'"),
        (("plugins", "install", "items"), "error: give exactly one of --tenant SLUG or --all"),
    ],
    ids=["unknown-plugin", "bad-revision", "unknown-tenant", "no-target"],
)
def test_bad_input_is_one_clear_line(plexica: Run, anyio_backend: str, args: tuple[str, ...], message: str) -> None:
    code, out, err = plexica(*args)
    assert code != 0 and err.strip() == message and "Traceback" not in out + err


@pytest.mark.postgres
def test_database_down_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = tmp_path / "down.toml"
    settings.write_text(
        f'data_dir = "{tmp_path}"\nload_entry_points = false\n'
        '[database]\nurl = "postgresql+asyncpg://postgres@127.0.0.1:9/plexica"\n',
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as exit_info:
        main(["--settings", str(settings), "migrate"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert err.startswith("error: database is unavailable") and err.count("\n") == 1
