"""The same remote plugin behind a host on PostgreSQL and Kafka: hooks, the tenant event over the broker, routes."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.plexica.db.support import fresh_postgres_database
from tests.remote.processes import PROBE, start_stack, wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.postgres, pytest.mark.kafka]


async def test_a_remote_plugin_on_postgresql_and_kafka(postgres_url: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    async with fresh_postgres_database(postgres_url) as database:
        environ = {
            "PLEXICA_DATABASE__URL": database,
            "PLEXICA_EVENTS__BACKEND": "kafka",
            "PLEXICA_EVENTS__BOOTSTRAP_SERVERS": kafka_bootstrap,
            "PLEXICA_EVENTS__REPLICATION_FACTOR": "1",
            "PLEXICA_EVENTS__ENABLE_IDEMPOTENCE": "false",  # the test broker lacks the idempotent producer
            "PLEXICA_EVENTS__KAFKA__SESSION_TIMEOUT_MS": "2000",
            "PLEXICA_EVENTS__KAFKA__HEARTBEAT_INTERVAL_MS": "300",
            "PLEXICA_EVENTS__KAFKA__METADATA_MAX_AGE_MS": "1000",
        }
        stack = start_stack(tmp_path, {"probe": PROBE}, environ=environ)
        try:
            slug = f"kafka{secrets.token_hex(3)}"  # the broker is shared: topics of its own
            created = stack.provision(slug)
            assert created.status_code == 201, created.text
            hooks = {(entry["hook"], entry["tenant"]) for entry in stack.probed("hook")}
            assert {("plexica_plugin_installed", slug), ("plexica_tenant_provisioned", slug)} <= hooks
            wait_until(
                lambda: any(e["context"] == slug for e in stack.probed("event")),
                seconds=40,
                what="core.tenant.created over Kafka at the remote plugin",
            )
            with stack.client() as client:
                answer = client.get("/api/plugins/probe/headers", headers=stack.token(slug))
            assert answer.status_code == 200, answer.text
            checks = stack.health()["checks"]
            assert checks["plugin:probe"]["breaker"]["state"] == "closed"
            assert checks["broker"]["status"] == "ok"  # the Kafka bus (the in-process one has no probe)
        finally:
            stack.close()
