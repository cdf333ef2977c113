"""The host → plugin direction on loopback: a real host and the probe plugin as processes, every path through the proxy.

Registration from settings, lifecycle hooks over RPC, events delivered to the remote handler in
the event's tenant context, and ``/api/plugins/probe/*`` reverse-proxied with streaming bodies,
the header allow-list and problems re-raised as an embedded plugin's would be.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from plexica.remote import load_signer
from plexica.remote.client import RemoteClient
from plexica_sdk.errors import PluginAnswerError, ValidationError
from plexica_sdk.types import Principal, TenantContext
from tests.remote.processes import Stack, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def acme(stack: Stack) -> str:
    response = stack.provision("acme")
    assert response.status_code == 201, response.text
    return "acme"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def test_the_remote_plugin_is_loaded_from_settings_in_remote_mode(stack: Stack) -> None:
    health = stack.health()
    assert "probe" in health["plugins"]
    check = health["checks"]["plugin:probe"]
    assert check["status"] == "ok" and check["required"] is False and check["breaker"]["state"] == "closed"
    listed = subprocess.run(
        [sys.executable, "-m", "plexica.cli", "plugins", "list", "--json"],
        env={**os.environ, "PLEXICA_SETTINGS": str(stack.settings.data_dir.parent / "plexica.toml")},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    [probe] = [info for info in json.loads(listed.stdout) if info["name"] == "probe"]
    # The manifest's permission and the one plexica_permissions() contributes, as for an embedded plugin.
    assert probe["mode"] == "remote" and probe["permissions"] == ["probe:thing:read", "probe:thing:ping"]


def test_provisioning_calls_the_lifecycle_hooks_and_delivers_the_tenant_event(stack: Stack, acme: str) -> None:
    wait_until(lambda: len(stack.probed("event")) >= 1, what="core.tenant.created at the probe")
    hooks = [(entry["hook"], entry["tenant"]) for entry in stack.probed("hook")]
    assert ("plexica_plugin_installed", "acme") in hooks and ("plexica_tenant_provisioned", "acme") in hooks
    [installed] = [entry for entry in stack.probed("hook") if entry["hook"] == "plexica_plugin_installed"]
    assert installed["version"] == "1.0.0"
    [event] = [entry for entry in stack.probed("event") if entry["type"] == "core.tenant.created"]
    assert event["context"] == "acme"  # the handler ran in the event's tenant context


def test_a_failing_remote_handler_is_retried_by_the_bus_until_it_succeeds(stack: Stack, acme: str) -> None:
    with stack.client() as client:
        assert client.post("/api/core/v1/tenants/acme/suspend", headers=stack.admin()).status_code == 200
        try:
            wait_until(
                lambda: any(e["type"] == "core.tenant.suspended" for e in stack.probed("event")),
                what="the retried core.tenant.suspended",
            )
            assert ("plexica_tenant_suspended", "acme") in [(e["hook"], e["tenant"]) for e in stack.probed("hook")]
        finally:
            assert client.post("/api/core/v1/tenants/acme/resume", headers=stack.admin()).status_code == 200
    suspended = [e for e in stack.probed("event") if e["type"] == "core.tenant.suspended"]
    assert len(suspended) == 1 and suspended[0]["context"] == "acme"


def test_only_allowed_headers_reach_the_plugin_and_the_identity_is_in_the_signed_token(stack: Stack, acme: str) -> None:
    headers = {
        **stack.token("acme"),
        "Cookie": "session=secret",
        "X-Custom": "nope",
        "Plexica-Context": "forged-by-the-caller",
        "Accept-Language": "fr",
        "Connection": "keep-alive, X-Custom",
    }
    with stack.client() as client:
        response = client.get("/api/plugins/probe/headers?x=1&y=%2F", headers=headers)
    assert response.status_code == 200, response.text
    seen = response.json()
    received = seen["headers"]
    assert "authorization" not in received and "cookie" not in received and "x-custom" not in received
    assert received["accept-language"] == "fr" and seen["path"] == "/headers" and seen["query"] == "x=1&y=%2F"
    token = received["plexica-context"]
    assert token != "forged-by-the-caller"
    claims = claims_of(token)
    assert claims["aud"] == "probe" and claims["sub"] == "alice" and claims["tenant"]["slug"] == "acme"
    assert "member" in claims["roles"] and "email" not in claims
    assert "set-cookie" not in response.headers and response.headers["x-probe"] == "1"
    assert "plexica-protocol" not in response.headers


def test_answers_stream_back_as_the_plugin_writes_them(stack: Stack, acme: str) -> None:
    started = time.perf_counter()
    with (
        stack.client() as client,
        client.stream("GET", "/api/plugins/probe/stream?n=4&delay=0.3", headers=stack.token("acme")) as response,
    ):
        assert response.status_code == 200
        chunks = response.iter_text()
        first = next(chunks)
        first_at = time.perf_counter() - started
        rest = "".join(chunks)
    total = time.perf_counter() - started
    assert first.startswith("chunk 0") and (first + rest).count("chunk") == 4
    assert first_at < 0.6 < total  # the first chunk came before the plugin finished


def _chunks(size: int, chunk: int = 500) -> Iterator[bytes]:
    for start in range(0, size, chunk):
        yield b"x" * min(chunk, size - start)


def test_request_bodies_stream_to_the_plugin_under_the_cap(stack: Stack, acme: str) -> None:
    with stack.client() as client:
        headers = {**stack.token("acme"), "Content-Type": "application/octet-stream"}
        streamed = client.post("/api/plugins/probe/upload", content=_chunks(4000), headers=headers)
        assert streamed.status_code == 200, streamed.text
        assert streamed.json()["size"] == 4000
        declared = client.post("/api/plugins/probe/upload", content=b"x" * 5000, headers=headers)
        assert declared.status_code == 413 and declared.json()["type"].endswith("/payload-too-large")
        undeclared = client.post("/api/plugins/probe/upload", content=_chunks(9000), headers=headers)
        assert undeclared.status_code == 413
        assert client.get("/api/plugins/probe/headers", headers=stack.token("acme")).status_code == 200


def test_problems_are_the_embedded_ones_and_bad_answers_are_502(stack: Stack, acme: str) -> None:
    with stack.client() as client:
        denied = client.get("/api/plugins/probe/denied", headers=stack.token("acme"))
        assert denied.status_code == 403 and denied.json()["type"] == "https://plexica.dev/problems/forbidden"
        assert "alice" not in denied.text and "probe:thing:write" not in denied.text  # never sent, as embedded
        for path in ("/bad-problem", "/unknown-error"):
            bad = client.get(f"/api/plugins/probe{path}", headers=stack.token("acme"))
            assert bad.status_code == 502, bad.text
            assert bad.json()["type"] == "https://plexica.dev/problems/plugin-bad-answer"
        anonymous = client.get("/api/plugins/probe/headers")
        assert anonymous.status_code == 401  # the host's own stages run before the proxy
        missing = client.get("/api/plugins/probe/nothing-here", headers=stack.token("acme"))
        assert missing.status_code == 404 and missing.json()["type"] == "https://plexica.dev/problems/not-found"


@pytest.mark.anyio
async def test_hook_results_are_typed_and_a_wrong_answer_is_502(stack: Stack, acme: str) -> None:
    signer = load_signer(stack.settings)
    assert signer is not None
    [config] = stack.settings.remote.plugins
    user = Principal(id="bob", tenant_slug="acme", roles=("member",))
    ctx = TenantContext(tenant_id="t-acme", slug="acme", schema="tenant_acme", user=user)
    async with RemoteClient(config, signer) as client:
        found = await client.call("plexica_resource_attributes", {"resource_type": "thing", "resource_id": "7"}, ctx)
        assert found == {"owner": "bob", "id": "7", "tenant": "acme"}
        with pytest.raises(ValidationError) as invalid:  # the same class an embedded plugin raises
            await client.call("plexica_resource_attributes", {"resource_type": "t", "resource_id": "invalid"}, ctx)
        assert invalid.value.field == "resource_id"
        with pytest.raises(PluginAnswerError):
            await client.call("plexica_resource_attributes", {"resource_type": "t", "resource_id": "garbage"}, ctx)
        assert client.breaker.state == "closed"  # 4xx and a well-formed answer are not the plugin failing


def test_metrics_expose_the_breaker_state(stack: Stack) -> None:
    with stack.client() as client:
        text = client.get("/metrics").text
    assert 'plugin_breaker_state{plugin="probe"} 0.0' in text


def test_a_plugin_route_answers_only_in_tenants_where_it_is_installed(stack: Stack, acme: str) -> None:
    with httpx2.Client(base_url=stack.url) as client:
        other = client.get("/api/plugins/probe/headers", headers=stack.token("nowhere"))
    assert other.status_code in (401, 404)
