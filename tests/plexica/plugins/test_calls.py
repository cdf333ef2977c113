"""Safe hook calls: load order, awaited coroutines, isolated failures, timeouts, argument subsets."""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import warnings
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any

import pytest

from plexica.plugins.calls import HookResults, call_each, call_first, collect
from plexica_sdk.errors import PermissionDeniedError, PlexicaError, PluginCallError
from plexica_sdk.markers import hookimpl
from plexica_sdk.types import PermissionDef, TenantContext
from tests.plexica.plugins.helpers import TENANT, pluggy_with

pytestmark = pytest.mark.anyio

PROVISIONED = "plexica_tenant_provisioned"
ATTRIBUTES = "plexica_resource_attributes"
PERMISSIONS = "plexica_permissions"


# ------------------------------------------------------------- test plugins


class SyncNotified:
    def __init__(self, name: str, log: list[str], *, error: Exception | None = None) -> None:
        self.name, self.log, self.error = name, log, error

    @hookimpl
    def plexica_tenant_provisioned(self, tenant: TenantContext, host: object) -> None:
        if self.error is not None:
            raise self.error
        self.log.append(f"{self.name}:{tenant.slug}")


class AsyncNotified:
    def __init__(self, name: str, log: list[str], *, delay: float = 0.0, error: Exception | None = None) -> None:
        self.name, self.log, self.delay, self.error = name, log, delay, error

    @hookimpl
    async def plexica_tenant_provisioned(self, tenant: TenantContext, host: object) -> None:
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        self.log.append(f"{self.name}:{tenant.slug}")


class TakesNothing:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    @hookimpl
    def plexica_tenant_provisioned(self) -> str:
        self.log.append("nothing")
        return "took nothing"


class TakesHostOnly:
    @hookimpl
    def plexica_tenant_provisioned(self, host: object) -> object:
        return host


class SyncAttributes:
    def __init__(self, name: str, log: list[str], answer: Mapping[str, Any] | None, error: Exception | None = None):
        self.name, self.log, self.answer, self.error = name, log, answer, error

    @hookimpl
    def plexica_resource_attributes(self, resource_type: str, resource_id: str) -> Mapping[str, Any] | None:
        self.log.append(self.name)
        if self.error is not None:
            raise self.error
        return self.answer


class AsyncAttributes:
    def __init__(
        self,
        name: str,
        log: list[str],
        answer: Mapping[str, Any] | None,
        *,
        delay: float = 0.0,
        error: Exception | None = None,
    ) -> None:
        self.name, self.log, self.answer, self.delay, self.error = name, log, answer, delay, error

    @hookimpl
    async def plexica_resource_attributes(
        self, resource_type: str, resource_id: str, tenant: TenantContext
    ) -> Mapping[str, Any] | None:
        self.log.append(self.name)
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.answer


class Contributes:
    def __init__(self, value: Sequence[PermissionDef], error: Exception | None = None) -> None:
        self.value, self.error = value, error

    @hookimpl
    def plexica_permissions(self) -> Sequence[PermissionDef]:
        if self.error is not None:
            raise self.error
        return self.value


class ContributesAsyncDef:
    @hookimpl
    async def plexica_permissions(self) -> Sequence[PermissionDef]:
        return []


class ContributesCoroutine:
    """Returns a coroutine and keeps it, so the test can see whether the caller closed it."""

    coroutine: Coroutine[Any, Any, Sequence[PermissionDef]] | None = None

    async def _permissions(self) -> Sequence[PermissionDef]:
        return []

    @hookimpl
    def plexica_permissions(self) -> Any:
        self.coroutine = self._permissions()
        return self.coroutine


# ------------------------------------------------------------------ call_each


async def test_each_awaits_sync_and_async_implementations_one_after_another_in_the_given_order() -> None:
    log: list[str] = []
    # Registered in reverse, and the first is the slowest: only the given order may decide.
    pm = pluggy_with(
        ("c", AsyncNotified("c", log)),
        ("b", SyncNotified("b", log)),
        ("a", AsyncNotified("a", log, delay=0.02)),
    )
    results = await call_each(pm, PROVISIONED, ["a", "b", "c"], tenant=TENANT, host=None)
    assert log == ["a:acme", "b:acme", "c:acme"]
    assert results == HookResults(PROVISIONED, (("a", None), ("b", None), ("c", None)), ())


async def test_each_skips_plugins_missing_from_the_order_or_outside_only() -> None:
    log: list[str] = []
    pm = pluggy_with(("a", SyncNotified("a", log)), ("b", SyncNotified("b", log)), ("c", SyncNotified("c", log)))
    await call_each(pm, PROVISIONED, ["a", "b"], tenant=TENANT, host=None)
    await call_each(pm, PROVISIONED, ["a", "b", "c"], only={"c"}, tenant=TENANT, host=None)
    assert log == ["a:acme", "b:acme", "c:acme"]


