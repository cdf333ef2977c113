"""``python -m plexica_sdk.remote``: bad input is one line and exit code 2."""

from __future__ import annotations

import pytest

from plexica_sdk.errors import PluginLoadError
from plexica_sdk.remote.run import load_plugin, main


def test_load_plugin_instantiates_a_class_and_names_what_failed() -> None:
    plugin = load_plugin("plexica_plugin_notes:NotesPlugin")
    assert type(plugin).__name__ == "NotesPlugin"
    for path in ("plexica_plugin_notes", "no_such_module:Plugin", "plexica_plugin_notes:Missing"):
        with pytest.raises(PluginLoadError, match=path.split(":")[0]):
            load_plugin(path)


def test_serving_without_a_host_url_or_a_loadable_plugin_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLEXICA_HOST_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["plexica_plugin_notes:NotesPlugin"])
    assert exited.value.code == 2 and "--host-url" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["no_such_module:Plugin", "--host-url", "http://127.0.0.1:1"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "no_such_module" in err and "Traceback" not in err
