"""The SSRF guard: refused at registration (a 422 problem) and again at delivery time."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from plexica_plugin_webhooks import AddressRefusedError, WebhooksSettings
from plexica_plugin_webhooks.delivery import _client, attempt
from plexica_plugin_webhooks.ssrf import resolve
from webhooks_testkit import Receiver, fast_settings

from plexica_sdk.testing import ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio

STRICT = WebhooksSettings()  # the defaults: https only, public addresses only


@pytest.fixture
def webhooks_settings(tls: tuple[Path, Path, Path]) -> WebhooksSettings:
    """No allow-listed network in this module: loopback is refused like any private address."""
    return fast_settings(tls[0], allow_networks=())


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://localhost/hook", "loopback"),
        ("https://127.0.0.1:8443/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:10.0.0.1]/hook", "private"),
        ("https://100.64.0.1/hook", "non-public"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("http://93.184.215.14/hook", "https"),
        ("https://user:pw@93.184.215.14/hook", "credentials"),
        ("ftp://93.184.215.14/hook", "https"),
        ("https://does-not-exist.invalid/hook", "does not resolve"),
    ],
    ids=[
        "private-10",
        "cloud-metadata",
        "localhost-name",
        "loopback-literal",
        "loopback-v6",
        "v4-mapped-private",
        "cgnat",
        "unspecified",
        "plain-http",
        "credentials",
        "ftp",
        "unresolvable",
    ],
)
async def test_guard_refuses(url: str, reason: str) -> None:
    with pytest.raises(AddressRefusedError, match=reason):
        await resolve(url, STRICT)


async def test_guard_accepts_public_and_allow_listed_addresses() -> None:
    public = await resolve("https://93.184.215.14:8443/x", STRICT)
    assert (public.address, public.port, public.host_header) == ("93.184.215.14", 8443, "93.184.215.14:8443")
    allowed = await resolve("https://localhost/x", WebhooksSettings(allow_networks=("127.0.0.0/8", "::1/128")))
    assert allowed.address in ("127.0.0.1", "::1") and allowed.hostname == "localhost"
    assert allowed.url_for("https://localhost/x?a=1") in ("https://127.0.0.1:443/x?a=1", "https://[::1]:443/x?a=1")
    dev = WebhooksSettings(allow_insecure_http=True, allow_networks=("127.0.0.0/8",))
    assert (await resolve("http://127.0.0.1:9/x", dev)).scheme == "http"


async def test_registering_a_refused_url_is_a_422_problem(
    plexica_host: RunningHost, client: httpx2.AsyncClient, tenant: ProvisionedTenant, receiver: Receiver
) -> None:
    port = receiver.base_url.rsplit(":", 1)[1]
    headers = tenant.headers("ann", ["webhooks-admin"])
    refused = [
        "https://10.0.0.1/h",
        "https://169.254.169.254/h",
        f"https://localhost:{port}/h",
        f"https://127.0.0.1:{port}/h",
    ]
    for url in refused:
        response = await client.post(
            plexica_host.url("/endpoints"), json={"url": url, "event_types": ["ping.*"]}, headers=headers
        )
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "refused" in response.text
    listed = await client.get(plexica_host.url("/endpoints"), headers=headers)
    assert listed.json()["items"] == []


async def test_address_is_checked_again_at_delivery_time(receiver: Receiver, tls: tuple[Path, Path, Path]) -> None:
    # Registered while the receiver's address was acceptable; by delivery time it no longer is
    # (DNS rebinding, or the operator narrowed the allow-list): nothing is sent, and it is final.
    url = receiver.script([200])
    allowing, refusing = fast_settings(tls[0]), fast_settings(tls[0], allow_networks=())
    await resolve(url, allowing)
    async with _client(refusing) as client:
        outcome = await attempt(client, refusing, url=url, secrets=["whsec_x"], body="{}", headers={})
    assert outcome.kind == "refused" and outcome.error is not None and "loopback" in outcome.error
    assert receiver.received(url) == []
