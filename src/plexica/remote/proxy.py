"""The host-side stand-in of a remote plugin: a plugin object pluggy loads like any other.

:class:`RemotePlugin` has one hook implementation per hook the remote serves, so every piece of
the host that calls hooks (the plugin manager's contributions, ``call_each`` / ``call_first``,
the tenant lifecycle, ABAC resource attributes, the event bus) works unchanged:

* ``plexica_manifest`` and the start-up contributions answer from the :class:`Snapshot` read
  when the host was built (pluggy asks for them synchronously);
* ``plexica_subscriptions`` returns subscriptions whose handlers POST the event to the plugin
  (``/.plexica/events``): a failure raises, so the bus's retries, dead letters and the plugin's
  ``mark_processed`` apply as embedded;
* ``plexica_tenant_migrations`` returns the accepted migrations bundle under ``data_dir``;
* ``plexica_routes`` returns one mount that reverse-proxies ``/api/plugins/{name}/*`` (and labels
  each request with the plugin's route template it matches, for the metrics);
* every other hook the remote lists is an RPC through :class:`RemoteClient`, with a fresh
  context token per attempt; a lifecycle hook that cannot reach the plugin is deferred
  (:mod:`plexica.remote.deferred`);
* ``plexica_host_started`` is called again on a process the host has not announced itself to:
  a health probe (:meth:`RemotePlugin.check`) answered with a boot id other than the one of the
  process that answered the hook (the plugin restarted, or was down when the host started).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, final

from starlette.routing import Mount

from plexica.remote.client import RemoteClient
from plexica.remote.deferred import DEFERRABLE_HOOKS, DEFERRED_EVENT_TYPE, DEFERRED_SUBSCRIPTION, HookDeferrer
from plexica.remote.reverse_proxy import ReverseProxy, template_routes
from plexica.remote.snapshot import Snapshot
from plexica_sdk import context, hookspecs
from plexica_sdk.converter import structure
from plexica_sdk.errors import (
    AuthenticationError,
    BackendUnavailableError,
    PlexicaError,
    PluginLoadError,
    PluginTimeoutError,
    PluginUnavailableError,
    ValidationError,
)
from plexica_sdk.markers import hookimpl
from plexica_sdk.protocols import Host
from plexica_sdk.remote.wire import CONTRIBUTION_KEYS, LOCAL_ARGUMENTS, RPC_HOOKS, decode_result
from plexica_sdk.types import Event, PluginManifest, Subscription, TenantContext

__all__ = ["RemotePlugin"]

logger = logging.getLogger(__name__)

#: Hooks the proxy answers itself instead of calling the plugin.
_LOCAL_HOOKS = frozenset({"plexica_manifest", *CONTRIBUTION_KEYS})
_STARTED: Final = "plexica_host_started"
_STOPPING: Final = "plexica_host_stopping"
#: What a plugin answers when it did not run a hook: it was not reached, or could not verify the call.
_NOT_RUN = (PluginUnavailableError, PluginTimeoutError, BackendUnavailableError, AuthenticationError)

Refetch = Callable[[Sequence[str]], Snapshot]


def _spec(hook: str) -> Callable[..., Any]:
    spec = getattr(hookspecs, hook)
    assert callable(spec)
    return spec  # type: ignore[no-any-return]


def _implementation(hook: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` as a hook implementation of ``hook`` whose arguments are exactly the spec's.

    pluggy reads an implementation's argument names from its code, after ``inspect.unwrap``; the
    hook spec itself is the ``__wrapped__`` function, so the proxy asks for every argument the
    spec defines and receives them in the spec's order.
    """
    function.__wrapped__ = _spec(hook)  # type: ignore[attr-defined]
    function.__name__ = function.__qualname__ = hook
    function.__doc__ = f"{hook}, answered by the remote plugin."
    return hookimpl(function)


