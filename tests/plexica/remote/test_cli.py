"""``plexica plugin serve``: bad input is one line and exit code 2 (good input execs the SDK's server)."""

from __future__ import annotations

from click.testing import CliRunner

from plexica.cli.main import cli


def test_plexica_plugin_serve_refuses_a_path_without_an_object() -> None:
    result = CliRunner().invoke(cli, ["plugin", "serve", "plexica_plugin_notes"])
    assert result.exit_code == 2 and "MODULE:OBJECT" in result.output
