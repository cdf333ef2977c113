"""``plexica-sdk`` is its own distribution: its wheel holds the SDK alone and serves a remote plugin.

The wheel is built from ``src/pyproject.toml`` the way a release is, then a plugin process is run
from the unpacked wheel with nothing importable but the standard library and what the SDK's
metadata (with the ``remote`` extra) and the plugin's own metadata declare, so an undeclared
dependency, or a module of the host, fails here rather than in a plugin's container.
"""

from __future__ import annotations

import email
import json
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _build_wheel(project: Path, out: Path) -> Path:
    completed = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def sdk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(ROOT / "src", tmp_path_factory.mktemp("sdk-wheel"))


@pytest.fixture(scope="module")
def unpacked_sdk(sdk_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    unpacked = tmp_path_factory.mktemp("sdk")
    with zipfile.ZipFile(sdk_wheel) as archive:
        archive.extractall(unpacked)
    return unpacked


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_sdk_wheel_holds_the_sdk_alone_with_its_test_kit_entry_point(sdk_wheel: Path) -> None:
    with zipfile.ZipFile(sdk_wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_text = archive.read(entry_points).decode()
    assert sdk_wheel.name.startswith("plexica_sdk-")
    assert {name.split("/")[0] for name in names} == {"plexica_sdk", sdk_wheel.name.split("-py3")[0] + ".dist-info"}
    assert "plexica_sdk/py.typed" in names and "plexica_sdk/migrations.py" in names
    assert "[pytest11]\nplexica = plexica_sdk.testing.plugin" in entry_text
    requires = [Requirement(line) for line in _metadata(sdk_wheel).get_all("Requires-Dist", [])]
    # Always: attrs, cattrs, pluggy. Nothing of the host's database, cache, broker, cloud or identity libraries.
    assert sorted(r.name for r in requires if r.marker is None) == ["attrs", "cattrs", "pluggy"]
    host_only = {"plexica", "redis", "aiokafka", "aioboto3", "alembic", "authlib", "prometheus-client", "click"}
    assert host_only.isdisjoint(r.name for r in requires)


def test_the_host_pins_the_sdk_it_is_released_with() -> None:
    sdk = tomllib.loads((ROOT / "src" / "pyproject.toml").read_text())["project"]
    host = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert f"plexica-sdk=={sdk['version']}" in host["project"]["dependencies"]
    assert host["project"]["version"] == sdk["version"]
    # The host's wheel no longer carries the SDK (two distributions installing one package would clash).
    assert host["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/plexica"]
    assert "pytest11" not in host["project"].get("entry-points", {})


def _closure(requirements: list[str], extras: set[str]) -> set[str]:
    """The installed distributions ``requirements`` reach, markers evaluated, as normalized names."""
    seen: set[str] = set()
    todo = [(Requirement(text), extras) for text in requirements]
    while todo:
        requirement, active = todo.pop()
        if requirement.marker is not None and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in (active or {""})
        ):
            continue
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for text in distribution(name).requires or []:
            todo.append((Requirement(text), set(requirement.extras)))
    return seen


# Runs inside the child: refuse every third-party module outside ``allowed``, then serve the notes
# plugin (``sys.argv[3]``) from the SDK wheel and ask its server for the manifest over ASGI.
_PROBE = """
import asyncio, importlib.abc, json, sys
allowed, third_party = set(json.loads(sys.argv[1])), set(json.loads(sys.argv[2]))

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        root = name.split(".")[0]
        if root in third_party and root not in allowed:
            raise ModuleNotFoundError(f"undeclared dependency imported: {name}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
import plexica_sdk
from plexica_sdk.remote import create_app
from plexica_sdk.remote.run import load_plugin

app = create_app(load_plugin(sys.argv[3]), host_url="http://127.0.0.1:1")

async def get(path):
    sent = []
    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}
    async def send(message):
        sent.append(message)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "headers": [], "server": ("t", 80),
             "client": ("127.0.0.1", 1), "root_path": ""}
    await app(scope, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))

status, manifest = asyncio.run(get("/.plexica/manifest"))
roots = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"sdk": plexica_sdk.__file__, "status": status, "name": manifest.get("name"), "roots": roots}))
"""


@pytest.mark.parametrize(
    ("project", "plugin", "name"),
    [
        ("examples/notes", "plexica_plugin_notes:NotesPlugin", "notes"),
        ("plugins-contrib/webhooks", "plexica_plugin_webhooks:WebhooksPlugin", "webhooks"),
    ],
)
def test_a_remote_plugin_runs_from_the_sdk_wheel_with_only_its_declared_dependencies(
    sdk_wheel: Path, unpacked_sdk: Path, project: str, plugin: str, name: str
) -> None:
    unpacked = unpacked_sdk
    sdk_requires = _metadata(sdk_wheel).get_all("Requires-Dist", [])
    declared = tomllib.loads((ROOT / project / "pyproject.toml").read_text())["project"]["dependencies"]
    plugin_requires = [r for r in declared if Requirement(r).name != "plexica-sdk"]
    allowed_dists = _closure(list(sdk_requires), {"remote"}) | _closure(plugin_requires, set())
    by_module = packages_distributions()
    third_party = sorted(by_module)
    allowed = sorted(
        module for module, dists in by_module.items() if {d.lower().replace("_", "-") for d in dists} & allowed_dists
    )
    assert "plexica" not in allowed and "aiokafka" not in allowed

    # -S: no site-packages processing, so neither the editable host nor the editable SDK is on the
    # path; the wheel comes first, the environment's third-party packages are reachable (and filtered).
    path = [str(unpacked), str(ROOT / project / "src"), sysconfig.get_paths()["purelib"]]
    completed = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            f"import sys; sys.path[:0] = {path!r}\n" + _PROBE,
            json.dumps(allowed),
            json.dumps(third_party),
            plugin,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["sdk"].startswith(str(unpacked))
    assert (report["status"], report["name"]) == (200, name)
    assert "plexica" not in report["roots"] and "plexica_sdk" in report["roots"]


def test_the_host_fixtures_name_the_missing_host_when_only_the_sdk_is_installed(unpacked_sdk: Path) -> None:
    unpacked = unpacked_sdk
    probe = (
        f"import sys; sys.path[:0] = {[str(unpacked), sysconfig.get_paths()['purelib']]!r}\n"
        "from plexica_sdk.testing.host import build_settings\n"
        "from pathlib import Path\n"
        "try:\n    build_settings(Path('.'), {})\n"
        "except ModuleNotFoundError as exc:\n    print(exc)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-S", "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "only plexica-sdk is installed: add `plexica` to the plugin's tests dependency group" in completed.stdout
