"""The pytest plugin (entry point ``pytest11: plexica``): fixtures for testing a Plexica plugin.

Loaded in every pytest run where Plexica is installed, so it only adds options and fixtures: no
autouse fixture, no hook that changes other tests, and no import of the host until a test asks
for a running one. Disable it with ``-p no:plexica``.

Name the plugin under test in the pytest configuration::

    [tool.pytest.ini_options]
    plexica_plugin = "plexica_plugin_notes:NotesPlugin"

or with ``--plexica-plugin MODULE:OBJECT``, or by overriding the ``plexica_plugins`` fixture.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from plexica_sdk.testing.events import EventLog
from plexica_sdk.testing.fake import FakeHost
from plexica_sdk.testing.host import (
    SERVICE_VARIABLES,
    ProvisionedTenant,
    ProvisionedWorkspace,
    RunningHost,
    build_settings,
    host_environ,
    plugin_name,
    process_environ,
    start_host,
)
from plexica_sdk.testing.isolation import IsolationKit
from plexica_sdk.testing.modes import available_plugin_modes, plugin_mode_starter

if TYPE_CHECKING:
    import httpx2

    from plexica.settings import Settings
    from plexica_sdk.types import Event

__all__ = [
    "client",
    "fake_host",
    "isolation",
    "make_tenant",
    "plexica_host",
    "plexica_plugins",
    "plexica_settings",
    "published_events",
    "tenant",
    "token_for",
    "two_tenants",
    "wait_for_event",
    "workspace",
]

#: Kafka is opt-in: every test host joins its own consumer groups, and leaving them on a shared
#: broker costs seconds per test (measured: ~9 s a test against Tansu, against ~2 s without it).
DEFAULT_SERVICES = "postgres,redis,s3"
#: Remote mode starts a process per test (about a second each): run in it where a conftest or
#: the ini key asks for it.
DEFAULT_MODES = ("embedded",)
_MODES_HELP = (
    "the plugin modes plugin_mode tests run in, one a line (default: embedded); "
    "--plexica-plugin-mode and a conftest's pytest_plexica_plugin_modes hook override it"
)
_SERVICES_HELP = (
    "services the test host uses when their TEST_* variables are set: a comma-separated subset of "
    f"{', '.join(SERVICE_VARIABLES)}, 'all' or 'none' (default: {DEFAULT_SERVICES})"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("plexica", "Plexica plugin testing (plexica_sdk.testing)")
    group.addoption(
        "--plexica-plugin",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="the plugin under test (a class, built without arguments, or an instance); repeatable",
    )
    group.addoption(
        "--plexica-plugin-mode",
        action="append",
        default=[],
        metavar="MODE",
        help=f"run plugin_mode tests in this mode only; repeatable (offered: {', '.join(available_plugin_modes())})",
    )
    group.addoption("--plexica-services", default=None, metavar="LIST", help=_SERVICES_HELP)
    parser.addini("plexica_plugin", "the plugin(s) under test, MODULE:OBJECT, one a line", type="linelist")
    parser.addini("plexica_services", _SERVICES_HELP, default=DEFAULT_SERVICES)
    parser.addini("plexica_plugin_modes", _MODES_HELP, type="linelist", default=list(DEFAULT_MODES))


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from plexica_sdk.testing import hooks

    pluginmanager.add_hookspecs(hooks)


def _check_modes(modes: Iterable[str], where: str) -> None:
    for mode in modes:
        try:
            plugin_mode_starter(mode)
        except LookupError as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None


def pytest_configure(config: pytest.Config) -> None:
    _check_modes(config.getoption("plexica_plugin_mode"), "--plexica-plugin-mode")
    _check_modes(config.getini("plexica_plugin_modes"), "plexica_plugin_modes")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "plugin_mode" in metafunc.fixturenames:
        config = metafunc.config
        modes = config.getoption("plexica_plugin_mode")
        if not modes:
            # The conftests above the test first (a directory's own choice), then the ini key.
            chosen = metafunc.definition.ihook.pytest_plexica_plugin_modes(config=config)
            if chosen is not None:
                _check_modes(chosen, "pytest_plexica_plugin_modes")
            modes = list(chosen) if chosen is not None else config.getini("plexica_plugin_modes")
        metafunc.parametrize("plugin_mode", modes, ids=modes, scope="function")


def load_plugin(spec: str) -> object:
    """The plugin object named by ``MODULE:OBJECT`` (a class is instantiated without arguments).

    Raises:
        pytest.UsageError: the spec is malformed or names nothing importable.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise pytest.UsageError(f"plexica plugin {spec!r} must be MODULE:OBJECT, e.g. plexica_plugin_notes:NotesPlugin")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise pytest.UsageError(f"plexica plugin {spec!r} cannot be loaded: {exc}") from None
    return found() if isinstance(found, type) else found


def _services(config: pytest.Config) -> list[str]:
    raw = config.getoption("plexica_services") or config.getini("plexica_services")
    words = [word.strip() for word in str(raw).split(",") if word.strip()]
    if words == ["none"]:
        return []
    if words == ["all"]:
        return list(SERVICE_VARIABLES)
    unknown = [word for word in words if word not in SERVICE_VARIABLES]
    if unknown:
        raise pytest.UsageError(f"plexica_services: unknown service(s) {unknown}; {_SERVICES_HELP}")
    return words


