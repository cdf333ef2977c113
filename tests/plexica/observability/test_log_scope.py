"""Under a flood of concurrent failing requests, every log line carries its own request's ids.

The records are formatted only after every request finished, as a queue handler would format
them: the ids must have been captured when each line was logged, in its own request's task.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from plexica import create_app, load_settings
from plexica.observability.logging import JsonFormatter
from plexica_sdk import PluginManifest, hookimpl

pytestmark = pytest.mark.anyio

flood_log = logging.getLogger("plexica.test.flood")
TENANTS = ("acme", "globex", "initech", "umbrella")
REQUESTS = 240


async def explode(request: Request) -> Response:
    flood_log.warning("about to fail")
    await asyncio.sleep(0)  # let the other requests interleave between the two lines
    raise RuntimeError("the plugin broke")


class FloodPlugin:
    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="flood", version="1.0.0")

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return [Route("/boom", explode, methods=["GET"])]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[_Records]:
    handler = _Records()
    loggers = [logging.getLogger(name) for name in ("plexica.errors", "plexica.test.flood", "plexica.access")]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def test_every_error_line_carries_its_own_requests_tenant_user_and_trace(
    tmp_path: Path, records: _Records
) -> None:
    settings = load_settings(environ={}, data_dir=str(tmp_path), load_entry_points=False, environment="test")
    app = create_app(settings, plugins=[FloodPlugin()])
    expected: dict[str, tuple[str, str]] = {}
    async with app.router.lifespan_context(app):
        platform = app.state.platform
        for slug in TENANTS:
            await platform.tenants.provision(slug)
        ids = {slug: (await platform.tenants.get(slug)).id for slug in TENANTS}
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def one(index: int) -> int:
                slug, user, trace = TENANTS[index % len(TENANTS)], f"user-{index}", f"flood-trace-{index:05d}"
                expected[trace] = (slug, user)
                token = platform.dev_issuer.mint(realm=f"tenant-{slug}", subject=user, roles=["member"])
                response = await client.get(
                    "/api/plugins/flood/boom", headers={"Authorization": f"Bearer {token}", "X-Trace-ID": trace}
                )
                return response.status_code

            statuses = await asyncio.gather(*(one(index) for index in range(REQUESTS)))
    assert set(statuses) == {500}

    formatter = JsonFormatter()
    lines = [json.loads(formatter.format(record)) for record in records.records]
    by_kind: dict[str, list[dict[str, Any]]] = {"about to fail": [], "unhandled error": [], "request": []}
    for line in lines:
        if line["message"] in by_kind:
            by_kind[line["message"]].append(line)
    for kind, found in by_kind.items():
        assert len(found) == REQUESTS, kind
        assert {line["traceId"] for line in found} == set(expected), kind
        for line in found:
            slug, user = expected[line["traceId"]]
            assert (line["tenantSlug"], line["tenantId"], line["userId"]) == (slug, ids[slug], user), line
    # One request id per request, shared by its three lines.
    request_ids: dict[str, set[str]] = {}
    for line in lines:
        request_ids.setdefault(line["traceId"], set()).add(line["requestId"])
    assert all(len(found) == 1 for found in request_ids.values())
    assert len({next(iter(found)) for found in request_ids.values()}) == REQUESTS
    plugin_lines = by_kind["about to fail"]
    assert all(line["plugin"] == "flood" for line in plugin_lines)  # logged inside the plugin's route
    assert not any("plugin" in line for line in by_kind["request"])  # the access log is the host's
