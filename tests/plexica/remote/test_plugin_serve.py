"""``plexica plugin serve``: the notes plugin as its own process on loopback, called as the host will call it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from plexica.remote import ContextSigner, generate_signing_key, load_signer, parse_signing_key
from plexica_sdk.errors import AuthenticationError, NotFoundError, PluginCallError, ValidationError
from plexica_sdk.remote import CONTEXT_HEADER, PROTOCOL_HEADER, decode_problem, decode_result
from plexica_sdk.types import PluginManifest, Principal, TenantContext
from tests.plexica.remote.conftest import ServedHost, free_port

pytestmark = pytest.mark.slow

TENANT = TenantContext(
    tenant_id="t-1", slug="acme", schema="tenant_acme", user=Principal(id="u-1", tenant_slug="acme", roles=("member",))
)


@pytest.fixture(scope="module")
def notes_url(served_host: ServedHost) -> Iterator[str]:
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PLEXICA_")}
    plugin = "plexica_plugin_notes:NotesPlugin"
    command = ["plugin", "serve", plugin, "--port", str(port), "--host-url", served_host.url]
    process = subprocess.Popen(
        [sys.executable, "-m", "plexica.cli", *command],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"plexica plugin serve exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if httpx2.get(url + "/.plexica/health", timeout=1).status_code == 200:
                    break
            except httpx2.HTTPError:
                if time.monotonic() > deadline:
                    pytest.fail("plexica plugin serve did not start")
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # the served process itself: the command exec'd into it
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module")
def signer(served_host: ServedHost) -> ContextSigner:
    loaded = load_signer(served_host.settings)
    assert loaded is not None
    return loaded


def call(url: str, signer: ContextSigner, hook: str, token: str | None = None, **args: Any) -> httpx2.Response:
    headers = {CONTEXT_HEADER: token or signer.issue("notes", TENANT)}
    return httpx2.post(url + "/.plexica/rpc", json={"hook": hook, "args": args}, headers=headers, timeout=10)


def problem(response: httpx2.Response) -> Exception:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return decode_problem(response.status_code, response.json(), plugin="notes")


def test_manifest_and_health_describe_the_notes_plugin(notes_url: str) -> None:
    manifest = httpx2.get(notes_url + "/.plexica/manifest", timeout=10)
    assert manifest.status_code == 200 and manifest.headers[PROTOCOL_HEADER] == "1"
    assert manifest.json()["name"] == "notes" and manifest.json()["permissions"][0]["key"] == "notes:note:read"
    health = httpx2.get(notes_url + "/.plexica/health", timeout=10).json()
    assert health["status"] == "ok" and health["plugin"] == "notes" and health["protocol"] == 1
    assert "plexica_subscriptions" in health["hooks"] and "plexica_routes" not in health["hooks"]


def test_a_hook_call_with_a_host_signed_token_returns_typed_results(notes_url: str, signer: ContextSigner) -> None:
    response = call(notes_url, signer, "plexica_manifest")
    assert response.status_code == 200, response.text
    manifest = decode_result("plexica_manifest", response.json()["result"])
    assert isinstance(manifest, PluginManifest) and manifest.name == "notes"
    subscriptions = call(notes_url, signer, "plexica_subscriptions", plugins=["notes"]).json()["result"]
    assert [entry["event_type"] for entry in subscriptions] == ["core.tenant.created"]


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(None, id="no-token"),
        pytest.param("garbage", id="garbage"),
        pytest.param(ContextSigner([parse_signing_key(generate_signing_key())]).issue("notes", TENANT), id="other-key"),
    ],
)
def test_calls_without_a_valid_host_token_are_401_problems(notes_url: str, token: str | None) -> None:
    headers = {CONTEXT_HEADER: token} if token is not None else {}
    for method, path in (("POST", "/.plexica/rpc"), ("GET", "/notes")):
        response = httpx2.request(method, notes_url + path, json={"hook": "plexica_manifest"}, headers=headers)
        assert response.status_code == 401, response.text
        assert isinstance(problem(response), AuthenticationError)


def test_tokens_for_another_plugin_or_replayed_are_refused(notes_url: str, signer: ContextSigner) -> None:
    other = call(notes_url, signer, "plexica_manifest", token=signer.issue("billing", TENANT))
    assert other.status_code == 401 and "another plugin" in str(problem(other))
    token = signer.issue("notes", TENANT)
    assert call(notes_url, signer, "plexica_manifest", token=token).status_code == 200
    replayed = call(notes_url, signer, "plexica_manifest", token=token)
    assert replayed.status_code == 401 and "already used" in str(problem(replayed))


def test_typed_errors_round_trip_over_http(notes_url: str, signer: ContextSigner) -> None:
    unimplemented = call(notes_url, signer, "plexica_policies")
    assert unimplemented.status_code == 404 and type(problem(unimplemented)) is NotFoundError
    bad_args = call(notes_url, signer, "plexica_plugin_upgraded", from_version=1, to_version="1.1.0")
    error = problem(bad_args)
    assert bad_args.status_code == 422 and type(error) is ValidationError and error.problems
    # The hook calls back into a host that has not loaded notes: the refused callback fails the
    # hook as the plugin's own failure, never as a 401 that would read as a refused token.
    needs_host = call(notes_url, signer, "plexica_tenant_provisioned")
    error = problem(needs_host)
    assert needs_host.status_code != 401 and type(error) is PluginCallError and "refused" in str(error)