@pytest.mark.parametrize(
    "failing",
    [
        lambda log: SyncNotified("b", log, error=RuntimeError("boom")),
        lambda log: AsyncNotified("b", log, error=RuntimeError("boom")),
    ],
    ids=["sync", "async"],
)
async def test_each_reports_a_failing_plugin_by_name_and_hook_and_still_runs_the_others(failing: Any) -> None:
    log: list[str] = []
    pm = pluggy_with(("a", SyncNotified("a", log)), ("b", failing(log)), ("c", AsyncNotified("c", log)))
    results = await call_each(pm, PROVISIONED, ["a", "b", "c"], tenant=TENANT, host=None)
    assert log == ["a:acme", "c:acme"]
    assert [name for name, _ in results.results] == ["a", "c"]
    [error] = results.errors
    assert isinstance(error, PluginCallError)
    assert (error.plugin, error.hook, error.reason) == ("b", PROVISIONED, "RuntimeError: boom")
    assert "'b'" in str(error)
    assert PROVISIONED in str(error)


async def test_each_logs_the_failing_plugin(caplog: pytest.LogCaptureFixture) -> None:
    pm = pluggy_with(("b", SyncNotified("b", [], error=RuntimeError("boom"))))
    with caplog.at_level(logging.WARNING, logger="plexica.plugins.calls"):
        await call_each(pm, PROVISIONED, ["b"], tenant=TENANT, host=None)
    [record] = caplog.records
    assert (getattr(record, "plugin", None), getattr(record, "hook", None)) == ("b", PROVISIONED)


async def test_each_passes_a_plexica_error_raised_on_purpose_through_unchanged() -> None:
    denied = PermissionDeniedError("notes:note:read")
    pm = pluggy_with(("a", AsyncNotified("a", [], error=denied)))
    results = await call_each(pm, PROVISIONED, ["a"], tenant=TENANT, host=None)
    assert results.errors == (denied,)
    assert results.errors[0] is denied


async def test_each_passes_a_plugins_own_plugin_call_error_through() -> None:
    own = PluginCallError("other", "plexica_other", "nested")
    pm = pluggy_with(("a", SyncNotified("a", [], error=own)))
    results = await call_each(pm, PROVISIONED, ["a"], tenant=TENANT, host=None)
    assert results.errors[0] is own


async def test_each_reports_a_slow_implementation_as_timed_out_and_runs_the_rest() -> None:
    log: list[str] = []
    pm = pluggy_with(("slow", AsyncNotified("slow", log, delay=10)), ("next", AsyncNotified("next", log)))
    results = await call_each(pm, PROVISIONED, ["slow", "next"], timeout=0.01, tenant=TENANT, host=None)
    [error] = results.errors
    assert isinstance(error, PluginCallError)
    assert (error.plugin, error.reason) == ("slow", "timed out")
    assert "timed out" in str(error)
    assert log == ["next:acme"]


async def test_each_gives_each_plugin_its_own_per_plugin_arguments() -> None:
    pm = pluggy_with(("a", TakesHostOnly()), ("b", TakesHostOnly()))
    results = await call_each(
        pm, PROVISIONED, ["a", "b"], tenant=TENANT, per_plugin=lambda name: {"host": f"host-of-{name}"}
    )
    assert results.results == (("a", "host-of-a"), ("b", "host-of-b"))


async def test_per_plugin_arguments_override_shared_ones() -> None:
    pm = pluggy_with(("a", TakesHostOnly()))
    results = await call_each(
        pm, PROVISIONED, ["a"], tenant=TENANT, host="shared", per_plugin=lambda name: {"host": "own"}
    )
    assert results.results == (("a", "own"),)


async def test_each_passes_each_implementation_only_the_arguments_it_declares() -> None:
    log: list[str] = []
    pm = pluggy_with(("nothing", TakesNothing(log)), ("host-only", TakesHostOnly()), ("all", SyncNotified("all", log)))
    results = await call_each(pm, PROVISIONED, ["nothing", "host-only", "all"], tenant=TENANT, host="the-host")
    assert results.errors == ()
    assert results.results == (("nothing", "took nothing"), ("host-only", "the-host"), ("all", None))
    assert log == ["nothing", "all:acme"]


async def test_each_of_an_unknown_hook_raises() -> None:
    with pytest.raises(PlexicaError, match="unknown hook 'plexica_nonexistent'"):
        await call_each(pluggy_with(), "plexica_nonexistent", [])


async def test_each_with_no_implementations_returns_empty_results() -> None:
    assert await call_each(pluggy_with(), PROVISIONED, ["a"], tenant=TENANT, host=None) == HookResults(
        PROVISIONED, (), ()
    )


def test_raise_first_raises_the_first_failure() -> None:
    first, second = PluginCallError("a", PROVISIONED, "x"), PluginCallError("b", PROVISIONED, "y")
    with pytest.raises(PluginCallError) as excinfo:
        HookResults(PROVISIONED, (), (first, second)).raise_first()
    assert excinfo.value is first


def test_raise_first_does_nothing_without_failures() -> None:
    HookResults(PROVISIONED, (("a", None),), ()).raise_first()


# ----------------------------------------------------------------- call_first


