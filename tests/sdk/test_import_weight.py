"""Importing the SDK stays light: a remote plugin installs only ``plexica_sdk`` and its few dependencies."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("sqlalchemy", "redis", "aiokafka", "aioboto3", "starlette")

SDK_MODULES = (
    "plexica_sdk",
    "plexica_sdk.hookspecs",
    "plexica_sdk.types",
    "plexica_sdk.converter",
    "plexica_sdk.context",
    "plexica_sdk.protocols",
    "plexica_sdk.http",
)

# Imports each module in turn and reports which heavy modules each one newly pulled in.
_PROBE = """
import importlib, json, sys
heavy = set(sys.argv[1].split(","))
pulled = {}
for name in sys.argv[2:]:
    before = set(sys.modules)
    importlib.import_module(name)
    new = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in heavy)
    pulled[name] = new
print(json.dumps(pulled))
"""


@pytest.fixture(scope="module")
def pulled_in() -> dict[str, list[str]]:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(HEAVY), *SDK_MODULES],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, list[str]] = json.loads(completed.stdout)
    return result


@pytest.mark.parametrize("module", SDK_MODULES)
def test_importing_sdk_module_pulls_in_no_database_broker_cloud_or_web_library(
    pulled_in: dict[str, list[str]], module: str
) -> None:
    assert pulled_in[module] == []


def test_probe_sees_a_heavy_import_when_one_happens() -> None:
    # Guards the probe itself: if it could not see heavy modules, the tests above would prove nothing.
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(HEAVY), "starlette"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "starlette" in json.loads(completed.stdout)["starlette"]
