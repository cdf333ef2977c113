"""The one error table (plexica.errors) as http/problems renders it: each class its status, nothing internal leaks."""

from __future__ import annotations

import json

import pytest
from starlette.exceptions import HTTPException

from plexica.auth.issuers import RealmPerTenantStrategy
from plexica.auth.tokens import TokenVerifier
from plexica.errors import (
    INTERNAL,
    PROBLEM_KINDS,
    AuthenticationError,
    BackendUnavailableError,
    ConfigurationError,
    ConflictError,
    EventError,
    IdentityAdminError,
    InvalidTenantSlugError,
    MissingDependencyError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PlexicaError,
    PluginAnswerError,
    PluginCallError,
    PluginContractError,
    PluginLoadError,
    PluginTimeoutError,
    PluginUnavailableError,
    PreconditionRequiredError,
    RateLimitedError,
    SettingsError,
    TenantContextMissingError,
    TenantNotFoundError,
    TenantSuspendedError,
    UnsupportedMediaTypeError,
    ValidationError,
    kind_of,
)
from plexica.http.problems import problem_for

#: One instance of every class with a row; a new row without a sample fails the completeness test.
SAMPLES: dict[type[BaseException], BaseException] = {
    AuthenticationError: AuthenticationError("token expired"),
    TenantSuspendedError: TenantSuspendedError("acme"),
    PermissionDeniedError: PermissionDeniedError("notes:note:write", "no role grants it"),
    NotFoundError: NotFoundError("note 42 not found", resource="note"),
    ConflictError: ConflictError("slug taken", resource="tenant"),
    PayloadTooLargeError: PayloadTooLargeError(1024),
    UnsupportedMediaTypeError: UnsupportedMediaTypeError("text/plain"),
    ValidationError: ValidationError("title: too long", field="title"),
    PreconditionRequiredError: PreconditionRequiredError(),
    RateLimitedError: RateLimitedError(1.5, policy="user"),
    PluginContractError: PluginContractError("notes", "unknown event type 'notes.x.y'", event_type="notes.x.y"),
    PluginCallError: PluginCallError("notes", "plexica_routes", "KeyError: 'secret'"),
    PluginAnswerError: PluginAnswerError("notes", "plexica_routes", "not JSON: secret"),
    PluginUnavailableError: PluginUnavailableError("notes", "a route", "connection refused at 10.0.0.7"),
    PluginTimeoutError: PluginTimeoutError("notes", "plexica_resource_attributes", 10.0),
    IdentityAdminError: IdentityAdminError("realm exists with password hunter2", realm="acme", status=409),
    BackendUnavailableError: BackendUnavailableError("database", "connection refused at 10.0.0.5"),
}


def body_of(exc: BaseException, trace_id: str | None = "trace-1234") -> dict[str, object]:
    response = problem_for(exc, trace_id=trace_id)
    assert response.media_type == "application/problem+json"
    body = json.loads(bytes(response.body))
    assert body["status"] == response.status_code
    return body  # type: ignore[no-any-return]


def test_every_row_has_a_sample() -> None:
    assert set(SAMPLES) == set(PROBLEM_KINDS)


@pytest.mark.parametrize("cls", list(PROBLEM_KINDS), ids=lambda cls: cls.__name__)
def test_each_class_gets_its_rows_status_and_type(cls: type[BaseException]) -> None:
    kind = PROBLEM_KINDS[cls]
    body = body_of(SAMPLES[cls])
    assert (body["status"], body["type"], body["title"]) == (kind.status, kind.type, kind.title)
    assert str(body["type"]).startswith("https://plexica.dev/problems/")
    assert body["trace_id"] == "trace-1234"


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (TenantNotFoundError("acme"), 404),
        (InvalidTenantSlugError("Acme!"), 422),
        (PluginContractError("notes", "payload fails its schema"), 500),
    ],
    ids=["tenant-not-found", "invalid-slug", "contract"],
)
def test_subclasses_inherit_the_nearest_row(exc: BaseException, status: int) -> None:
    assert body_of(exc)["status"] == status


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("database password is hunter2"),
        KeyError("secret"),
        PlexicaError("host bug: internal state s3cr3t"),
        SettingsError(["database.url: password=hunter2"]),
        TenantContextMissingError("the notes repository"),
        EventError("event 7 cannot be encoded: internal detail"),
        PluginLoadError("notes", "internal detail"),
        MissingDependencyError("redis", "redis.asyncio"),
        PluginContractError("notes", "unknown event type 'notes.secret.thing'"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_an_unmapped_error_is_a_500_with_only_the_trace_id(exc: BaseException) -> None:
    assert kind_of(exc) is INTERNAL
    assert body_of(exc) == {
        "type": "https://plexica.dev/problems/internal",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an unexpected error occurred",
        "trace_id": "trace-1234",
    }


def test_client_errors_carry_no_internal_detail() -> None:
    assert "notes:note:write" not in json.dumps(body_of(SAMPLES[PermissionDeniedError]))
    assert "10.0.0.5" not in json.dumps(body_of(SAMPLES[BackendUnavailableError]))
    assert "hunter2" not in json.dumps(body_of(SAMPLES[IdentityAdminError]))
    assert "secret" not in json.dumps(body_of(SAMPLES[PluginCallError]))
    assert "42" not in json.dumps(body_of(SAMPLES[NotFoundError]))


def test_validation_problems_name_each_field() -> None:
    body = body_of(ValidationError("two problems", field="title", problems=["title: too long", "body: not a string"]))
    assert body["errors"] == [
        {"field": "title", "message": "title: too long"},
        {"field": "title", "message": "body: not a string"},
    ]


@pytest.mark.parametrize(
    ("status", "slug"),
    [(405, "method-not-allowed"), (413, "payload-too-large"), (415, "unsupported-media-type"), (418, "http-418")],
)
def test_http_exceptions_are_problems_with_a_stable_type(status: int, slug: str) -> None:
    response = problem_for(HTTPException(status, headers={"Allow": "GET"}), trace_id="t-12345678")
    body = json.loads(bytes(response.body))
    assert (response.status_code, body["type"]) == (status, f"https://plexica.dev/problems/{slug}")
    assert response.headers["allow"] == "GET"


def test_a_500_http_exception_says_nothing_but_the_trace_id() -> None:
    body = json.loads(bytes(problem_for(HTTPException(500, "stack trace here"), trace_id="t-12345678").body))
    assert "stack trace" not in json.dumps(body)
    assert body["type"] == "https://plexica.dev/problems/internal"


@pytest.mark.parametrize(
    "build",
    [
        lambda: RealmPerTenantStrategy("ftp://idp", realm_template="t-{slug}"),
        lambda: RealmPerTenantStrategy("https://idp", realm_template="no-slug"),
        lambda: TokenVerifier(RealmPerTenantStrategy("https://idp"), None, audience=""),  # type: ignore[arg-type]
    ],
    ids=["base-url", "realm-template", "audience"],
)
def test_auth_configuration_mistakes_are_configuration_errors(build: object) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()  # type: ignore[operator]
    assert isinstance(caught.value, SettingsError | ValueError)