async def test_first_returns_the_first_non_none_result_in_order_and_calls_no_further_plugins() -> None:
    log: list[str] = []
    pm = pluggy_with(
        ("d", SyncAttributes("d", log, {"owner": "d"})),
        ("c", AsyncAttributes("c", log, {"owner": "c"})),
        ("b", AsyncAttributes("b", log, {"owner": "b"})),
        ("a", SyncAttributes("a", log, None)),
    )
    answer = await call_first(
        pm, ATTRIBUTES, ["a", "b", "c", "d"], resource_type="note", resource_id="n-1", tenant=TENANT
    )
    assert answer == {"owner": "b"}
    assert log == ["a", "b"]


@pytest.mark.parametrize(
    "failing",
    [
        lambda log: SyncAttributes("bad", log, {"owner": "bad"}, error=RuntimeError("boom")),
        lambda log: AsyncAttributes("bad", log, {"owner": "bad"}, error=RuntimeError("boom")),
        lambda log: AsyncAttributes("bad", log, {"owner": "bad"}, delay=10),
        lambda log: AsyncAttributes("bad", log, {"owner": "bad"}, error=PermissionDeniedError("x")),
    ],
    ids=["sync-raises", "async-raises", "times-out", "plexica-error"],
)
async def test_first_skips_failing_plugins(failing: Any) -> None:
    log: list[str] = []
    pm = pluggy_with(("bad", failing(log)), ("good", SyncAttributes("good", log, {"owner": "good"})))
    answer = await call_first(
        pm, ATTRIBUTES, ["bad", "good"], timeout=0.01, resource_type="note", resource_id="n-1", tenant=TENANT
    )
    assert answer == {"owner": "good"}
    assert log == ["bad", "good"]


async def test_first_returns_none_when_every_plugin_answers_none() -> None:
    log: list[str] = []
    pm = pluggy_with(("a", SyncAttributes("a", log, None)), ("b", AsyncAttributes("b", log, None)))
    assert await call_first(pm, ATTRIBUTES, ["a", "b"], resource_type="note", resource_id="n-1", tenant=TENANT) is None
    assert log == ["a", "b"]


async def test_first_respects_only() -> None:
    log: list[str] = []
    pm = pluggy_with(("a", SyncAttributes("a", log, {"owner": "a"})), ("b", SyncAttributes("b", log, {"owner": "b"})))
    answer = await call_first(
        pm, ATTRIBUTES, ["a", "b"], only=["b"], resource_type="note", resource_id="n-1", tenant=TENANT
    )
    assert answer == {"owner": "b"}
    assert log == ["b"]


async def test_first_treats_falsy_non_none_answers_as_answers() -> None:
    pm = pluggy_with(("a", SyncAttributes("a", [], {})), ("b", SyncAttributes("b", [], {"owner": "b"})))
    assert await call_first(pm, ATTRIBUTES, ["a", "b"], resource_type="note", resource_id="n-1", tenant=TENANT) == {}


# -------------------------------------------------------------------- collect


def test_collect_returns_each_plugins_contribution_keyed_by_name_in_order() -> None:
    read, write = PermissionDef(key="b:x:read"), PermissionDef(key="a:x:write")
    pm = pluggy_with(("a", Contributes([write])), ("b", Contributes([read])))
    collected = collect(pm, PERMISSIONS, ["b", "a"])
    assert list(collected.items()) == [("b", [read]), ("a", [write])]


def test_collect_wraps_a_plugins_exception_naming_plugin_and_hook() -> None:
    pm = pluggy_with(("a", Contributes([], error=KeyError("key"))))
    with pytest.raises(PluginCallError) as excinfo:
        collect(pm, PERMISSIONS, ["a"])
    assert (excinfo.value.plugin, excinfo.value.hook) == ("a", PERMISSIONS)
    assert isinstance(excinfo.value.__cause__, KeyError)


def test_collect_passes_a_plexica_error_through_unchanged() -> None:
    denied = PermissionDeniedError("x")
    pm = pluggy_with(("a", Contributes([], error=denied)))
    with pytest.raises(PermissionDeniedError) as excinfo:
        collect(pm, PERMISSIONS, ["a"])
    assert excinfo.value is denied


def test_collect_rejects_an_async_contribution_naming_plugin_and_hook() -> None:
    pm = pluggy_with(("a", ContributesAsyncDef()))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine left unclosed would warn "never awaited"
        with pytest.raises(PluginCallError, match="must be synchronous") as excinfo:
            collect(pm, PERMISSIONS, ["a"])
        assert (excinfo.value.plugin, excinfo.value.hook) == ("a", PERMISSIONS)
        del excinfo
        gc.collect()


def test_collect_closes_the_coroutine_it_rejects() -> None:
    plugin = ContributesCoroutine()
    with pytest.raises(PluginCallError):
        collect(pluggy_with(("a", plugin)), PERMISSIONS, ["a"])
    assert plugin.coroutine is not None
    assert inspect.getcoroutinestate(plugin.coroutine) == inspect.CORO_CLOSED
