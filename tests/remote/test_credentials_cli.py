"""``plexica remote credentials create|rotate|revoke|list`` as an operator runs them, on SQLite and PostgreSQL.

The printed credential is then shown to the host's verifier, and on PostgreSQL the printed
database URL is used to log in as the plugin's role, as the plugin's process would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from plexica.cli.main import main
from plexica.platform import Platform
from plexica.settings import load_settings
from plexica_sdk.errors import AuthenticationError
from tests.plexica.db.support import database_url, write_migrations
from tests.remote.callback_support import PROBE_REVISIONS

__all__ = ["database_url"]

pytestmark = pytest.mark.anyio

Run = Callable[..., tuple[int, str, str]]


def _settings(directory: Path, url: str | None) -> Path:
    settings = directory / "plexica.toml"
    database = f'\n[database]\nurl = "{url}"\n' if url else ""
    settings.write_text(
        f'environment = "test"\ndata_dir = "{directory / "data"}"\nload_entry_points = false\n'
        f'plugins = ["tests.remote.callback_support:EnvProbePlugin"]\n{database}',
        encoding="utf-8",
    )
    return settings


async def test_the_credential_lifecycle(
    database_url: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PROBE_MIGRATIONS", write_migrations(tmp_path / "probe", 1, PROBE_REVISIONS))
    settings_path = _settings(tmp_path, database_url)

    async def plexica(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()

        def run() -> int:
            try:
                main(["--settings", str(settings_path), *args])
            except SystemExit as exc:
                return int(exc.code or 0)
            return 0

        code = await anyio.to_thread.run_sync(run)
        out, err = capsys.readouterr()
        return code, out, err

    assert (await plexica("tenants", "create", "acme"))[0] == 0
    assert (await plexica("plugins", "install", "probe", "--tenant", "acme"))[0] == 0

    code, out, err = await plexica("remote", "credentials", "create", "probe")
    assert code == 0, err
    printed = dict(line.split("=", 1) for line in out.splitlines())
    credential = printed["PLEXICA_PLUGIN_CREDENTIAL"]
    assert credential.startswith("pxc1.") and "shown once" in err
    assert ("PLEXICA_PLUGIN_DATABASE_URL" in printed) == (database_url is not None)

    code, _, err = await plexica("remote", "credentials", "create", "probe")
    assert code != 0 and "rotate or revoke" in err
    code, _, err = await plexica("remote", "credentials", "create", "nosuch")
    assert code != 0 and "unknown plugin" in err

    code, out, _ = await plexica("remote", "credentials", "list", "--json")
    key_id = credential.split(".")[1]
    assert code == 0 and f'"key_id": "{key_id}"' in out and credential.split(".")[2] not in out

    settings = load_settings(settings_path)
    async with Platform(settings) as platform:
        await platform.remote_credentials.verify(credential, "probe")
        if database_url is not None:  # the role logs in and reaches its table in acme
            engine = create_async_engine(printed["PLEXICA_PLUGIN_DATABASE_URL"], poolclass=NullPool)
            try:
                async with engine.connect() as conn:
                    await conn.execute(sa.text("INSERT INTO tenant_acme.probe_notes (title) VALUES ('cli')"))
            finally:
                await engine.dispose()

    code, out, err = await plexica("remote", "credentials", "rotate", "probe")
    assert code == 0, err
    rotated = dict(line.split("=", 1) for line in out.splitlines())["PLEXICA_PLUGIN_CREDENTIAL"]
    async with Platform(settings) as platform:
        with pytest.raises(AuthenticationError):
            await platform.remote_credentials.verify(credential, "probe")
        await platform.remote_credentials.verify(rotated, "probe")

    code, out, err = await plexica("remote", "credentials", "revoke", "probe")
    assert code == 0 and "revoked" in out, err
    async with Platform(settings) as platform:
        with pytest.raises(AuthenticationError):
            await platform.remote_credentials.verify(rotated, "probe")
        assert await platform.remote_credentials.list() == []
        if database_url is not None:  # NOLOGIN now
            engine = create_async_engine(printed["PLEXICA_PLUGIN_DATABASE_URL"], poolclass=NullPool)
            try:
                with pytest.raises(DBAPIError):
                    async with engine.connect() as conn:
                        await conn.execute(sa.text("SELECT 1"))
            finally:
                await engine.dispose()
    code, _, err = await plexica("remote", "credentials", "revoke", "probe")
    assert code != 0 and "no credential" in err
