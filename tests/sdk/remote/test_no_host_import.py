"""A remote plugin process never imports the host: ``plexica_sdk`` and the plugin's own dependencies suffice."""

from __future__ import annotations

import json
import subprocess
import sys

# Builds the notes plugin's remote app, as ``python -m plexica_sdk.remote`` does, and reports what got imported.
_PROBE = """
import json, sys
from plexica_sdk.remote.run import load_plugin
from plexica_sdk.remote import create_app
app = create_app(load_plugin("plexica_plugin_notes:NotesPlugin"), host_url="http://127.0.0.1:1")
roots = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps({"roots": roots, "routes": len(app.routes)}))
"""

HOST_ONLY = ("plexica", "redis", "aiokafka", "aioboto3", "alembic", "authlib", "prometheus_client", "click")


def test_serving_the_notes_plugin_imports_nothing_of_the_host() -> None:
    completed = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=False, timeout=60)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    # manifest, health, contributions, migrations, rpc, events, event batches, and the plugin's own routes
    assert report["routes"] == 8
    assert "plexica_sdk" in report["roots"] and "starlette" in report["roots"]
    assert [root for root in report["roots"] if root in HOST_ONLY] == []
