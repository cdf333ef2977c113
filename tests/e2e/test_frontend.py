"""``GET /api/core/v1/frontend`` through a real host: per tenant, per permission, with fetchable URLs.

The notes plugin keeps its remote entry in each tenant's object storage (presigned here, fetched
back); a ``dash`` plugin points at a CDN (passed through), a ``reports`` plugin at a path under its
mount (versioned), and an ``unsafe`` one at a ``javascript:`` URL (never handed out).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from importlib.resources import files
from typing import Any

import httpx2
import pytest

from plexica_sdk import FrontendDef, FrontendModule, PluginManifest, hookimpl
from tests.e2e.conftest import Host
from tests.e2e.people import assert_problem
from tests.fixtures.services import S3Config

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., contextlib.AbstractAsyncContextManager[Host]]
URL = "/api/core/v1/frontend"
REMOTE_ENTRY = files("plexica_plugin_notes").joinpath("web/remoteEntry.js").read_bytes()


class FrontendPlugin:
    def __init__(self, name: str, version: str, frontend: FrontendDef) -> None:
        self.manifest = PluginManifest(name=name, version=version, frontend=frontend)

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return self.manifest


PLUGINS = [
    FrontendPlugin(
        "dash",
        "0.3.0",
        FrontendDef(remote_entry="https://cdn.example.com/dash/remoteEntry.js", exposed_modules=["./Widget"]),
    ),
    FrontendPlugin(
        "reports",
        "2.1.0",
        FrontendDef(
            remote_entry="static/remoteEntry.js", scope="reportsApp", modules=[FrontendModule(name="./Reports")]
        ),
    ),
    FrontendPlugin("unsafe", "1.0.0", FrontendDef(remote_entry="javascript:alert(1)", exposed_modules=["./X"])),
]


def remotes(response: Any) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {remote["plugin"]: remote for remote in response.json()["remotes"]}


def module_names(remote: dict[str, Any]) -> list[str]:
    return [module["name"] for module in remote["modules"]]


async def test_remotes_follow_the_tenants_installs_and_the_callers_permissions(make_host: MakeHost) -> None:
    async with make_host(plugins=PLUGINS) as host:
        for slug in ("acme", "globex"):
            await host.platform.tenants.provision(slug)
        await host.platform.tenants.uninstall_plugin("globex", "dash")  # not installed in globex
        await host.platform.tenants.uninstall_plugin("acme", "reports", keep_data=True)  # disabled in acme

        editor = await host.client.get(URL, headers=host.auth(host.token("acme", "ed", roles=["notes-editor"])))
        body = editor.json()
        assert body["tenant"] == "acme" and body["workspace"] is None
        found = remotes(editor)
        assert sorted(found) == ["dash", "notes"]  # reports disabled, unsafe never handed out
        notes = found["notes"]
        assert notes["version"] == "1.0.0" and notes["scope"] == "notes" and notes["remote_type"] == "module"
        assert notes["modules"] == [
            {
                "name": "./NotesList",
                "route": "/notes",
                "slot": None,
                "menu": {"label": "Notes", "icon": "note", "order": 10},
                "permission": "notes:note:read",
            },
            {
                "name": "./NoteEditor",
                "route": "/notes/new",
                "slot": "notes.toolbar",
                "menu": None,
                "permission": "notes:note:write",
            },
        ]
        assert found["dash"]["remote_entry"] == "https://cdn.example.com/dash/remoteEntry.js"
        assert module_names(found["dash"]) == ["./Widget"]

        # The presigned remote entry is the packaged file, fetched without a token.
        fetched = await host.client.get(notes["remote_entry"])
        assert fetched.status_code == 200, fetched.text
        assert fetched.content == REMOTE_ENTRY
        assert fetched.headers["content-type"].startswith("text/javascript")

        # A member lacks notes:note:write: the editor module is left out.
        member = remotes(await host.client.get(URL, headers=host.auth(host.token("acme", "mo", roles=["member"]))))
        assert module_names(member["notes"]) == ["./NotesList"]
        # Without notes:note:read (the plugin's own permission) notes is left out entirely.
        nobody = remotes(await host.client.get(URL, headers=host.auth(host.token("acme", "no", roles=[]))))
        assert sorted(nobody) == ["dash"]

        # globex: no dash, reports enabled with a versioned path under its mount.
        globex = remotes(await host.client.get(URL, headers=host.auth(host.token("globex"))))
        assert sorted(globex) == ["notes", "reports"]
        assert globex["reports"]["remote_entry"] == "/api/plugins/reports/static/remoteEntry.js?v=2.1.0"
        assert globex["reports"]["scope"] == "reportsApp"
        assert globex["notes"]["remote_entry"] != notes["remote_entry"]  # each tenant's own object
        assert (await host.client.get(globex["notes"]["remote_entry"])).content == REMOTE_ENTRY


async def test_caching_headers_revalidation_workspace_and_401(make_host: MakeHost) -> None:
    async with make_host() as host:
        await host.platform.tenants.provision("acme")
        admin = host.auth(host.token("acme", "ada", roles=["tenant_admin", "notes-editor"]))
        first = await host.client.get(URL, headers=admin)
        assert first.status_code == 200, first.text
        assert first.headers["cache-control"] == "private, max-age=60"
        assert "Authorization" in first.headers["vary"]
        etag = first.headers["etag"]
        again = await host.client.get(URL, headers={**admin, "If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag

        # Fewer modules is another body, so another ETag.
        member = await host.client.get(URL, headers={**host.auth(host.token("acme", "mo")), "If-None-Match": etag})
        assert member.status_code == 200 and member.headers["etag"] != etag

        created = await host.client.post("/api/core/v1/workspaces", json={"name": "Sales"}, headers=admin)
        assert created.status_code == 201, created.text
        workspace = created.json()["id"]
        scoped = await host.client.get(URL, headers={**admin, "X-Workspace-ID": workspace})
        assert scoped.status_code == 200, scoped.text
        assert scoped.json()["workspace"] == workspace
        assert scoped.headers["etag"] != etag

        assert_problem(await host.client.get(URL), 401)
        # Disabling notes removes its remote.
        await host.platform.tenants.uninstall_plugin("acme", "notes", keep_data=True)
        assert remotes(await host.client.get(URL, headers=admin)) == {}


@pytest.mark.s3
async def test_a_remote_entry_in_s3_is_presigned_and_fetchable(make_host: MakeHost, s3_config: S3Config) -> None:
    shared_bucket = f"test-{uuid.uuid4().hex}"
    storage = {
        "backend": "s3",
        "s3_endpoint": s3_config.endpoint,
        "s3_region": s3_config.region,
        "s3_access_key": s3_config.access_key,
        "s3_secret_key": s3_config.secret_key,
        "layout": "prefix",
        "shared_bucket": shared_bucket,
    }
    async with make_host(storage=storage) as host:
        slug = f"t{uuid.uuid4().hex[:10]}"
        await host.platform.tenants.provision(slug)
        try:
            found = remotes(await host.client.get(URL, headers=host.auth(host.token(slug))))
            url = found["notes"]["remote_entry"]
            assert url.startswith(s3_config.endpoint) and "X-Amz-Signature" in url
            async with httpx2.AsyncClient() as plain:
                fetched = await plain.get(url)
            assert fetched.status_code == 200, fetched.text
            assert fetched.content == REMOTE_ENTRY
        finally:
            await host.platform.tenants.delete(slug)
            await host.platform.objects.delete_bucket(shared_bucket, force=True)
