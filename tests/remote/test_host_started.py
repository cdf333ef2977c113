"""A remote plugin process restarted while the host runs gets ``plexica_host_started`` again.

The host remembers the boot id of the process that answered the hook (``Plexica-Boot``); its
watch (every ``WATCH_SECONDS``) and every ``/health`` probe compare it with the boot id the
plugin's health answer carries, and call the hook on a process they have not announced to.
"""

from __future__ import annotations

import time

import httpx2

from plexica.remote.registry import WATCH_SECONDS
from tests.remote.processes import Stack, wait_until


def _started_pids(stack: Stack) -> list[int]:
    return [int(entry["pid"]) for entry in stack.probed("started")]


def _pid(stack: Stack) -> int:
    process = stack.plugins["probe"].process
    assert process is not None
    return process.pid


def test_a_restarted_plugin_process_is_announced_to_again(stack: Stack) -> None:
    first = _pid(stack)
    # At start-up the plugin could not verify the call (the host was not serving its JWKS yet): the
    # watch announces again once it is.
    wait_until(lambda: first in _started_pids(stack), seconds=WATCH_SECONDS + 25, what="the first host_started")
    health = httpx2.get(stack.plugins["probe"].url + "/.plexica/health", timeout=5)
    boot = health.json()["boot_id"]
    assert isinstance(boot, str) and len(boot) == 32 and health.headers["plexica-boot"] == boot

    probe = stack.plugins["probe"]
    probe.stop()
    probe.start()  # same port, a new process: it never got plexica_host_started
    second = _pid(stack)
    assert second != first
    assert httpx2.get(probe.url + "/.plexica/health", timeout=5).json()["boot_id"] != boot
    restarted = time.monotonic()
    # Nobody polls the host's /health: its own watch finds the new process.
    wait_until(lambda: second in _started_pids(stack), seconds=WATCH_SECONDS + 10, what="host_started again")
    assert time.monotonic() - restarted < WATCH_SECONDS + 5
    for _ in range(3):  # probes of the process announced to call nothing again
        assert stack.health()["checks"]["plugin:probe"]["status"] == "ok"
    time.sleep(0.5)
    assert _started_pids(stack).count(second) == 1
    assert _started_pids(stack).count(first) == 1

    probe.kill()  # a crash, and the host's /health finds the next process at once
    probe.start()
    third = _pid(stack)
    wait_until(lambda: stack.health()["checks"]["plugin:probe"]["status"] == "ok", what="the plugin back")
    wait_until(lambda: third in _started_pids(stack), seconds=WATCH_SECONDS + 10, what="host_started after a crash")
    assert _started_pids(stack).count(third) == 1
