"""Input classes from the attack run (issue 13), over every core route with a body or parameter and the notes routes.

Deep JSON, lone surrogates, NUL bytes (body, path, query), wrong types, bodies over the limit and
bad query integers: every answer is a 4xx problem, never a 5xx, on SQLite and on PostgreSQL.
Each route gets every fixed bad sample once; hypothesis then draws more, bounded to stay fast.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import plexica_sdk
from plexica_sdk import PluginManifest, hookimpl
from plexica_sdk.types import EventTypeDef, PermissionDef
from tests.e2e.conftest import Host

pytestmark = pytest.mark.anyio

MakeHost = Callable[..., contextlib.AbstractAsyncContextManager[Host]]
CORE = "/api/core/v1"
ID = "00000000-0000-4000-8000-000000000000"

#: (method, path, who) of every route that reads a JSON body; "admin" is the platform super-admin.
BODY_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("POST", f"{CORE}/tenants", "admin"),
    ("POST", f"{CORE}/super-admins", "admin"),
    ("POST", f"{CORE}/permissions/check", "tenant"),
    ("POST", f"{CORE}/permissions/explain", "tenant"),
    ("POST", f"{CORE}/roles", "tenant"),
    ("PUT", f"{CORE}/roles/editor", "tenant"),
    ("POST", f"{CORE}/roles/editor/grants", "tenant"),
    ("POST", f"{CORE}/policies", "tenant"),
    ("PUT", f"{CORE}/policies/p1", "tenant"),
    ("POST", f"{CORE}/workspaces", "tenant"),
    ("PATCH", f"{CORE}/workspaces/{ID}", "tenant"),
    ("POST", f"{CORE}/workspaces/{ID}/move", "tenant"),
    ("POST", f"{CORE}/workspaces/{ID}/members", "tenant"),
    ("PATCH", f"{CORE}/workspaces/{ID}/members/bob", "tenant"),
    ("POST", f"{CORE}/teams", "tenant"),
    ("PATCH", f"{CORE}/teams/{ID}", "tenant"),
    ("POST", f"{CORE}/teams/{ID}/members", "tenant"),
    ("PUT", f"{CORE}/plugins/notes/config", "tenant"),
    ("PATCH", f"{CORE}/plugins/notes/config", "tenant"),
    ("POST", "/api/plugins/notes/notes", "tenant"),
    ("PUT", f"/api/plugins/notes/notes/{ID}", "tenant"),
)

#: Routes with path parameters, as templates: ``{p}`` is where the parameter goes.
PATH_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", f"{CORE}/tenants/{{p}}", "admin"),
    ("POST", f"{CORE}/tenants/{{p}}/suspend", "admin"),
    ("DELETE", f"{CORE}/super-admins/{{p}}", "admin"),
    ("GET", f"{CORE}/events/dlq/{{p}}", "admin"),
    ("GET", f"{CORE}/roles/{{p}}", "tenant"),
    ("GET", f"{CORE}/roles/{{p}}/grants", "tenant"),
    ("DELETE", f"{CORE}/roles/editor/grants/{{p}}", "tenant"),
    ("GET", f"{CORE}/policies/{{p}}", "tenant"),
    ("GET", f"{CORE}/workspaces/{{p}}", "tenant"),
    ("GET", f"{CORE}/workspaces/{{p}}/members", "tenant"),
    ("GET", f"{CORE}/teams/{{p}}", "tenant"),
    ("GET", f"{CORE}/teams/{{p}}/members", "tenant"),
    ("GET", f"{CORE}/users/{{p}}", "tenant"),
    ("POST", f"{CORE}/users/{{p}}/disable", "tenant"),
    ("GET", f"{CORE}/plugins/{{p}}/config", "tenant"),
    ("GET", "/api/plugins/notes/notes/{p}", "tenant"),
    ("DELETE", "/api/plugins/notes/notes/{p}", "tenant"),
)

#: Routes with an integer query parameter ``limit``.
LIMIT_ROUTES: tuple[tuple[str, str], ...] = (
    (f"{CORE}/users", "tenant"),
    (f"{CORE}/teams", "tenant"),
    (f"{CORE}/workspaces", "tenant"),
    (f"{CORE}/events/dlq", "admin"),
    ("/api/plugins/notes/notes", "tenant"),
)

NESTED = 10_000
#: One of each body class; the fields are the ones the routes read, so the bad value is reached.
BAD_BODIES: dict[str, bytes] = {
    "deep-array": b"[" * NESTED + b"]" * NESTED,
    "deep-object": b'{"title":' * NESTED + b"1" + b"}" * NESTED,
    "lone-surrogate": b'{"title": "\\ud800", "name": "\\udfff", "slug": "\\ud800x", "key": "\\ud800"}',
    "nul": b'{"title": "a\\u0000b", "name": "x\\u0000", "slug": "ac\\u0000me", "user_id": "\\u0000"}',
    "nul-key": b'{"\\u0000": 1}',
    "nan": b'{"title": NaN}',
    "huge-int": b'{"title": 1' + b"0" * 30 + b"}",
    "not-utf8": b'{"title": "\xff\xfe"}',
    "wrong-types": b'{"title": [], "body": {}, "name": 1, "slug": true, "permissions": "x", "parent_id": 5}',
    "not-an-object": b"[1, 2, 3]",
}
BAD_LIMITS = ("abc", "-1", "0", "1e3", "\u00b2", "99999999999999999999999", "1.5", "%00")


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(
    params=[
        pytest.param({}, id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "postgres":
        return {"database": {"url": request.getfixturevalue("postgres_url")}}
    return {}


class Caller:
    """Sends requests as the super-admin or as a tenant admin of ``acme``; checks no answer is a 5xx."""

    def __init__(self, host: Host, tenant: str) -> None:
        self.host = host
        self.headers = {
            "admin": host.auth(host.admin_token()),
            "tenant": host.auth(host.token(tenant, roles=["tenant_admin"])),
        }

    async def send(self, method: str, path: str, who: str, **kwargs: Any) -> httpx2.Response:
        headers = {**self.headers[who], **kwargs.pop("headers", {})}
        response = await self.host.client.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json", (method, path)
            assert response.json()["type"].startswith("https://plexica.dev/problems/")
        return response

    async def send_json(self, method: str, path: str, who: str, raw: bytes) -> httpx2.Response:
        # If-Match: * gets conditional routes (PATCH /workspaces/{id}) past their 428 to the body.
        headers = {"content-type": "application/json", "if-match": "*"}
        return await self.send(method, path, who, content=raw, headers=headers)


@pytest.fixture
async def caller(make_host: MakeHost, backend: dict[str, Any]) -> AsyncIterator[Caller]:
    async with make_host(**backend) as host:
        tenant = f"in-{uuid.uuid4().hex[:12]}"  # PostgreSQL is shared between tests: a fresh tenant each
        await host.platform.tenants.provision(tenant)
        yield Caller(host, tenant)


# ----------------------------------------------------------------- fixed samples, every route


async def test_every_body_route_answers_each_bad_body_with_a_4xx_problem(caller: Caller) -> None:
    for sample, raw in BAD_BODIES.items():
        for method, path, who in BODY_ROUTES:
            response = await caller.send_json(method, path, who, raw)
            assert 400 <= response.status_code < 500, (sample, method, path, response.status_code)


async def test_bodies_over_the_limit_are_413_on_every_body_route(caller: Caller) -> None:
    oversized = b'{"title": "' + b"x" * (1_048_576 + 10) + b'"}'
    for method, path, who in BODY_ROUTES:
        response = await caller.send_json(method, path, who, oversized)
        assert response.status_code == 413, (method, path, response.status_code)
        assert response.json()["type"] == "https://plexica.dev/problems/payload-too-large"


async def test_a_non_json_content_type_is_415(caller: Caller) -> None:
    for method, path, who in BODY_ROUTES:
        headers = {"content-type": "text/plain", "if-match": "*"}
        response = await caller.send(method, path, who, content=b"title=x", headers=headers)
        assert response.status_code == 415, (method, path, response.status_code)


async def test_nul_in_a_path_parameter_is_404_on_every_route(caller: Caller) -> None:
    for method, template, who in PATH_ROUTES:
        for value in ("a%00b", "%00", ID[:-1] + "%00"):
            response = await caller.send(method, template.format(p=value), who)
            assert response.status_code == 404, (method, template, value)


async def test_bad_limits_are_422_on_every_listing(caller: Caller) -> None:
    for path, who in LIMIT_ROUTES:
        for limit in BAD_LIMITS:
            response = await caller.send("GET", path, who, params={"limit": limit})
            assert response.status_code == 422, (path, limit, response.status_code)
            assert response.json()["errors"][0]["field"] in ("limit", "query")
        assert (await caller.send("GET", path, who, params={"limit": "5"})).status_code == 200


async def test_nul_in_a_query_parameter_is_422(caller: Caller) -> None:
    response = await caller.send("GET", f"{CORE}/workspaces", "tenant", params={"parent_id": "a\x00b"})
    assert response.status_code == 422


async def test_a_streamed_body_is_cut_off_at_the_limit_without_reading_the_rest(caller: Caller) -> None:
    sent = 0

    async def thirty_megabytes() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"title": "'
        for _ in range(30 * 16):  # 64 KiB chunks, no Content-Length
            sent += 1
            yield b"x" * 65_536
        yield b'"}'

    response = await caller.send("POST", "/api/plugins/notes/notes", "tenant", content=thirty_megabytes())
    assert response.status_code == 413
    assert sent < 30 * 16  # refused while streaming: most of the 30 MB was never read


# ----------------------------------------------------------------- generated inputs


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_values = st.recursive(
    json_leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)
nasty_text = st.text(alphabet=st.one_of(st.characters(), st.sampled_from("\x00\ud800\udbff\udc00\udfff")), max_size=20)
FIELDS = ("title", "body", "name", "slug", "key", "permissions", "user_id", "team_id", "parent_id", "role", "id")


def _encode(value: Any) -> bytes:
    # ensure_ascii writes lone surrogates as \\udXXX escapes, which is how an attacker sends them.
    return json.dumps(value, ensure_ascii=True, allow_nan=False).encode()


def drawn(strategy: st.SearchStrategy[Any], count: int = 40) -> list[Any]:
    """``count`` values of ``strategy``, drawn by hypothesis before the requests are sent.

    The requests go to a host that lives in an async fixture; anyio's hypothesis support cannot
    share that fixture's runner, so generation and sending are split (no shrinking: the failing
    case is printed whole).
    """
    values: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        values.append(value)

    collect()
    return values


body_cases = st.tuples(
    st.sampled_from(BODY_ROUTES),
    st.one_of(
        json_values,
        st.fixed_dictionaries({}, optional={field: st.one_of(nasty_text, json_values) for field in FIELDS}),
    ),
    st.integers(min_value=0, max_value=2_000),
)
path_cases = st.tuples(
    st.sampled_from(PATH_ROUTES),
    st.text(min_size=1, max_size=300),  # st.text leaves out surrogates: URLs cannot carry them
    st.sampled_from(LIMIT_ROUTES),
    st.one_of(st.text(max_size=30), st.integers().map(str)),
)


async def test_generated_bodies_never_give_a_server_error(caller: Caller) -> None:
    for (method, path, who), body, depth in drawn(body_cases, 50):
        raw = b"[" * depth + _encode(body) + b"]" * depth
        await caller.send_json(method, path, who, raw)


async def test_generated_path_and_query_values_never_give_a_server_error(caller: Caller) -> None:
    for (method, template, who), value, (path, list_who), limit in drawn(path_cases, 40):
        await caller.send(method, template.format(p=quote(value, safe="")), who)
        await caller.send("GET", path, list_who, params={"limit": limit})


# ----------------------------------------------------------------- a plugin's own mistakes


class Careless:
    """A plugin whose routes break its own contract, or raise what a handler may raise."""

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name="careless",
            version="1.0.0",
            permissions=[PermissionDef(key="careless:thing:use")],
            event_types=[
                EventTypeDef(
                    type="careless.thing.made",
                    schema={"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
                )
            ],
        )

    @hookimpl
    def plexica_routes(self) -> list[Route]:
        async def undeclared(request: Request) -> JSONResponse:
            await plexica_sdk.host(request).publish("careless.thing.lost", {"id": "1"})
            return JSONResponse({})

        async def off_schema(request: Request) -> JSONResponse:
            await plexica_sdk.host(request).publish("careless.thing.made", {"id": 42})
            return JSONResponse({})

        async def too_large(request: Request) -> JSONResponse:
            raise HTTPException(413, "the upload is too large")

        async def crash(request: Request) -> JSONResponse:
            raise RuntimeError("database password is hunter2")

        return [
            Route("/undeclared", undeclared, methods=["POST"]),
            Route("/off-schema", off_schema, methods=["POST"]),
            Route("/too-large", too_large, methods=["POST"]),
            Route("/crash", crash, methods=["GET"]),
        ]


@pytest.fixture
async def careless(make_host: MakeHost) -> AsyncIterator[tuple[Host, dict[str, str]]]:
    async with make_host([Careless()]) as host:
        await host.platform.tenants.provision("acme")
        yield host, host.auth(host.token("acme", roles=["tenant_admin"]))


@pytest.mark.parametrize("route", ["/undeclared", "/off-schema"])
async def test_a_plugins_own_event_mistake_is_a_500_logged_with_its_name(
    careless: tuple[Host, dict[str, str]], route: str
) -> None:
    host, headers = careless
    recorder = _Recorder()
    logging.getLogger("plexica.errors").addHandler(recorder)
    try:
        response = await host.client.post(f"/api/plugins/careless{route}", headers=headers)
    finally:
        logging.getLogger("plexica.errors").removeHandler(recorder)
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "trace_id"}
    assert body["type"] == "https://plexica.dev/problems/internal"
    assert "careless.thing" not in response.text  # nothing of the plugin's mistake reaches the client
    assert [record.__dict__.get("plugin") for record in recorder.records] == ["careless"]


async def test_an_unexpected_error_is_a_500_with_only_the_trace_id(careless: tuple[Host, dict[str, str]]) -> None:
    host, headers = careless
    response = await host.client.get("/api/plugins/careless/crash", headers=headers)
    assert response.status_code == 500
    assert response.json() == {
        "type": "https://plexica.dev/problems/internal",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "an unexpected error occurred",
        "trace_id": response.headers["x-trace-id"],
    }


async def test_a_413_raised_in_a_plugin_route_is_a_problem(careless: tuple[Host, dict[str, str]]) -> None:
    host, headers = careless
    response = await host.client.post("/api/plugins/careless/too-large", headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://plexica.dev/problems/payload-too-large"
    assert response.json()["detail"] == "the upload is too large"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", f"{CORE}/workspaces", "GET, HEAD, POST"),
        ("PATCH", "/api/plugins/careless/crash", "GET, HEAD"),
        ("PUT", "/api/plugins/notes/notes", "GET, HEAD, POST"),
    ],
    ids=["core", "plugin", "notes"],
)
async def test_every_405_is_a_problem_with_allow(
    careless: tuple[Host, dict[str, str]], method: str, path: str, allowed: str
) -> None:
    host, headers = careless
    response = await host.client.request(method, path, headers=headers)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://plexica.dev/problems/method-not-allowed"
    assert sorted(response.headers["allow"].split(", ")) == sorted(allowed.split(", "))
