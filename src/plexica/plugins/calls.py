"""Calling hooks: await coroutine results in load order, isolate failures, apply timeouts.

pluggy calls implementations synchronously, so an async implementation returns a coroutine that
pluggy cannot await, and one plugin's exception would stop the whole call. These helpers call each
implementation themselves, in the host's load order (dependencies first), so that every failure
is reported as :class:`PluginCallError` naming the plugin and the hook.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import attrs
import pluggy

from plexica.observability.logging import plugin_scope
from plexica.observability.tracing import hook_span
from plexica_sdk.errors import PlexicaError, PluginCallError

__all__ = ["HookResults", "call_each", "call_first", "collect"]

logger = logging.getLogger(__name__)


@attrs.frozen
class HookResults:
    """What one hook call produced: results per plugin, and the failures."""

    hook: str
    results: tuple[tuple[str, Any], ...]
    errors: tuple[PluginCallError | PlexicaError, ...]

    def raise_first(self) -> None:
        """Raise the first failure, if any (for hooks whose failure must stop the operation)."""
        if self.errors:
            raise self.errors[0]


def _impls(
    pm: pluggy.PluginManager, hook: str, order: Sequence[str], only: Collection[str] | None
) -> Iterator[tuple[str, pluggy.HookImpl]]:
    caller = getattr(pm.hook, hook, None)
    if caller is None:
        raise PlexicaError(f"unknown hook {hook!r}")
    by_plugin = {impl.plugin_name: impl for impl in caller.get_hookimpls()}
    for name in order:
        impl = by_plugin.get(name)
        if impl is not None and (only is None or name in only):
            yield name, impl


def _invoke(impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
    return impl.function(*(kwargs[arg] for arg in impl.argnames))


def _translate(plugin: str, hook: str, exc: BaseException) -> PluginCallError | PlexicaError:
    if isinstance(exc, PlexicaError) and not isinstance(exc, PluginCallError):
        return exc  # raised on purpose: it passes through unchanged
    if isinstance(exc, PluginCallError):
        return exc
    if isinstance(exc, TimeoutError):
        return PluginCallError(plugin, hook, "timed out")
    return PluginCallError(plugin, hook, f"{type(exc).__name__}: {exc}")


async def _await(result: Any, timeout: float | None) -> Any:
    if inspect.isawaitable(result):
        async with asyncio.timeout(timeout):
            return await result
    return result


async def call_each(
    pm: pluggy.PluginManager,
    hook: str,
    order: Sequence[str],
    *,
    only: Collection[str] | None = None,
    timeout: float | None = None,
    per_plugin: Callable[[str], Mapping[str, Any]] | None = None,
    **kwargs: Any,
) -> HookResults:
    """Call every implementation of a notification hook in ``order`` and await each result.

    A failing plugin is logged and recorded; the others still run.

    Args:
        pm: the pluggy manager holding the plugins.
        hook: the hook's name.
        order: plugin names in load order; implementations are called in this order.
        only: restrict the call to these plugins (e.g. those installed for a tenant).
        timeout: seconds allowed for each awaited implementation.
        per_plugin: extra arguments computed for each plugin (e.g. its own ``host`` handle).
        **kwargs: the hook's arguments; each implementation receives the subset it declares.
    """
    results: list[tuple[str, Any]] = []
    errors: list[PluginCallError | PlexicaError] = []
    for name, impl in _impls(pm, hook, order, only):
        arguments = {**kwargs, **per_plugin(name)} if per_plugin else kwargs
        try:
            with plugin_scope(name), hook_span(name, hook):  # logs and the span name the plugin
                results.append((name, await _await(_invoke(impl, arguments), timeout)))
        except Exception as exc:
            error = _translate(name, hook, exc)
            logger.warning("plugin hook failed", extra={"plugin": name, "hook": hook, "error": str(error)})
            errors.append(error)
    return HookResults(hook, tuple(results), tuple(errors))


async def call_first(
    pm: pluggy.PluginManager,
    hook: str,
    order: Sequence[str],
    *,
    only: Collection[str] | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> Any:
    """Call a query hook in order and return the first non-``None`` result (failures are skipped)."""
    for name, impl in _impls(pm, hook, order, only):
        with plugin_scope(name), hook_span(name, hook):
            try:
                result = _invoke(impl, kwargs)
                if inspect.isawaitable(result):
                    result = await _await(result, timeout)
            except Exception as exc:
                logger.warning("plugin hook failed", extra={"plugin": name, "hook": hook, "error": str(exc)})
                continue
        if result is not None:
            return result
    return None


def collect(pm: pluggy.PluginManager, hook: str, order: Sequence[str], **kwargs: Any) -> dict[str, Any]:
    """Call a sync contribution hook and return each plugin's result.

    Raises:
        PluginCallError: an implementation raised or returned a coroutine (contributions are sync).
    """
    collected: dict[str, Any] = {}
    for name, impl in _impls(pm, hook, order, None):
        try:
            result = _invoke(impl, kwargs)
        except PlexicaError:
            raise
        except Exception as exc:
            raise PluginCallError(name, hook, f"{type(exc).__name__}: {exc}") from exc
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise PluginCallError(name, hook, "contribution hooks must be synchronous")
        collected[name] = result
    return collected
