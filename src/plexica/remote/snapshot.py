"""What the host knows of a remote plugin before it connects anything: its manifest, contributions and migrations.

The host is built synchronously (``create_app``, every CLI command), and pluggy asks for the
manifest and the start-up contributions there. So building the host makes one bounded, synchronous
fetch per remote plugin (``GET /.plexica/manifest`` and ``GET /.plexica/contributions``, at most
``start_timeout_seconds``), and keeps what it got under ``data_dir/remote-plugins/{name}/``: a
plugin that is down when the host starts is loaded from that last good copy (its calls then fail
with 503 until it is back) instead of stopping the host. A plugin never seen before and down is a
``PluginLoadError`` naming its URL.

Migrations are code the host runs (Alembic scripts, with the host's database credentials), so
the host runs only a bundle it accepted: the first one it sees (or the one
``migrations_sha256`` pins), and later a new one only when the operator runs ``plexica plugins
register --remote URL`` again. A bundle is stored content-addressed,
``migrations/{sha256}/versions/...``, written once, atomically, and checked against its digest.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs
import httpx2

from plexica.settings import RemotePluginSettings
from plexica_sdk.converter import structure
from plexica_sdk.errors import PluginLoadError, ValidationError
from plexica_sdk.remote.wire import (
    CONTRIBUTIONS_PATH,
    MANIFEST_PATH,
    MIGRATIONS_PATH,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    bundle_digest,
)
from plexica_sdk.types import PluginManifest

__all__ = [
    "REMOTE_DIR",
    "Snapshot",
    "accepted_bundle",
    "fetch_snapshot",
    "migrations_path",
    "plugin_dir",
    "write_atomically",
]

logger = logging.getLogger(__name__)

#: Under ``data_dir``: one folder per remote plugin, and the CLI's registrations.
REMOTE_DIR: Final = "remote-plugins"
_SNAPSHOT_FILE: Final = "snapshot.json"
_MAX_DOCUMENT_BYTES: Final = 8 * 1024 * 1024
_SAFE_PATH: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\Z")
_DIGEST: Final = re.compile(r"^[0-9a-f]{64}\Z")


@attrs.frozen(kw_only=True)
class Snapshot:
    """A remote plugin as the host last saw it.

    Attributes:
        url: where it was fetched.
        manifest: the manifest document (``GET /.plexica/manifest``).
        contributions: the contributions document (``GET /.plexica/contributions``).
        migrations: the accepted bundle's digest, None when the plugin has no tables.
        fetched_at: when it was fetched (ISO 8601).
        live: fetched while building this host (False: the last good copy was used).
    """

    url: str
    manifest: Mapping[str, Any]
    contributions: Mapping[str, Any]
    migrations: str | None
    fetched_at: str
    live: bool = True

    @property
    def hooks(self) -> frozenset[str]:
        """The hooks the plugin serves over RPC."""
        hooks = self.contributions.get("hooks", [])
        return frozenset(hook for hook in hooks if isinstance(hook, str))

    @property
    def has_routes(self) -> bool:
        return self.contributions.get("routes") is True

    @property
    def offered_migrations(self) -> str | None:
        """The digest of the bundle the plugin serves (maybe not accepted yet)."""
        found = self.contributions.get("migrations")
        digest = found.get("sha256") if isinstance(found, Mapping) else None
        return digest if isinstance(digest, str) else None

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "manifest": dict(self.manifest),
            "contributions": dict(self.contributions),
            "migrations": self.migrations,
            "fetched_at": self.fetched_at,
        }


def plugin_dir(data_dir: Path, name: str) -> Path:
    """Where the host keeps what it knows of remote plugin ``name``."""
    return data_dir / REMOTE_DIR / name


def migrations_path(data_dir: Path, name: str, digest: str) -> Path:
    """The folder of an accepted migrations bundle (what ``plexica_tenant_migrations`` returns)."""
    return plugin_dir(data_dir, name) / "migrations" / digest


def _get(client: httpx2.Client, path: str, params: Mapping[str, str] | None = None) -> Any:
    """One wire protocol v1 document, or :class:`_Unreachable` saying why not."""
    try:
        response = client.get(path, params=params)
    except httpx2.HTTPError as exc:
        raise _Unreachable(f"{type(exc).__name__}") from exc
    if response.headers.get(PROTOCOL_HEADER) != str(PROTOCOL_VERSION):
        raise _Unreachable(f"{path} answered HTTP {response.status_code} without {PROTOCOL_HEADER}: 1")
    if response.status_code != 200 or len(response.content) > _MAX_DOCUMENT_BYTES:
        raise _Unreachable(f"{path} answered HTTP {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise _Unreachable(f"{path} answered something that is not JSON") from exc


class _Unreachable(Exception):
    """The plugin did not answer as a wire protocol v1 plugin: the last good copy may stand in."""


def _read(path: Path) -> Snapshot | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Snapshot(
            url=data["url"],
            manifest=data["manifest"],
            contributions=data["contributions"],
            migrations=data["migrations"],
            fetched_at=data["fetched_at"],
            live=False,
        )
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring a corrupt remote plugin snapshot", extra={"path": str(path)})
        return None


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _materialise(data_dir: Path, name: str, digest: str, bundle: Any) -> None:
    """Write an accepted bundle under its digest, once and atomically, after checking it.

    Raises:
        PluginLoadError: the bundle is malformed, holds an unsafe path, or does not match its digest.
    """
    target = migrations_path(data_dir, name, digest)
    if target.is_dir():
        return
    files = bundle.get("files") if isinstance(bundle, Mapping) else None
    if not isinstance(files, Mapping) or not all(isinstance(v, str) for v in files.values()):
        raise PluginLoadError(name, f"{MIGRATIONS_PATH} is not a bundle of text files")
    for relative in files:
        if not isinstance(relative, str) or not _SAFE_PATH.match(relative) or ".." in relative.split("/"):
            raise PluginLoadError(name, f"the migrations bundle holds an unsafe path {str(relative)[:100]!r}")
    if bundle_digest(files) != digest or bundle.get("sha256") != digest:
        raise PluginLoadError(name, "the migrations bundle does not match its digest")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".bundle-"))
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        (staging / "versions").mkdir(exist_ok=True)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # another process won the race: its copy is the same bundle
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def accepted_bundle(
    config: RemotePluginSettings, previous: Snapshot | None, offered: str | None, accept: bool
) -> str | None:
    """The bundle digest to run: pinned, newly accepted, or the one accepted before."""
    if offered is None:
        return None
    if not _DIGEST.match(offered):
        raise PluginLoadError(config.name, "the migrations digest is not a SHA-256")
    if config.migrations_sha256 is not None:
        return offered if offered == config.migrations_sha256 else config.migrations_sha256
    before = previous.migrations if previous is not None else None
    if accept or before is None or before == offered:
        return offered
    logger.warning(
        "a remote plugin offers new migrations; run `plexica plugins register --remote URL` to accept them",
        extra={"plugin": config.name, "offered": offered, "accepted": before},
    )
    return before


def fetch_snapshot(
    config: RemotePluginSettings,
    data_dir: Path,
    *,
    plugins: Sequence[str] = (),
    accept_migrations: bool = False,
    transport: httpx2.BaseTransport | None = None,
) -> Snapshot:
    """Fetch the plugin's manifest and contributions (bounded), keep them, and fall back to the last good copy.

    Args:
        config: the plugin's registration.
        data_dir: the host's data directory.
        plugins: the host's plugin names, for a ``plexica_subscriptions`` that takes them.
        accept_migrations: accept a new migrations bundle (``plexica plugins register``).
        transport: an HTTP transport (tests).

    Raises:
        PluginLoadError: the plugin answered something else than wire protocol v1, its manifest
            names another plugin, or it did not answer and no copy was kept.
    """
    name = config.name
    where = plugin_dir(data_dir, name) / _SNAPSHOT_FILE
    previous = _read(where)
    timeout = httpx2.Timeout(config.start_timeout_seconds, connect=min(config.start_timeout_seconds, 2.0))
    client = httpx2.Client(base_url=config.url.rstrip("/"), timeout=timeout, transport=transport, trust_env=False)
    try:
        with client:
            manifest = _get(client, MANIFEST_PATH)
            params = {"plugins": ",".join(plugins)} if plugins else None
            contributions = _get(client, CONTRIBUTIONS_PATH, params)
            if not isinstance(manifest, dict) or not isinstance(contributions, dict):
                raise _Unreachable("its manifest and contributions are not JSON objects")
            _check_names(config, manifest, contributions)
            snapshot = Snapshot(
                url=config.url,
                manifest=manifest,
                contributions=contributions,
                migrations=None,
                fetched_at=dt.datetime.now(dt.UTC).isoformat(),
            )
            offered = snapshot.offered_migrations
            digest = accepted_bundle(config, previous, offered, accept_migrations)
            if digest is not None and not migrations_path(data_dir, name, digest).is_dir():
                if digest != offered:
                    raise PluginLoadError(name, f"it serves migrations {offered}, not the accepted {digest}")
                _materialise(data_dir, name, digest, _get(client, MIGRATIONS_PATH))
            snapshot = attrs.evolve(snapshot, migrations=digest)
    except _Unreachable as exc:
        if previous is None:
            raise PluginLoadError(
                name, f"it did not answer at {config.url} ({exc}), and no copy from an earlier start is kept"
            ) from None
        logger.warning(
            "a remote plugin did not answer; loading the copy kept from an earlier start",
            extra={"plugin": name, "url": config.url, "fetched_at": previous.fetched_at, "error": str(exc)},
        )
        return previous
    write_atomically(where, json.dumps(snapshot.to_json(), sort_keys=True))
    return snapshot


def _check_names(config: RemotePluginSettings, manifest: Mapping[str, Any], contributions: Mapping[str, Any]) -> None:
    try:
        found = structure(manifest, PluginManifest).name
    except ValidationError as exc:
        raise PluginLoadError(config.name, f"its manifest is invalid: {exc}") from exc
    if found != config.name or contributions.get("plugin") != config.name:
        raise PluginLoadError(config.name, f"the plugin at {config.url} is {found!r}, not {config.name!r}")
