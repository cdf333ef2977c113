"""``plexica events dlq list|show|replay|dismiss``: the Kafka bus's dead-letter queue.

The commands talk to the broker alone: they neither enter a platform nor join any plugin's
consumer group, so running them never moves partitions away from the serving hosts. The
in-process bus keeps its dead letters inside the serving process: use the core API there
(``GET /api/core/v1/events/dlq``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click

from plexica.cli.output import echo_json, print_table
from plexica.events.bus import EventBus
from plexica.events.dlq import describe
from plexica.settings import Settings
from plexica_sdk.errors import EventError
from plexica_sdk.protocols import Host
from plexica_sdk.types import Event, TenantContext

__all__ = ["events"]

T = TypeVar("T")


class _NoTenants:
    """The ``Delivery`` of an admin bus: it never routes or delivers, so it is never asked."""

    async def context_for(self, event: Event) -> TenantContext | None:
        raise EventError("the dead-letter commands do not route events")

    async def is_active(self, plugin: str, tenant_slug: str) -> bool:
        return False

    def host_for(self, plugin: str, ctx: TenantContext | None) -> Host:
        raise EventError("the dead-letter commands do not deliver events")


def _with_bus(obj: Any, work: Callable[[EventBus], Awaitable[T]]) -> T:
    settings: Settings = obj.settings
    if settings.events.backend != "kafka":
        raise click.ClickException(
            "the in-process event bus keeps dead letters inside the serving host: "
            "use GET /api/core/v1/events/dlq there (events.backend is 'memory')"
        )
    from plexica.events.kafka import KafkaEventBus  # imports aiokafka

    async def runner() -> T:
        async with KafkaEventBus(settings.events, _NoTenants(), consume=False) as bus:
            return await work(bus)

    return asyncio.run(runner())


@click.group()
def events() -> None:
    """The event bus."""


@events.group()
def dlq() -> None:
    """Dead letters: events a handler kept failing on."""


@dlq.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
def dlq_list(obj: Any, limit: int, as_json: bool) -> None:
    """List dead letters, oldest first."""
    letters = _with_bus(obj, lambda bus: bus.dlq_list(limit))
    if as_json:
        echo_json([describe(letter) for letter in letters])
        return
    print_table(
        ["id", "failed at", "plugin.subscription", "event type", "attempts", "error"],
        [
            [
                letter.id,
                letter.failed_at.isoformat(timespec="seconds"),
                f"{letter.plugin}.{letter.subscription}",
                letter.event.type,
                str(letter.attempts),
                letter.error[:80],
            ]
            for letter in letters
        ],
    )


@dlq.command("show")
@click.argument("letter_id", metavar="ID")
@click.pass_obj
def dlq_show(obj: Any, letter_id: str) -> None:
    """Show one dead letter: where it came from, why it failed, its event and headers."""
    echo_json(describe(_with_bus(obj, lambda bus: bus.dlq_get(letter_id)), full=True))


@dlq.command("replay")
@click.argument("letter_id", metavar="ID")
@click.pass_obj
def dlq_replay(obj: Any, letter_id: str) -> None:
    """Publish the event again (same id) to its original topic, for the subscription that failed."""
    _with_bus(obj, lambda bus: bus.dlq_replay(letter_id))
    click.echo(f"dead letter {letter_id} replayed")


@dlq.command("dismiss")
@click.argument("letter_id", metavar="ID")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def dlq_dismiss(obj: Any, letter_id: str, yes: bool) -> None:
    """Drop a dead letter without replaying it."""
    if not yes:
        click.confirm(f"Drop dead letter {letter_id} without replaying it?", abort=True)
    _with_bus(obj, lambda bus: bus.dlq_dismiss(letter_id))
    click.echo(f"dead letter {letter_id} dismissed")
