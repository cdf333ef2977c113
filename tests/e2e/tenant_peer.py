"""A second host process for the cross-process cache tests: it changes tenants when told to.

Run as ``python -m tests.e2e.tenant_peer DATABASE_URL REDIS_URL DATA_DIR``. It enters a full
:class:`~plexica.platform.Platform` (the notes plugin loaded, like the test's host), prints
``ready``, then for each ``<command> <slug>`` line on stdin (``suspend``, ``resume``, ``delete``)
runs it through the tenant service and prints ``done <command> <slug> <t>`` once it is done,
``t`` being ``time.monotonic()`` just before it started (one clock for every process on Linux).
"""

from __future__ import annotations

import asyncio
import sys
import time

from plexica_plugin_notes import NotesPlugin

from plexica import load_settings
from plexica.platform import Platform


async def main(database_url: str, redis_url: str, data_dir: str) -> None:
    settings = load_settings(
        environ={},
        environment="test",
        load_entry_points=False,
        data_dir=data_dir,
        database={"url": database_url},
        cache={"redis_url": redis_url},
    )
    loop = asyncio.get_running_loop()
    async with Platform(settings, plugins=[NotesPlugin()]) as platform:
        print("ready", flush=True)
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            command, slug = line.split()
            started = time.monotonic()
            await getattr(platform.tenants, command)(slug)
            print(f"done {command} {slug} {started!r}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
