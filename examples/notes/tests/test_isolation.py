"""Two tenants: nothing one writes through the notes routes is visible to the other, anywhere."""

from __future__ import annotations

import pytest

from plexica_sdk.testing import CANARY, Call, IsolationKit

pytestmark = pytest.mark.anyio


async def test_notes_of_tenant_a_are_invisible_to_tenant_b(isolation: IsolationKit) -> None:
    report = await isolation.check(
        writes=[
            Call.post("/notes", {"title": f"secret {CANARY}", "body": CANARY}),
            Call.put("/notes/{id}", {"title": f"still secret {CANARY}", "body": CANARY}),
        ],
        reads=["/notes", "/notes/{id}"],
        roles=["member", "notes-editor"],
        expect_events=["notes.note.created"],
    )
    # What A wrote was there to be found: in its routes, its table and its consumers' events.
    assert report.seen_in_a["routes"] == 2
    assert report.seen_in_a["database"] >= 1
    assert report.seen_in_a["events"] >= 1
    assert report.scanned_in_b["database"] >= 1  # B's welcome note at least
