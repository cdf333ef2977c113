"""Tests for the service fixtures: each real service answers, and unavailable ones skip or fail."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pytest

from tests.fixtures.services import (
    SERVICES,
    ServiceGate,
    find_problem,
    service_address,
    services_required,
)

if TYPE_CHECKING:
    from tests.fixtures.services import S3Config

pytestmark = pytest.mark.anyio

S3_ENV = {
    "TEST_S3_ENDPOINT": "http://127.0.0.1:58333",
    "TEST_S3_ACCESS_KEY": "ci-access",
    "TEST_S3_SECRET_KEY": "ci-secret",
    "TEST_S3_REGION": "us-east-1",
}


# ---- the real services ------------------------------------------------------------------------


@pytest.mark.postgres
async def test_postgres_answers_select_1(postgres_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(postgres_url)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()


@pytest.mark.redis
async def test_redis_answers_ping(redis_url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.kafka
async def test_kafka_round_trips_a_message(kafka_bootstrap: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"fixtures-{uuid.uuid4().hex[:12]}"
    # Tansu supports neither aiokafka's idempotent producer nor transactions.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=b"k")
        assert sent.topic == topic
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        message = await consumer.getone()
        assert (message.key, message.value) == (b"k", b"hello")
    finally:
        await consumer.stop()


@pytest.mark.s3
async def test_s3_creates_and_deletes_a_bucket(s3_config: S3Config) -> None:
    import aioboto3

    bucket = f"fixtures-{uuid.uuid4().hex[:12]}"
    session = aioboto3.Session(
        aws_access_key_id=s3_config.access_key,
        aws_secret_access_key=s3_config.secret_key,
        region_name=s3_config.region,
    )
    async with session.client("s3", endpoint_url=s3_config.endpoint) as s3:
        await s3.create_bucket(Bucket=bucket)
        try:
            await s3.put_object(Bucket=bucket, Key="a.txt", Body=b"hello")
            response = await s3.get_object(Bucket=bucket, Key="a.txt")
            async with response["Body"] as body:
                assert await body.read() == b"hello"
            await s3.delete_object(Bucket=bucket, Key="a.txt")
        finally:
            await s3.delete_bucket(Bucket=bucket)
        names = [b["Name"] for b in (await s3.list_buckets())["Buckets"]]
        assert bucket not in names


# ---- skip / fail logic (no services needed) ---------------------------------------------------


def reachable(host: str, port: int) -> bool:
    return True


def unreachable(host: str, port: int) -> bool:
    return False


@pytest.mark.parametrize(
    ("value", "default_port", "expected"),
    [
        ("postgresql+asyncpg://postgres@127.0.0.1:55432/postgres", 5432, ("127.0.0.1", 55432)),
        ("postgresql+asyncpg://u:p@db.internal/app", 5432, ("db.internal", 5432)),
        ("redis://127.0.0.1:56379/0", 6379, ("127.0.0.1", 56379)),
        ("127.0.0.1:59092,127.0.0.2:59093", 9092, ("127.0.0.1", 59092)),
        ("kafka.internal", 9092, ("kafka.internal", 9092)),
        ("https://idp.example.com/realms/x", 80, ("idp.example.com", 443)),
    ],
    ids=["url-with-port", "url-default-port", "redis", "bootstrap-list", "bare-host", "https-default"],
)
def test_service_address_finds_host_and_port(value: str, default_port: int, expected: tuple[str, int]) -> None:
    assert service_address(value, default_port) == expected


@pytest.mark.parametrize(
    "value",
    ["", "redis:///0", "redis://h:bad/0", "http://h:99999"],
    ids=["empty", "no-host", "port-not-a-number", "port-out-of-range"],
)
def test_service_address_rejects_garbage(value: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - urllib's messages are not ours to pin
        service_address(value, 1)


@pytest.mark.parametrize(
    ("value", "required"),
    [("1", True), ("true", True), (" YES ", True), ("0", False), ("", False), ("no", False)],
    ids=["1", "true", "yes-padded", "0", "empty", "no"],
)
def test_services_required_reads_truthy_values(value: str, required: bool) -> None:
    assert services_required({"PLEXICA_REQUIRE_SERVICES": value}) is required


def test_missing_setting_skips_with_a_hint() -> None:
    gate = ServiceGate(environ={}, probe=reachable)
    with pytest.raises(pytest.skip.Exception, match=r"TEST_REDIS_URL unset.*scripts/services\.sh up"):
        gate.require("redis")


def test_missing_setting_fails_when_services_are_required() -> None:
    gate = ServiceGate(environ={"PLEXICA_REQUIRE_SERVICES": "1"}, probe=reachable)
    with pytest.raises(pytest.fail.Exception, match="TEST_DATABASE_URL unset"):
        gate.require("postgres")


def test_unreachable_service_skips_or_fails() -> None:
    env = {"TEST_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    with pytest.raises(pytest.skip.Exception, match=r"unreachable at 127\.0\.0\.1:1"):
        ServiceGate(environ=env, probe=unreachable).require("kafka")
    with pytest.raises(pytest.fail.Exception, match="unreachable"):
        ServiceGate(environ={**env, "PLEXICA_REQUIRE_SERVICES": "1"}, probe=unreachable).require("kafka")


def test_partial_s3_settings_name_the_missing_ones() -> None:
    env = {"TEST_S3_ENDPOINT": "http://127.0.0.1:58333", "TEST_S3_REGION": "us-east-1"}
    problem = find_problem(SERVICES["s3"], env, reachable)
    assert problem is not None
    assert "TEST_S3_ACCESS_KEY, TEST_S3_SECRET_KEY unset" in problem


def test_available_service_returns_its_settings_and_is_probed_once() -> None:
    probed: list[tuple[str, int]] = []

    def probe(host: str, port: int) -> bool:
        probed.append((host, port))
        return True

    gate = ServiceGate(environ=S3_ENV, probe=probe)
    assert gate.require("s3") == tuple(S3_ENV.values())
    assert gate.require("s3") == tuple(S3_ENV.values())
    assert probed == [("127.0.0.1", 58333)]


def test_failed_probe_is_not_retried_within_a_session() -> None:
    calls = 0

    def probe(host: str, port: int) -> bool:
        nonlocal calls
        calls += 1
        return False

    gate = ServiceGate(environ={"TEST_REDIS_URL": "redis://127.0.0.1:1/0"}, probe=probe)
    for _ in range(3):
        with pytest.raises(pytest.skip.Exception):
            gate.require("redis")
    assert calls == 1


def test_keycloak_is_known_but_unconfigured_by_default() -> None:
    with pytest.raises(pytest.skip.Exception, match="TEST_KEYCLOAK_URL unset"):
        ServiceGate(environ={}, probe=reachable).require("keycloak")


def test_every_service_marker_is_declared(pytestconfig: pytest.Config) -> None:
    declared = {line.split(":", 1)[0] for line in pytestconfig.getini("markers")}
    assert set(SERVICES) <= declared
