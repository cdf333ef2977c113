"""``/api/core/v1/plugins/{name}/config`` and ``plexica plugins config``, with the notes plugin's ``max_notes``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from plexica.tenancy.service import tenant_context_of
from tests.e2e.conftest import Host
from tests.plexica.db.support import database_url  # noqa: F401  (the sqlite/postgres fixture)

pytestmark = pytest.mark.anyio

URL = "/api/core/v1/plugins/notes/config"
MakeHost = Callable[..., contextlib.AbstractAsyncContextManager[Host]]


@pytest.fixture
async def running(make_host: MakeHost, database_url: str | None) -> AsyncIterator[Host]:  # noqa: F811
    """The host on SQLite and on a fresh PostgreSQL database, with tenants acme and globex."""
    async with make_host(database={"url": database_url} if database_url else {}) as host:
        for slug in ("acme", "globex"):
            await host.platform.tenants.provision(slug)
        yield host


def admin(host: Host, tenant: str = "acme") -> dict[str, str]:
    return host.auth(host.token(tenant, "ada", roles=["tenant_admin"]))


async def test_admins_read_the_defaults_and_change_them_for_their_tenant_only(running: Host) -> None:
    got = await running.client.get(URL, headers=admin(running))
    assert got.status_code == 200, got.text
    assert got.json()["config"] == {"max_notes": 1000}
    assert got.json()["schema"]["properties"]["max_notes"]["default"] == 1000

    put = await running.client.put(URL, json={"max_notes": 5}, headers=admin(running))
    assert put.status_code == 200, put.text
    assert put.json()["config"] == {"max_notes": 5}
    assert (await running.client.get(URL, headers=admin(running))).json()["config"] == {"max_notes": 5}
    assert (await running.client.get(URL, headers=admin(running, "globex"))).json()["config"] == {"max_notes": 1000}

    patched = await running.client.patch(URL, json={"max_notes": None}, headers=admin(running))
    assert patched.json()["config"] == {"max_notes": 1000}


async def test_an_invalid_config_is_a_422_naming_the_field_and_changes_nothing(running: Host) -> None:
    await running.client.put(URL, json={"max_notes": 5}, headers=admin(running))
    for body in ({"max_notes": 0}, {"max_notes": "ten"}, {"max_notse": 3}):
        refused = await running.client.put(URL, json=body, headers=admin(running))
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["errors"][0]["field"] == next(iter(body))
    not_object = await running.client.put(URL, json=[1], headers=admin(running))
    assert not_object.status_code == 422
    assert (await running.client.get(URL, headers=admin(running))).json()["config"] == {"max_notes": 5}


async def test_members_may_not_read_or_change_it(running: Host) -> None:
    member = running.auth(running.token("acme", "bob"))
    assert (await running.client.get(URL, headers=member)).status_code == 403
    assert (await running.client.put(URL, json={"max_notes": 1}, headers=member)).status_code == 403
    assert (await running.client.get(URL)).status_code == 401
    assert (await running.client.get(URL, headers=admin(running))).json()["config"] == {"max_notes": 1000}


async def test_unknown_plugins_are_not_found(running: Host) -> None:
    for name in ("nope", "core"):
        response = await running.client.get(f"/api/core/v1/plugins/{name}/config", headers=admin(running))
        assert response.status_code == 404, response.text


async def test_the_plugin_sees_a_change_at_once(running: Host) -> None:
    editor = running.auth(running.token("acme", "eve", roles=["notes-editor"]))
    notes = "/api/plugins/notes/notes"
    assert (await running.client.post(notes, json={"title": "one"}, headers=editor)).status_code == 201
    kept = len((await running.client.get(notes, headers=editor)).json()["items"])  # with the welcome note
    limit = await running.client.put(URL, json={"max_notes": kept}, headers=admin(running))
    assert limit.status_code == 200

    refused = await running.client.post(notes, json={"title": "two"}, headers=editor)
    assert refused.status_code == 409, refused.text
    assert f"at most {kept} notes" in refused.json()["detail"]

    await running.client.put(URL, json={"max_notes": kept + 1}, headers=admin(running))
    assert (await running.client.post(notes, json={"title": "two"}, headers=editor)).status_code == 201


# ------------------------------------------------------------------- the CLI


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plexica.cli", *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


@pytest.mark.slow
async def test_the_cli_edits_the_config_and_a_running_host_sees_it_at_once(
    make_host: MakeHost, redis_url: str, tmp_path: Path
) -> None:
    """The CLI and a host share the database and Redis: the CLI's write drops the host's cached copy."""
    slug = f"cfg-{secrets.token_hex(3)}"  # Redis outlives test runs: a fresh tenant, fresh keys
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLEXICA_")}
    env |= {"PLEXICA_DATA_DIR": str(tmp_path / "data"), "PLEXICA_CACHE__REDIS_URL": redis_url}

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(_cli, env, *args)

    created = _cli(env, "tenants", "create", slug)
    assert created.returncode == 0, created.stderr

    async with make_host(cache={"redis_url": redis_url}) as host:
        # The CLI runs in a thread: a blocking call here would freeze the host's event loop while it
        # holds SQLite's write lock (its relay), and the CLI would wait on that lock in vain.
        ctx = tenant_context_of(await host.platform.tenants.get(slug))
        plugin = host.platform.host_for("notes", ctx)
        assert await plugin.config() == {"max_notes": 1000}  # now cached in Redis

        shown = await cli("plugins", "config", "notes", "--tenant", slug)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == {"max_notes": 1000}

        changed = await asyncio.to_thread(
            _cli, env, "plugins", "config", "notes", "--tenant", slug, "--set", "max_notes=7"
        )
        assert changed.returncode == 0, changed.stderr
        assert json.loads(changed.stdout) == {"max_notes": 7}
        assert await plugin.config() == {"max_notes": 7}  # seen at once, through the shared cache

        bad = await asyncio.to_thread(
            _cli, env, "plugins", "config", "notes", "--tenant", slug, "--set", "max_notes=lots"
        )
        assert bad.returncode == 1
        assert bad.stderr.count("\n") == 1 and "max_notes" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr

        config_file = tmp_path / "notes.json"
        config_file.write_text(json.dumps({"max_notes": 3}))
        replaced = await asyncio.to_thread(
            _cli, env, "plugins", "config", "notes", "--tenant", slug, "--file", str(config_file)
        )
        assert replaced.returncode == 0, replaced.stderr
        assert await plugin.config() == {"max_notes": 3}

        missing = await cli("plugins", "config", "nope", "--tenant", slug)
        assert missing.returncode == 1 and "nope" in missing.stderr
        await host.platform.tenants.delete(slug)


def test_set_values_are_json_when_they_parse_else_strings() -> None:
    from plexica.cli.plugins_admin import parse_assignment

    assert parse_assignment("n=5") == {"n": 5}
    assert parse_assignment("flag=true") == {"flag": True}
    assert parse_assignment("name=hello world") == {"name": "hello world"}
    assert parse_assignment('q="5"') == {"q": "5"}
    assert parse_assignment("a.b=[1,2]") == {"a": {"b": [1, 2]}}
    assert parse_assignment("gone=null") == {"gone": None}
