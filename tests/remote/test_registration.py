"""Registering a remote plugin: settings or ``plexica plugins register --remote URL``, validated like an embedded one.

The notes example runs as its own process; its manifest, contributions and migrations are read
over the wire, kept under ``data_dir`` (a last good copy for a start while it is down), and
loaded by the same plugin manager as the embedded plugin, with the same result.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plexica_plugin_notes import NotesPlugin

from plexica.plugins import PluginManager
from plexica.plugins.discovery import PluginSource
from plexica.remote.registry import RemotePlugins, recorded, register
from plexica.remote.snapshot import Snapshot, accepted_bundle
from plexica.settings import RemotePluginSettings, Settings, load_settings
from plexica_sdk.errors import PluginLoadError, SettingsError
from tests.remote.processes import NOTES, Process, free_port, plugin_process

pytestmark = pytest.mark.slow

NOTES_VERSIONS = Path(NotesPlugin().plexica_tenant_migrations()) / "versions"


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """The notes plugin served alone: manifest, contributions and migrations need no host."""
    tmp = tmp_path_factory.mktemp("notes")
    process = plugin_process(NOTES, free_port(), "http://127.0.0.1:9", tmp).start()
    try:
        yield process
    finally:
        process.stop()


def cli(settings_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PLEXICA_")}
    return subprocess.run(
        [sys.executable, "-m", "plexica.cli", *args],
        env={**environ, "PLEXICA_SETTINGS": str(settings_file)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "plexica.toml"
    path.write_text(f'environment = "test"\ndata_dir = "{tmp_path / "data"}"\nload_entry_points = false\n')
    return path


def contributions(plugin: Any) -> dict[str, Any]:
    return {
        "manifest": plugin.manifest,
        "permissions": plugin.permissions,
        "event_types": plugin.event_types,
        "default_roles": plugin.default_roles,
        "subscriptions": [(s.event_type, s.name, s.max_attempts) for s in plugin.subscriptions],
        "storage": plugin.storage,
    }


def test_register_validates_records_and_materialises_the_migrations(notes: Process, tmp_path: Path) -> None:
    path = settings_file(tmp_path)
    registered = cli(path, "plugins", "register", "--remote", notes.url, "--json")
    assert registered.returncode == 0, registered.stderr
    info = json.loads(registered.stdout)
    assert (info["name"], info["mode"], info["url"], info["routes"]) == ("notes", "remote", notes.url, True)
    versions = tmp_path / "data" / "remote-plugins" / "notes" / "migrations" / info["migrations"] / "versions"
    assert (versions / "0001_notes.py").read_text() == (NOTES_VERSIONS / "0001_notes.py").read_text()
    assert [entry.name for entry in recorded(tmp_path / "data")] == ["notes"]

    listed = cli(path, "plugins", "list", "--json")
    [entry] = [item for item in json.loads(listed.stdout) if item["name"] == "notes"]
    assert entry["mode"] == "remote" and entry["permissions"] == ["notes:note:read", "notes:note:write"]


def test_a_remote_plugin_contributes_exactly_what_it_does_embedded(notes: Process, tmp_path: Path) -> None:
    [source] = RemotePlugins(remote_settings(tmp_path, notes.url)).sources()
    assert source.mode == "remote" and source.origin == f"remote:{notes.url}"
    loaded_remote = PluginManager([source]).plugins["notes"]
    loaded_embedded = PluginManager([PluginSource(NotesPlugin(), "object:NotesPlugin")]).plugins["notes"]
    remote, embedded = contributions(loaded_remote), contributions(loaded_embedded)
    # One more subscription remote: the lifecycle hooks it missed while down (plexica.remote.deferred).
    assert remote.pop("subscriptions") == [
        *embedded.pop("subscriptions"),
        ("core.plugin.hook-deferred", "plexica-deferred-hooks", 10),
    ]
    assert remote == embedded
    assert loaded_remote.tenant_migrations is not None
    copied = Path(loaded_remote.tenant_migrations) / "versions" / "0001_notes.py"
    assert copied.read_text() == (NOTES_VERSIONS / "0001_notes.py").read_text()
    assert loaded_remote.info().mode == "remote"


def remote_settings(tmp_path: Path, url: str) -> Settings:
    return load_settings(
        environ={},
        environment="test",
        data_dir=str(tmp_path / "data"),
        load_entry_points=False,
        remote={"plugins": [{"name": "notes", "url": url}]},
    )


def test_a_plugin_down_at_start_is_loaded_from_its_last_good_copy(notes: Process, tmp_path: Path) -> None:
    [fetched] = RemotePlugins(remote_settings(tmp_path, notes.url)).proxies.values()
    assert fetched.snapshot.live
    dead = f"http://127.0.0.1:{free_port()}"  # the same plugin, now answering nowhere
    [kept] = RemotePlugins(remote_settings(tmp_path, dead)).proxies.values()
    assert not kept.snapshot.live and kept.snapshot.manifest == fetched.snapshot.manifest
    assert PluginManager(RemotePlugins(remote_settings(tmp_path, dead)).sources()).plugins["notes"].tenant_migrations


def test_a_plugin_never_seen_and_down_fails_naming_its_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PluginLoadError, match=re.escape(url)) as failed:
        RemotePlugins(remote_settings(tmp_path, url))
    assert failed.value.plugin == "notes"


def test_register_refuses_a_wrong_name_or_a_dead_url_and_records_nothing(notes: Process, tmp_path: Path) -> None:
    path = settings_file(tmp_path)
    wrong = cli(path, "plugins", "register", "--remote", notes.url, "--name", "billing")
    assert wrong.returncode == 1 and "'notes', not 'billing'" in wrong.stderr
    settings = load_settings(path, environ={})
    with pytest.raises(PluginLoadError, match="does not answer"):
        register(settings, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SettingsError, match="without credentials") as secret:
        register(settings, "http://user:pw@127.0.0.1:1")
    assert "pw" not in str(secret.value)
    assert recorded(tmp_path / "data") == []


def test_plugins_remote_tables_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        '[plugins]\npaths = ["a.b:C"]\n[[plugins.remote]]\nname = "notes"\nurl = "http://n:8100"\nretries = 0\n'
    )
    settings: Settings = load_settings(path, environ={})
    assert settings.plugins == ("a.b:C",)
    assert settings.remote.plugins == (RemotePluginSettings(name="notes", url="http://n:8100", retries=0),)
    path.write_text('[plugins]\nremote = [{name = "a1", url = "http://a"}, {name = "a1", url = "http://b"}]\n')
    with pytest.raises(SettingsError, match="more than once"):
        load_settings(path, environ={})
    path.write_text('[plugins]\npath = ["x:y"]\n')
    with pytest.raises(SettingsError, match=r"plugins\.path"):
        load_settings(path, environ={})


def test_only_an_accepted_migrations_bundle_runs() -> None:
    config = RemotePluginSettings(name="notes", url="http://n")
    first, second = "a" * 64, "b" * 64
    before = Snapshot(url="http://n", manifest={}, contributions={}, migrations=first, fetched_at="")
    assert accepted_bundle(config, None, first, accept=False) == first  # the first one seen
    assert accepted_bundle(config, before, second, accept=False) == first  # a new one waits for `register`
    assert accepted_bundle(config, before, second, accept=True) == second
    pinned = RemotePluginSettings(name="notes", url="http://n", migrations_sha256=first)
    assert accepted_bundle(pinned, None, second, accept=True) == first  # the pin wins even over `register`
    assert accepted_bundle(config, before, None, accept=False) is None
