"""A host process for ``test_core_outbox``: commits core changes with its relay asleep, then waits to be killed.

``python -m tests.e2e.core_outbox_child DATA_DIR [POSTGRES_URL]`` provisions tenant ``acme``, lets
its relay publish that, then stops waking the relay (it polls hourly) and makes the core changes
whose events must survive a crash: a user's admission, a workspace, a suspension and a resumption.
It prints one JSON line once they all committed and sleeps until the test sends SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

from plexica.platform import Platform
from plexica.settings import Settings
from plexica.tenancy.service import tenant_context_of
from plexica.workspaces.models import Actor
from plexica_sdk import Event, Host, PluginManifest, Subscription, hookimpl
from plexica_sdk.types import Principal
from tests.plexica.db.support import make_platform_settings

__all__ = ["CoreRecorder", "settings_for"]


@attrs.define(eq=False)
class CoreRecorder:
    """A plugin that records every ``core.*`` event delivered to it (loaded by the child and the test)."""

    events: list[Event] = attrs.Factory(list)

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="recorder", version="1.0.0", description="records core events")

    @hookimpl
    def plexica_subscriptions(self) -> Sequence[Subscription]:
        return [Subscription(event_type="core.*", handler=self.record)]

    async def record(self, event: Event, host: Host) -> None:
        self.events.append(event)


def settings_for(data_dir: Path, url: str | None, *, poll_seconds: float = 0.05) -> Settings:
    """The test's settings: memory bus, the given database, a relay polling every ``poll_seconds``."""
    base = make_platform_settings(data_dir, url)
    outbox = attrs.evolve(base.events.outbox, poll_seconds=poll_seconds, sweep_seconds=poll_seconds)
    return attrs.evolve(base, events=attrs.evolve(base.events, outbox=outbox))


def _asleep(lanes: set[str]) -> None:
    """The relay's wake-up, switched off: the rows written from now on wait in the outbox."""


async def main(data_dir: Path, url: str | None) -> None:
    async with Platform(settings_for(data_dir, url, poll_seconds=3600.0), plugins=[CoreRecorder()]) as platform:
        tenant = await platform.tenants.provision("acme")
        await platform.relay.drain()
        platform.relay.wake = _asleep  # type: ignore[method-assign]
        ctx = tenant_context_of(tenant)
        await platform.users.admit(ctx, Principal(id="alice", tenant_slug="acme", username="alice"))
        workspace = await platform.workspaces.create(ctx, Actor(user_id="alice", can_create=True), name="Crash")
        await platform.tenants.suspend("acme")
        await platform.tenants.resume("acme")
        print(json.dumps({"workspace": workspace.id, "tenant": tenant.id}), flush=True)
        await asyncio.Event().wait()  # until SIGKILL: no shutdown, no last relay round


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
