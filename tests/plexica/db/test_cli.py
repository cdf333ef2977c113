"""``plexica migrate`` and ``plexica plugins install|upgrade|uninstall`` as an operator runs them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from plexica.cli.main import main
from tests.plexica.db.support import fresh_postgres_database, write_migrations

Run = Callable[..., tuple[int, str, str]]


def cli_on(
    directory: Path, database_url: str | None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Run:
    """Run the CLI on a fleet of its own under ``directory``; returns (exit code, stdout, stderr).

    ``revisions`` and ``version`` say which items plugin is deployed; its hook calls go to
    ``directory / "calls.log"``.
    """
    settings = directory / "plexica.toml"
    directory.mkdir(parents=True, exist_ok=True)
    database = f'\n[database]\nurl = "{database_url}"\n' if database_url else ""
    settings.write_text(
        f'environment = "test"\ndata_dir = "{directory / "data"}"\nload_entry_points = false\n'
        f'plugins = ["tests.plexica.db.support:EnvItemsPlugin"]\n{database}',
        encoding="utf-8",
    )

    def run(*args: str, revisions: int = 1, version: str = "1.0.0") -> tuple[int, str, str]:
        migrations = write_migrations(directory / f"items-{revisions}", revisions)
        monkeypatch.setenv("TEST_ITEMS_PLUGIN_MIGRATIONS", migrations)
        monkeypatch.setenv("TEST_ITEMS_PLUGIN_VERSION", version)
        monkeypatch.setenv("TEST_ITEMS_PLUGIN_CALLS", str(directory / "calls.log"))
        capsys.readouterr()
        try:
            main(["--settings", str(settings), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def plexica(
    database_url: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Run:
    """The CLI on the test's database."""
    return cli_on(tmp_path, database_url, capsys, monkeypatch)


@pytest.fixture
async def other_database_url(database_url: str | None, request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """A second, separate database of the same kind as ``database_url`` (SQLite: None)."""
    if database_url is None:
        yield None
    else:
        async with fresh_postgres_database(request.getfixturevalue("postgres_url")) as url:
            yield url


def hook_calls(directory: Path, hook: str) -> list[str]:
    log = directory / "calls.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return sorted(line for line in lines if line.startswith(hook))


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


def test_migrate_leaves_the_fleet_as_plugins_upgrade_all_does(
    tmp_path: Path,
    database_url: str | None,
    other_database_url: str | None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    anyio_backend: str,
) -> None:
    by_migrate = cli_on(tmp_path / "migrate", database_url, capsys, monkeypatch)
    by_upgrade = cli_on(tmp_path / "upgrade", other_database_url, capsys, monkeypatch)
    slugs = ("acme", "globex")
    for run in (by_migrate, by_upgrade):
        for slug in slugs:
            assert run("tenants", "create", slug)[0] == 0

    # Version 2.0.0 brings a new migration: one fleet gets ``migrate``, the other ``upgrade --all``.
    code, out, _ = by_migrate("migrate", "--json", revisions=2, version="2.0.0")
    report = as_json(out)
    assert code == 0 and report["counts"]["migrated"] == 2
    bump = {"plugin": "items", "before": "1.0.0", "after": "2.0.0"}
    assert [t["upgraded"] for t in report["tenants"]] == [[bump], [bump]]
    code, out, _ = by_upgrade("plugins", "upgrade", "items", "--all", "--json", revisions=2, version="2.0.0")
    assert code == 0 and [o["result"] for o in as_json(out)] == ["done", "done"]

    def end_state(run: Run) -> tuple[list[Any], list[tuple[str, str | None, str]]]:
        plugins = [as_json(run("tenants", "show", slug, revisions=2, version="2.0.0")[1])["plugins"] for slug in slugs]
        ledger = as_json(run("migrate", "status", "--json", revisions=2, version="2.0.0")[1])
        return plugins, sorted((s["slug"], s["revision"], s["state"]) for s in ledger if s["stream"] == "plugin:items")

    assert end_state(by_migrate) == end_state(by_upgrade)
    assert end_state(by_migrate) == (
        [{"items": {"version": "2.0.0", "status": "enabled"}}] * 2,
        [(slug, "items_0002", "current") for slug in slugs],
    )
    upgraded = [f"upgraded:1.0.0->2.0.0 {slug}" for slug in slugs]
    assert hook_calls(tmp_path / "migrate", "upgraded") == hook_calls(tmp_path / "upgrade", "upgraded") == upgraded

    code, out, _ = by_migrate("migrate", "--json", revisions=2, version="2.0.0")  # nothing left: no hook call
    assert code == 0 and as_json(out)["counts"] == {"up-to-date": 2, "migrated": 0, "failed": 0, "skipped": 0}
    assert hook_calls(tmp_path / "migrate", "upgraded") == upgraded

    # A version without a migration is an upgrade too, once.
    for _ in range(2):
        code, out, _ = by_migrate("migrate", "--json", revisions=2, version="2.1.0")
        assert code == 0
    assert hook_calls(tmp_path / "migrate", "upgraded:2.0.0") == [f"upgraded:2.0.0->2.1.0 {slug}" for slug in slugs]
    shown = as_json(by_migrate("tenants", "show", "acme", revisions=2, version="2.1.0")[1])
    assert shown["plugins"]["items"]["version"] == "2.1.0"


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
