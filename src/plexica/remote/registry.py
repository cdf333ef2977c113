"""The remote plugins of one host: where they are registered, and the proxies, clients and breakers built for them.

A remote plugin is registered by settings (``[[plugins.remote]]``, what every host of a fleet
reads) or by ``plexica plugins register --remote URL``, which records it in
``data_dir/remote-plugins/registrations.json`` for the hosts sharing that directory (settings
win on a name both list). Remote URLs come only from these two places, never from a request.

:class:`RemotePlugins` is built with the :class:`~plexica.platform.Platform`, synchronously and
before anything connects: it reads each plugin's :class:`~plexica.remote.snapshot.Snapshot`
(bounded fetch, else the last good copy) and turns it into a :class:`RemotePlugin` that the
plugin manager loads like an embedded plugin, with ``PluginSource(mode="remote")``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, final

import attrs
import httpx2

from plexica.observability.health import Probe
from plexica.observability.metrics import Metrics
from plexica.plugins.discovery import PluginSource
from plexica.remote.breaker import STATE_VALUES
from plexica.remote.client import RemoteClient
from plexica.remote.context_tokens import ContextSigner, load_signer
from plexica.remote.deferred import HookDeferrer
from plexica.remote.proxy import RemotePlugin
from plexica.remote.snapshot import REMOTE_DIR, Snapshot, fetch_snapshot, migrations_path, write_atomically
from plexica.settings import RemotePluginSettings, Settings, check_remote_url
from plexica_sdk.converter import structure
from plexica_sdk.errors import PluginLoadError, SettingsError, ValidationError
from plexica_sdk.remote.wire import MANIFEST_PATH, PROTOCOL_HEADER
from plexica_sdk.types import PluginManifest

__all__ = [
    "REGISTRATIONS_FILE",
    "RemotePlugins",
    "forget_registration",
    "record_registration",
    "recorded",
    "register",
    "registrations",
    "restore",
]

logger = logging.getLogger(__name__)

REGISTRATIONS_FILE: Final = "registrations.json"
#: How often the host probes the remote plugins it announced itself to, to find a restarted process.
WATCH_SECONDS: Final = 5.0


def _registrations_path(data_dir: Path) -> Path:
    return data_dir / REMOTE_DIR / REGISTRATIONS_FILE


def _recorded(data_dir: Path) -> list[RemotePluginSettings]:
    path = _registrations_path(data_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [structure(entry, RemotePluginSettings) for entry in data["plugins"]]
    except FileNotFoundError:
        return []
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        raise SettingsError([f"{path} is corrupt ({type(exc).__name__}); register the plugins again"]) from exc


def registrations(settings: Settings) -> list[RemotePluginSettings]:
    """Every remote plugin of this host: the settings' first, then those the CLI recorded."""
    configured = list(settings.remote.plugins)
    names = {plugin.name for plugin in configured}
    for plugin in _recorded(settings.data_dir):
        if plugin.name in names:
            logger.info(
                "remote plugin registered in settings and by the CLI: settings win", extra={"plugin": plugin.name}
            )
            continue
        configured.append(plugin)
    return configured


def record_registration(data_dir: Path, plugin: RemotePluginSettings) -> None:
    """Record (or replace) a CLI registration under ``data_dir``."""
    kept = [entry for entry in _recorded(data_dir) if entry.name != plugin.name]
    restore(data_dir, [*kept, plugin])


def forget_registration(data_dir: Path, name: str) -> bool:
    """Drop a CLI registration; False when there was none."""
    entries = _recorded(data_dir)
    kept = [entry for entry in entries if entry.name != name]
    if len(kept) == len(entries):
        return False
    restore(data_dir, kept)
    return True


def _name_at(url: str, timeout: float) -> str:
    """The plugin name in the manifest served at ``url``."""
    try:
        response = httpx2.get(url.rstrip("/") + MANIFEST_PATH, timeout=timeout, follow_redirects=False, trust_env=False)
        if response.status_code != 200 or response.headers.get(PROTOCOL_HEADER) != "1":
            raise PluginLoadError(
                url, f"{MANIFEST_PATH} answered HTTP {response.status_code} without {PROTOCOL_HEADER}: 1"
            )
        return structure(response.json(), PluginManifest).name
    except httpx2.HTTPError as exc:
        raise PluginLoadError(url, f"it does not answer ({type(exc).__name__})") from exc
    except (ValueError, ValidationError) as exc:
        raise PluginLoadError(url, f"its manifest is invalid: {exc}") from exc


def register(settings: Settings, url: str, *, name: str | None = None) -> tuple[RemotePluginSettings, Snapshot]:
    """Fetch a remote plugin live, accept its migrations, and record its registration under ``data_dir``.

    The caller then builds the host, which validates the plugin like an embedded one (and calls
    :func:`forget_registration` or records the previous registration again if that fails).

    Raises:
        SettingsError: the URL is not an http(s) URL, or the settings register that name already.
        PluginLoadError: the plugin does not answer, or answers something else than wire protocol v1.
    """
    try:
        check_remote_url(url)  # before anything: an URL with credentials is never fetched, nor echoed
        config = RemotePluginSettings(name=name or _name_at(url, 5.0), url=url)
    except ValueError as exc:
        raise SettingsError([str(exc)]) from exc
    if any(plugin.name == config.name for plugin in settings.remote.plugins):
        raise SettingsError(
            [f"plugin {config.name!r} is registered in the settings ([[plugins.remote]]): change it there"]
        )
    snapshot = fetch_snapshot(config, settings.data_dir, accept_migrations=True)
    if not snapshot.live:
        raise PluginLoadError(config.name, f"it does not answer at {url}")
    record_registration(settings.data_dir, config)
    return config, snapshot


