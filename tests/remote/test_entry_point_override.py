"""Moving an installed plugin out of the host is one setting: its remote registration wins over its entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.remote.processes import ROOT, clean_environ, free_port, plugin_process

pytestmark = pytest.mark.slow


def test_a_plugin_registered_remote_is_loaded_remote_although_its_package_is_installed(tmp_path: Path) -> None:
    notes = plugin_process("plexica_plugin_notes:NotesPlugin", free_port(), "http://127.0.0.1:9", tmp_path).start()
    try:
        settings = tmp_path / "plexica.toml"
        settings.write_text(
            f'data_dir = "{tmp_path / "data"}"\n[[plugins.remote]]\nname = "notes"\nurl = "{notes.url}"\n',
            encoding="utf-8",
        )
        listed = subprocess.run(
            [str(Path(sys.executable).with_name("plexica")), "--settings", str(settings), "plugins", "list", "--json"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            cwd=ROOT,
            env=clean_environ({}),
        )
    finally:
        notes.stop()

    assert listed.returncode == 0, listed.stderr
    plugins = json.loads(listed.stdout)
    assert [(p["name"], p["mode"]) for p in plugins if p["name"] == "notes"] == [("notes", "remote")]
    assert ("files", "embedded") in [(p["name"], p["mode"]) for p in plugins]  # other entry points still load
