"""One bad plugin cannot hurt the host: slow, killed, down at a lifecycle event, down at start-up.

Every failure is a 502/503/504 problem (never a 500), other requests go on meanwhile, the breaker
opens and closes again, and lifecycle hooks the plugin missed are delivered once it is back.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator

import httpx2
import pytest

from tests.remote.processes import Stack, wait_until

pytestmark = pytest.mark.slow

PROBLEMS = "https://plexica.dev/problems/"


@pytest.fixture(scope="module")
def acme(stack: Stack) -> str:
    assert stack.provision("acme").status_code == 201
    return "acme"


@pytest.fixture
def probe(stack: Stack) -> Iterator[Stack]:
    """The stack with the probe plugin running again after the test (and its breaker closed)."""
    yield stack
    stack.plugins["probe"].ensure_running()
    wait_until(lambda: stack.breaker() != "open", seconds=10, what="the breaker to leave open")


def test_a_slow_plugin_is_a_504_and_does_not_hold_up_other_requests(probe: Stack, acme: str) -> None:
    token = probe.token("acme")
    with concurrent.futures.ThreadPoolExecutor(2) as pool, probe.client() as client:
        started = time.perf_counter()
        slow = pool.submit(client.get, "/api/plugins/probe/slow?seconds=5", headers=token)
        time.sleep(0.2)
        quick = client.get("/api/plugins/probe/headers", headers=token)
        core = client.get("/api/core/v1/me", headers=token)
        assert quick.status_code == 200 and core.status_code == 200
        answered = slow.result(timeout=10)
        elapsed = time.perf_counter() - started
    assert answered.status_code == 504 and answered.json()["type"] == PROBLEMS + "plugin-timeout"
    assert elapsed < 3  # the plugin's 1 s timeout, not its 5 s sleep


def test_a_plugin_killed_mid_request_is_a_503_not_a_500(probe: Stack, acme: str) -> None:
    with probe.client() as client:
        crashed = client.get("/api/plugins/probe/crash", headers=probe.token("acme"))
    assert crashed.status_code == 503, crashed.text
    assert crashed.json()["type"] == PROBLEMS + "plugin-unavailable" and "Traceback" not in crashed.text


def test_the_breaker_opens_on_a_dead_plugin_then_half_opens_and_closes(probe: Stack, acme: str) -> None:
    plugin = probe.plugins["probe"]
    plugin.kill()
    token = probe.token("acme")
    with probe.client() as client:
        for _ in range(3):
            down = client.get("/api/plugins/probe/headers", headers=token)
            assert down.status_code == 503 and down.json()["type"] == PROBLEMS + "plugin-unavailable"
        assert probe.breaker() == "open"
        started = time.perf_counter()
        refused = client.get("/api/plugins/probe/headers", headers=token)
        assert refused.status_code == 503 and time.perf_counter() - started < 0.5  # refused without trying
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"  # optional: never a 503
        assert 'plugin_breaker_state{plugin="probe"} 2.0' in client.get("/metrics").text
        plugin.start()
        wait_until(lambda: probe.breaker() == "half_open", seconds=5, what="half-open")
        back = client.get("/api/plugins/probe/headers", headers=token)
        assert back.status_code == 200
        assert probe.breaker() == "closed"


def test_lifecycle_hooks_missed_while_the_plugin_was_down_are_delivered_when_it_is_back(probe: Stack) -> None:
    plugin = probe.plugins["probe"]
    plugin.kill()
    provisioned = probe.provision("globex")
    assert provisioned.status_code == 201, provisioned.text  # one plugin down does not stop a sign-up
    assert not any(entry["tenant"] == "globex" for entry in probe.probed("hook"))
    plugin.start()

    def delivered() -> bool:
        hooks = {entry["hook"] for entry in probe.probed("hook") if entry["tenant"] == "globex"}
        events = [e for e in probe.probed("event") if e["type"] == "core.tenant.created" and e["context"] == "globex"]
        return {"plexica_plugin_installed", "plexica_tenant_provisioned"} <= hooks and bool(events)

    wait_until(delivered, seconds=20, what="the deferred hooks and the event at the restarted plugin")
    [provisioned_hook] = [
        e for e in probe.probed("hook") if e["tenant"] == "globex" and e["hook"] == "plexica_tenant_provisioned"
    ]
    assert provisioned_hook["context"] == "globex"


def test_a_host_started_while_the_plugin_is_down_uses_the_last_good_copy(probe: Stack, acme: str) -> None:
    probe.plugins["probe"].kill()
    probe.host.kill()
    probe.host.start()  # /health answers: the host started without the plugin
    with probe.client() as client:
        health = client.get("/health").json()
        assert "probe" in health["plugins"] and health["checks"]["plugin:probe"]["status"] == "unavailable"
        down = client.get("/api/plugins/probe/headers", headers=probe.token("acme"))
        assert down.status_code == 503
    probe.plugins["probe"].start()
    with httpx2.Client(base_url=probe.url) as client:
        wait_until(
            lambda: client.get("/api/plugins/probe/headers", headers=probe.token("acme")).status_code == 200,
            seconds=10,
            what="the plugin to serve again through the restarted host",
        )