@final
class RemotePlugin:
    """A remote plugin as the host loads it.

    Args:
        snapshot: what the host knows of it (manifest, contributions, hooks).
        client: the client that calls it.
        migrations: the folder of its accepted migrations bundle, None when it has no tables.
        refetch: fetches the contributions again for the host's plugin list, when the plugin's
            ``plexica_subscriptions`` takes it.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        client: RemoteClient,
        *,
        migrations: str | None = None,
        refetch: Refetch | None = None,
    ) -> None:
        self.name = client.name
        self.url = snapshot.url
        self.snapshot = snapshot
        self.client = client
        self._refetch = refetch
        self._deferrer: HookDeferrer | None = None
        self._plugins: tuple[str, ...] = ()
        #: Between the host's plexica_host_started and plexica_host_stopping: a new process is announced to.
        self.started = False
        self._announced: str | None = None  # the boot id of the process that answered plexica_host_started
        self._announcing = asyncio.Lock()
        self._again: asyncio.Task[None] | None = None
        try:
            self._manifest = structure(snapshot.manifest, PluginManifest)
        except ValidationError as exc:
            raise PluginLoadError(self.name, f"its manifest is invalid: {exc}") from exc
        self._install(snapshot, migrations)
        client.use_event_batches(snapshot.contributions.get("event_batches") is True)

    def __repr__(self) -> str:
        return f"<RemotePlugin {self.name} at {self.url}>"

    def bind(self, deferrer: HookDeferrer) -> None:
        """Where lifecycle hooks that cannot reach the plugin go (the host binds it once it has an outbox)."""
        self._deferrer = deferrer

    # ---------------------------------------------------------------- hooks

    def _install(self, snapshot: Snapshot, migrations: str | None) -> None:
        hooks = snapshot.hooks & RPC_HOOKS
        implementations: dict[str, Callable[..., Any]] = {"plexica_manifest": lambda: self._manifest}
        for hook, key in CONTRIBUTION_KEYS.items():
            if hook in hooks and hook != "plexica_subscriptions":
                implementations[hook] = self._contribution(hook, key)
        if "plexica_subscriptions" in hooks or hooks & DEFERRABLE_HOOKS:
            implementations["plexica_subscriptions"] = lambda plugins: self._subscriptions(plugins)
        if migrations is not None:
            implementations["plexica_tenant_migrations"] = lambda: migrations
        if snapshot.has_routes:
            templates = template_routes(self.name, snapshot.contributions.get("route_templates"))
            routes = [Mount("", app=ReverseProxy(self.client, templates))]
            implementations["plexica_routes"] = lambda: routes
        for hook in sorted(hooks - _LOCAL_HOOKS):
            implementations[hook] = self._remote(hook)
        if _STARTED in hooks:
            implementations[_STARTED] = lambda host: self._host_started()
            stopping = implementations.get(_STOPPING)
            implementations[_STOPPING] = lambda host: self._host_stopping(stopping)
        for hook, function in implementations.items():
            setattr(self, hook, _implementation(hook, function))

    def _contribution(self, hook: str, key: str) -> Callable[[], Any]:
        def contribution() -> Any:
            try:
                return decode_result(hook, self.snapshot.contributions.get(key, []))
            except ValidationError as exc:
                raise PluginLoadError(self.name, f"{hook} answered something that is not its type: {exc}") from exc

        return contribution

    def _subscriptions(self, plugins: Sequence[str]) -> list[Subscription]:
        """The remote's subscriptions, each delivering over HTTP; plus the deferred-hooks one."""
        self._plugins = tuple(plugins)
        snapshot = self.snapshot
        if snapshot.contributions.get("subscriptions_use_plugins") is True and self._refetch is not None and plugins:
            snapshot = self.snapshot = self._refetch(plugins)
            self.client.use_event_batches(snapshot.contributions.get("event_batches") is True)
        subscriptions = []
        for entry in snapshot.contributions.get("subscriptions", []):
            if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
                raise PluginLoadError(self.name, f"subscription {entry!r} has no name")
            attempts = entry.get("max_attempts")
            subscriptions.append(
                Subscription(
                    event_type=str(entry.get("event_type")),
                    handler=self._handler(entry["name"]),
                    name=entry["name"],
                    max_attempts=attempts if isinstance(attempts, int) and attempts >= 1 else None,
                )
            )
        if snapshot.hooks & DEFERRABLE_HOOKS:
            subscriptions.append(
                Subscription(
                    event_type=DEFERRED_EVENT_TYPE,
                    handler=self._redeliver,
                    name=DEFERRED_SUBSCRIPTION,
                    max_attempts=self.client.config.deferred_attempts,
                )
            )
        return subscriptions

    def _handler(self, subscription: str) -> Callable[[Event, Host], Any]:
        async def deliver(event: Event, host: Host) -> None:
            # The bus runs handlers in the event's tenant context (none for a global event).
            await self.client.deliver(subscription, event, context.get(), self._plugins)

        deliver.__qualname__ = f"{self.name}.{subscription}"
        return deliver

    async def _redeliver(self, event: Event, host: Host) -> None:
        """Deliver a deferred lifecycle hook of this plugin (other plugins' are not ours)."""
        data = event.data
        if not isinstance(data, Mapping) or data.get("plugin") != self.name:
            return
        hook, args = data.get("hook"), data.get("args")
        if hook not in DEFERRABLE_HOOKS or not isinstance(args, Mapping) or not isinstance(hook, str):
            logger.error("ignoring a malformed deferred hook call", extra={"plugin": self.name, "event": event.id})
            return
        ctx = structure(data.get("tenant"), TenantContext)
        with context.use(ctx):
            await self.client.call(hook, args, ctx)
        logger.info("deferred lifecycle hook delivered", extra={"plugin": self.name, "hook": hook, "tenant": ctx.slug})

    # ------------------------------------------------------- host started

    async def _host_started(self) -> None:
        self.started = True
        async with self._announcing:
            await self._announce()

    async def _host_stopping(self, remote: Callable[..., Any] | None) -> None:
        self.started = False  # from now on, a new process is not announced to
        if remote is not None:
            await remote(None)

    async def _announce(self) -> None:
        """Call ``plexica_host_started``; remember the process that ran it.

        One that did not run it is announced to again by the next probe: not reached, no answer in
        time, or refusing the call as unverifiable (at ``plexica serve``'s start the plugin cannot
        fetch the JWKS of a host not serving yet: a 503, then a 401 until its verifier refetches).
        """
        try:
            await self.client.call(_STARTED, {}, None)
        except _NOT_RUN:
            raise
        except PlexicaError:
            self._announced = self.client.boot_id  # it answered: its failure is its own, as embedded
            raise
        self._announced = self.client.boot_id

    async def check(self) -> dict[str, Any]:
        """The plugin's health answer (the ``/health`` probe, and the registry's watch).

        A process the host has not announced itself to gets ``plexica_host_started``, in a task of
        its own so the probe does not wait for the hook; only with the breaker closed, so the hook
        never takes the one trial call of a half-open breaker from a caller (the next probe does it).
        """
        document = await self.client.probe()
        boot = self.client.boot_id
        if boot is None or boot == self._announced or not self.started or self._again is not None:
            return document
        if self.client.breaker.state == "closed":
            self._again = asyncio.create_task(self._announce_again(boot), name=f"plexica-remote-announce-{self.name}")
        return document

    async def _announce_again(self, boot: str) -> None:
        try:
            async with self._announcing:
                if not self.started or boot == self._announced:
                    return  # announced meanwhile (the test kit's restart), or the host is stopping
                await self._announce()
            logger.info("plexica_host_started called on a new process", extra={"plugin": self.name, "boot": boot})
        except PlexicaError as exc:
            logger.warning(
                "plexica_host_started on a new process failed", extra={"plugin": self.name, "error": str(exc)}
            )
        finally:
            self._again = None

    async def aclose(self) -> None:
        """Stop a call of ``plexica_host_started`` still running (the host is stopping)."""
        again = self._again
        if again is not None:
            again.cancel()
            await asyncio.gather(again, return_exceptions=True)

    # ---------------------------------------------------------------- calls

    def _remote(self, hook: str) -> Callable[..., Any]:
        names = list(inspect.signature(_spec(hook)).parameters)

        def call(*values: Any) -> Any:
            return self._call(hook, dict(zip(names, values, strict=True)))

        return call

    async def _call(self, hook: str, arguments: dict[str, Any]) -> Any:
        tenant = arguments.get("tenant")
        ctx = tenant if isinstance(tenant, TenantContext) else context.get()
        args = {name: value for name, value in arguments.items() if name not in LOCAL_ARGUMENTS}
        try:
            return await self.client.call(hook, args, ctx)
        except (PluginUnavailableError, PluginTimeoutError) as exc:
            if hook not in DEFERRABLE_HOOKS or self._deferrer is None or ctx is None:
                raise
            await self._deferrer.defer(self.name, hook, args, ctx, str(exc))
            return None
