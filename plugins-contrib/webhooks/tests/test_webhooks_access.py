"""Who may manage webhooks, tenant isolation through the kit, and the pure pieces (signing, backoff, settings)."""

from __future__ import annotations

import random

import httpx2
import pytest
from plexica_plugin_webhooks import InvalidSignatureError, WebhooksPlugin, WebhooksSettings, verify_signature
from plexica_plugin_webhooks.delivery import backoff_delay
from plexica_plugin_webhooks.plugin import matches
from plexica_plugin_webhooks.signing import signature_header
from webhooks_testkit import Receiver

from plexica_sdk.errors import SettingsError
from plexica_sdk.testing import (
    CANARY,
    Call,
    IsolationKit,
    PolicyCase,
    PolicySubject,
    ProvisionedTenant,
    RunningHost,
    policy_table,
)

pytestmark = pytest.mark.anyio

MANAGE = "webhooks:endpoint:manage"

test_default_roles = policy_table(
    WebhooksPlugin(WebhooksSettings()),
    [
        PolicyCase(PolicySubject(id="ann", roles=("webhooks-admin",)), MANAGE, expected=True, id="webhooks-admin"),
        PolicyCase(PolicySubject(id="tia", roles=("tenant_admin",)), MANAGE, expected=True, id="tenant-admin"),
        PolicyCase(PolicySubject(id="bob", roles=("member",)), MANAGE, expected=False, id="member-cannot"),
    ],
)


ROUTES = [
    ("GET", "/endpoints"),
    ("POST", "/endpoints"),
    ("GET", "/endpoints/x"),
    ("PATCH", "/endpoints/x"),
    ("DELETE", "/endpoints/x"),
    ("POST", "/endpoints/x/rotate-secret"),
    ("GET", "/endpoints/x/deliveries"),
    ("POST", "/deliveries/x/replay"),
]


async def test_every_route_needs_manage(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant
) -> None:
    # One host for all routes: each case is one request, a host per case would be most of the time.
    for method, path in ROUTES:
        response = await client.request(
            method,
            plexica_host.url(path),
            json={"url": "https://10.0.0.1/", "event_types": ["*"]} if method in ("POST", "PATCH") else None,
            headers=tenant.headers("bob", ["member"]),
        )
        assert response.status_code == 403, (method, path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_bad_bodies_are_422(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, receiver: Receiver
) -> None:
    headers = tenant.headers("ann", ["webhooks-admin"])
    url = receiver.script([200])
    for body in ({"url": url, "event_types": []}, {"url": url, "event_types": ["Bad Type"]}, {"url": url}):
        response = await client.post(plexica_host.url("/endpoints"), json=body, headers=headers)
        assert response.status_code == 422, (body, response.text)


async def test_endpoints_of_tenant_a_are_invisible_to_tenant_b(isolation: IsolationKit, receiver: Receiver) -> None:
    url = receiver.script([200])
    report = await isolation.check(
        writes=[
            Call.post("/endpoints", {"url": url, "event_types": ["ping.*"], "description": f"secret {CANARY}"}),
            Call("PATCH", "/endpoints/{id}", {"description": f"still {CANARY}"}),
        ],
        reads=["/endpoints", "/endpoints/{id}", "/endpoints/{id}/deliveries"],
        roles=["webhooks-admin"],
    )
    assert report.seen_in_a["routes"] >= 2
    assert report.seen_in_a["database"] >= 1


def test_signature_refuses_stale_malformed_and_missing_headers() -> None:
    header = signature_header(["whsec_a"], 1_000, b"{}")
    assert verify_signature("whsec_a", header, b"{}", now=1_100) == 1_000
    for bad, now in [(header, 1_400.0), (header, 600.0), ("v1=abc", 1_000.0), ("t=1000", 1_000.0), (None, 1_000.0)]:
        with pytest.raises(InvalidSignatureError):
            verify_signature("whsec_a", bad, b"{}", now=now)


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    settings = WebhooksSettings(backoff_base_seconds=10, backoff_max_seconds=60)
    rng = random.Random(7)  # noqa: S311  (jitter, not cryptography: seeded to be reproducible)
    delays = [backoff_delay(n, settings, rng) for n in range(1, 6)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(60, 10 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays}) == len(delays)


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [("*", "core.tenant.created", True), ("notes.*", "notes.note.created", True), ("notes.*", "notesx.a.b", False)],
    ids=["star", "prefix", "prefix-boundary"],
)
def test_patterns(pattern: str, event_type: str, expected: bool) -> None:
    assert matches(pattern, event_type) is expected


def test_settings_from_environment() -> None:
    settings = WebhooksSettings.from_environ(
        {"PLEXICA_WEBHOOKS_MAX_ATTEMPTS": "4", "PLEXICA_WEBHOOKS_ALLOW_NETWORKS": "10.1.0.0/16, 192.168.1.7"}
    )
    assert settings.max_attempts == 4 and settings.allow_networks == ("10.1.0.0/16", "192.168.1.7/32")
    with pytest.raises(SettingsError, match="PLEXICA_WEBHOOKS_MAX_ATEMPTS"):
        WebhooksSettings.from_environ({"PLEXICA_WEBHOOKS_MAX_ATEMPTS": "4"})
    with pytest.raises(SettingsError, match="boolean"):
        WebhooksSettings.from_environ({"PLEXICA_WEBHOOKS_ALLOW_INSECURE_HTTP": "maybe"})