@pytest.fixture
def plexica_plugins(pytestconfig: pytest.Config) -> list[object]:
    """The plugin objects under test, from ``--plexica-plugin`` or the ``plexica_plugin`` ini key.

    Override this fixture to build the plugin yourself (with arguments, or several plugins).
    """
    specs = pytestconfig.getoption("plexica_plugin") or pytestconfig.getini("plexica_plugin")
    if not specs:
        raise pytest.UsageError(
            'no Plexica plugin under test: set plexica_plugin = "MODULE:OBJECT" in [tool.pytest.ini_options], '
            "pass --plexica-plugin MODULE:OBJECT, or override the plexica_plugins fixture"
        )
    return [load_plugin(spec) for spec in specs]


@pytest.fixture
def plexica_settings(tmp_path: Path, pytestconfig: pytest.Config) -> Settings:
    """The test host's settings: embedded (SQLite, in-process cache and bus, files) in ``tmp_path``.

    Real services replace the embedded backends when the project's ``TEST_*`` variables are set
    (see ``plexica_services``), and ``PLEXICA_TEST_<SECTION>__<KEY>`` variables set any other
    setting. Override this fixture for settings of your own (``build_settings`` helps).
    """
    environ = host_environ(process_environ(), _services(pytestconfig))
    return build_settings(tmp_path / "plexica", environ)


@pytest.fixture
async def plexica_host(
    plexica_plugins: list[object], plexica_settings: Settings, plugin_mode: str, anyio_backend: Any
) -> AsyncIterator[RunningHost]:
    """A host running the plugins under test (in ``plugin_mode``), its lifespan entered."""
    import contextlib

    starter = plugin_mode_starter(plugin_mode)
    names = [plugin_name(plugin) for plugin in plexica_plugins]
    if plugin_mode == "remote" and plexica_settings.database.url is None:
        with_tables = [name for name, plugin in zip(names, plexica_plugins, strict=True) if _has_tables(plugin)]
        if with_tables:
            pytest.skip(
                f"remote mode on SQLite: {', '.join(with_tables)} has tables, and a remote plugin gets a "
                "database only on PostgreSQL (its own role; docs/remote.md): set TEST_DATABASE_URL"
            )
    async with contextlib.AsyncExitStack() as stack:
        loaded = [await stack.enter_async_context(starter(plugin)) for plugin in plexica_plugins]
        running = await stack.enter_async_context(start_host(loaded, plexica_settings, names))
        yield running


def _has_tables(plugin: object) -> bool:
    """Whether ``plugin`` ships tenant migrations (so ``host.session()`` is part of its work)."""
    migrations = getattr(plugin, "plexica_tenant_migrations", None)
    return migrations is not None and migrations() is not None


@pytest.fixture
def client(plexica_host: RunningHost) -> httpx2.AsyncClient:
    """An ``httpx2.AsyncClient`` talking to the test host in-process (``http://testserver``)."""
    return plexica_host.client


@pytest.fixture
def make_tenant(plexica_host: RunningHost) -> Callable[..., Any]:
    """``await make_tenant(slug=None, plan="standard")``: provision a tenant with the plugins installed."""
    return plexica_host.make_tenant


@pytest.fixture
async def tenant(plexica_host: RunningHost, anyio_backend: Any) -> ProvisionedTenant:
    """One provisioned tenant (the default tenant of ``token_for``)."""
    return await plexica_host.make_tenant()


@pytest.fixture
async def two_tenants(plexica_host: RunningHost, anyio_backend: Any) -> tuple[ProvisionedTenant, ProvisionedTenant]:
    """Two provisioned tenants, A and B."""
    return await plexica_host.make_tenant(), await plexica_host.make_tenant()


@pytest.fixture
async def workspace(tenant: ProvisionedTenant, anyio_backend: Any) -> ProvisionedWorkspace:
    """A workspace of ``tenant``, made by ``alice`` (its admin): ``workspace.headers(user)`` select it.

    More people: ``await workspace.add_member("bob", "viewer")``; more workspaces:
    ``await tenant.make_workspace(admin=..., members={...})``.
    """
    return await tenant.make_workspace(admin="alice")


@pytest.fixture
def token_for(plexica_host: RunningHost) -> Callable[..., str]:
    """``token_for(user="alice", roles=("member",), tenant=None, **claims)``: a token the host accepts."""
    return plexica_host.token_for


@pytest.fixture
def published_events(plexica_host: RunningHost) -> EventLog:
    """Every event delivered to consumers so far (``core.*`` and the tested plugins' own)."""
    return plexica_host.events


@pytest.fixture
def wait_for_event(plexica_host: RunningHost) -> Callable[..., Any]:
    """``await wait_for_event(type, timeout=5.0, tenant=None, where=None)``: the first matching delivery."""

    async def wait(event_type: str, timeout: float = 5.0, **kwargs: Any) -> Event:
        return await plexica_host.wait_for_event(event_type, timeout=timeout, **kwargs)

    return wait


@pytest.fixture
def isolation(plexica_host: RunningHost, two_tenants: tuple[ProvisionedTenant, ProvisionedTenant]) -> IsolationKit:
    """The isolation kit for ``two_tenants``: ``await isolation.check(writes=[...], reads=[...])``."""
    a, b = two_tenants
    return IsolationKit(plexica_host, a, b)


@pytest.fixture
async def fake_host(plexica_plugins: list[object], anyio_backend: Any) -> AsyncIterator[Callable[..., FakeHost]]:
    """``fake_host(**kwargs)``: a :class:`FakeHost` with the (first) tested plugin's manifest."""
    manifest = getattr(plexica_plugins[0], "plexica_manifest", None)
    made: list[FakeHost] = []

    def make(**kwargs: Any) -> FakeHost:
        fake = FakeHost(manifest() if manifest is not None else None, **kwargs)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        await fake.aclose()
