"""Production never trusts the development token issuer: it refuses to start, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plexica import create_app
from plexica.settings import DEV_ISSUER_IN_PRODUCTION, Settings, load_settings
from plexica_sdk.errors import SettingsError


def test_production_without_keycloak_is_refused_at_load() -> None:
    with pytest.raises(SettingsError) as excinfo:
        load_settings(environ={"PLEXICA_ENVIRONMENT": "production"})
    assert excinfo.value.problems == [DEV_ISSUER_IN_PRODUCTION]
    assert "\n" not in str(excinfo.value)


def test_settings_built_by_hand_are_refused_by_create_app(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="development token issuer"):
        create_app(Settings(environment="production", data_dir=tmp_path))
    assert not any(tmp_path.iterdir())  # refused before anything was created, the dev key included


def test_production_with_keycloak_or_a_gateway_starts_without_the_dev_issuer(tmp_path: Path) -> None:
    for auth in ({"keycloak": {"url": "http://127.0.0.1:1"}}, {"mode": "gateway", "gateway_key": "g" * 32}):
        settings = load_settings(environ={}, environment="production", data_dir=str(tmp_path), auth=auth)
        app = create_app(settings)
        assert app.state.platform.dev_issuer is None
        assert not [route for route in app.routes if "/realms/" in getattr(route, "path", "")]  # no JWKS served


def test_development_and_test_keep_the_dev_issuer(tmp_path: Path) -> None:
    for environment in ("development", "test"):
        settings = load_settings(environ={}, environment=environment, data_dir=str(tmp_path))
        assert create_app(settings).state.platform.dev_issuer is not None


def test_plexica_serve_exits_non_zero_with_the_one_line(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PLEXICA_")},
        "PLEXICA_ENVIRONMENT": "production",
        "PLEXICA_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "plexica.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: invalid settings: {DEV_ISSUER_IN_PRODUCTION}"], done.stderr