def recorded(data_dir: Path) -> list[RemotePluginSettings]:
    """The registrations the CLI recorded under ``data_dir``."""
    return _recorded(data_dir)


def restore(data_dir: Path, registrations: Sequence[RemotePluginSettings]) -> None:
    """Put back the CLI's registrations as they were (a registration that failed validation)."""
    body = {"plugins": [attrs.asdict(entry) for entry in registrations]}
    write_atomically(_registrations_path(data_dir), json.dumps(body, indent=2, sort_keys=True))


@final
class RemotePlugins:
    """The remote plugins of one host, ready to load; enter it with the host to open their connections.

    Args:
        settings: the host settings (registrations, ``data_dir``, the signing keys).
        configs: the registrations to load; default: :func:`registrations`.
        accept_migrations: accept new migrations bundles (``plexica plugins register``).

    Raises:
        SettingsError: remote plugins are registered but this host has no key to sign their calls.
        PluginLoadError: a plugin answered something else than wire protocol v1, or it is down and
            no copy of it was kept (see :mod:`plexica.remote.snapshot`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        configs: Sequence[RemotePluginSettings] | None = None,
        accept_migrations: bool = False,
    ) -> None:
        self.settings = settings
        self.configs = list(registrations(settings) if configs is None else configs)
        self.proxies: dict[str, RemotePlugin] = {}
        self._watch: asyncio.Task[None] | None = None
        if not self.configs:
            return
        signer = load_signer(settings)
        if signer is None:
            raise SettingsError(["remote plugins are registered: set remote.signing_keys to sign their calls"])
        self.signer: ContextSigner = signer
        for config in self.configs:
            snapshot = fetch_snapshot(config, settings.data_dir, accept_migrations=accept_migrations)
            self.proxies[config.name] = self._proxy(config, snapshot)

    def _proxy(self, config: RemotePluginSettings, snapshot: Snapshot) -> RemotePlugin:
        data_dir = self.settings.data_dir
        migrations = str(migrations_path(data_dir, config.name, snapshot.migrations)) if snapshot.migrations else None

        def refetch(plugins: Sequence[str]) -> Snapshot:
            return fetch_snapshot(config, data_dir, plugins=plugins)

        return RemotePlugin(snapshot, RemoteClient(config, self.signer), migrations=migrations, refetch=refetch)

    def sources(self) -> list[PluginSource]:
        """The proxies as plugin sources (``mode="remote"``), in registration order."""
        return [PluginSource(proxy, f"remote:{proxy.url}", "remote") for proxy in self.proxies.values()]

    def bind(self, deferrer: HookDeferrer) -> None:
        """Give every proxy the outbox writer its unreachable lifecycle hooks go to."""
        for proxy in self.proxies.values():
            proxy.bind(deferrer)

    # ------------------------------------------------------------ lifetime

    async def __aenter__(self) -> RemotePlugins:
        for proxy in self.proxies.values():
            await proxy.client.__aenter__()
        if any("plexica_host_started" in proxy.snapshot.hooks for proxy in self.proxies.values()):
            self._watch = asyncio.create_task(self._watching(), name="plexica-remote-watch")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
            self._watch = None
        for proxy in self.proxies.values():
            await proxy.aclose()
            await proxy.client.__aexit__()

    async def _watching(self) -> None:
        """Probe the plugins announced to every :data:`WATCH_SECONDS`, so a restarted process gets
        ``plexica_host_started`` even when nobody polls ``/health``."""
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            started = [proxy for proxy in self.proxies.values() if proxy.started]
            for outcome in await asyncio.gather(*(proxy.check() for proxy in started), return_exceptions=True):
                if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                    raise outcome  # cancelled: the host is stopping

    # ------------------------------------------------------------ observing

    def probes(self) -> list[Probe]:
        """One optional ``/health`` probe per plugin (``plugin:{name}``): its health answer, and its breaker.

        A probe finding a process the host has not announced itself to calls its ``plexica_host_started``.
        """
        # Not required: one plugin down degrades the host; it never makes it unusable.
        return [
            Probe(name=f"plugin:{name}", check=proxy.check, required=False, describe=_breaker_of(proxy))
            for name, proxy in self.proxies.items()
        ]

    def watch(self, metrics: Metrics) -> None:
        """Keep ``plugin_breaker_state{plugin}`` current at every scrape (0 closed, 1 half-open, 2 open)."""
        if not self.proxies:
            return

        async def update() -> None:
            for name, proxy in self.proxies.items():
                metrics.plugin_breaker_state.labels(name).set(STATE_VALUES[proxy.client.breaker.state])

        metrics.refresh_with("plugin_breaker_state", update, ttl=0.0)

    def states(self) -> dict[str, Any]:
        """Each plugin's breaker, for tests and the CLI."""
        return {name: proxy.client.breaker.describe() for name, proxy in self.proxies.items()}


def _breaker_of(proxy: RemotePlugin) -> Callable[[], Mapping[str, object]]:
    breaker = proxy.client.breaker
    return lambda: {"breaker": breaker.describe()}
