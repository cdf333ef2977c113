"""The host against its own ``/openapi.json``: schemathesis generates requests from it, the answers must conform.

Every operation of the document (core routes and the notes plugin's) is called with up to
``MAX_EXAMPLES`` generated requests, as a tenant admin of a fresh tenant or, for the platform routes,
as a super-admin. Each answer must not be a server error, must have a documented status and
content type, and must fit the documented response schema and headers. The host runs in one event
loop (an anyio portal) for the whole module, as it would in production; hypothesis drives the cases.
"""

from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import attrs
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck
from plexica_plugin_notes import NotesPlugin
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from plexica_sdk.testing.host import RunningHost, build_settings, start_host

#: Generated requests per operation: 10 keeps ``.ci/run`` quick; ``PLEXICA_CONTRACT_EXAMPLES=200`` digs deeper.
MAX_EXAMPLES = int(os.environ.get("PLEXICA_CONTRACT_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
#: Operations only a super-admin may call (a tenant admin would only ever see 403s).
_PLATFORM_TAGS = frozenset({"tenants", "super-admins", "events"})


@attrs.define
class Contract:
    portal: anyio.from_thread.BlockingPortal
    running: RunningHost
    spec: dict[str, Any]
    tenant_admin: dict[str, str]
    super_admin: dict[str, str]

    def request(self, kwargs: dict[str, Any]) -> Any:
        """Send a request built from a case's transport arguments through the host's client."""
        body: dict[str, Any] = {}
        if "json" in kwargs:
            body["json"] = kwargs["json"]
        elif kwargs.get("data") is not None:
            data = kwargs["data"]
            body["content" if isinstance(data, bytes | str) else "data"] = data
        return self.portal.call(
            lambda: self.running.client.request(
                kwargs["method"],
                kwargs["url"],
                headers=kwargs.get("headers"),
                params=kwargs.get("params"),
                **body,
            )
        )


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
def contract(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    data: Path = tmp_path_factory.mktemp("contract")
    overrides = {"database": {"url": request.getfixturevalue("postgres_url")}} if request.param == "postgres" else {}
    settings = build_settings(data, {}, **overrides)
    with anyio.from_thread.start_blocking_portal() as portal, contextlib.ExitStack() as stack:
        cm = start_host([NotesPlugin()], settings, ["notes"], record_events=False)
        running = stack.enter_context(portal.wrap_async_context_manager(cm))
        before = {tenant.slug for tenant in portal.call(running.platform.tenants.list)}
        # A fresh tenant: PostgreSQL is shared between tests (the host deletes it when it stops).
        tenant = portal.call(running.make_tenant).slug
        spec = portal.call(running.client.get, "/openapi.json").json()
        tenant_admin = {"Authorization": f"Bearer {running.token_for('alice', ['tenant_admin'], tenant)}"}
        super_admin = {"Authorization": f"Bearer {running.admin_token()}"}
        # The admin's first request makes their profile, so user routes have a real user to find.
        assert portal.call(lambda: running.client.get("/api/core/v1/me", headers=tenant_admin)).status_code == 200
        try:
            yield Contract(portal, running, spec, tenant_admin, super_admin)
        finally:
            # Tenants the fuzzer provisioned through POST /tenants go too.
            for info in portal.call(running.platform.tenants.list):
                if info.slug not in before and info.slug != tenant and info.status != "deleted":
                    portal.call(running.platform.tenants.delete, info.slug)


def test_the_document_declares_bodies_responses_problems_and_security(contract: Contract) -> None:
    spec = contract.spec
    assert spec["openapi"] == "3.1.0"
    create = spec["paths"]["/api/core/v1/workspaces/{workspace_id}/members"]["post"]
    body = create["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/AddMember"}
    add_member = spec["components"]["schemas"]["AddMember"]
    assert add_member["required"] == ["user_id"] and add_member["additionalProperties"] is False
    assert add_member["properties"]["role"]["enum"] == ["admin", "member", "viewer"]
    assert add_member["properties"]["user_id"] == {"type": "string", "minLength": 1, "maxLength": 255}
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Member"
    }
    problem = create["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert problem == {"$ref": "#/components/schemas/Problem"}
    assert {"401", "403", "404", "409", "413", "415", "422", "429", "503"} <= set(create["responses"])
    assert spec["components"]["securitySchemes"]["bearer"]["bearerFormat"] == "JWT"
    # A plugin's routes carry the schemas it attached (examples/notes).
    note = spec["paths"]["/api/plugins/notes/notes"]["post"]
    assert note["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NoteInput"}
    assert spec["components"]["schemas"]["NoteInput"]["properties"]["title"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
    }
    assert spec["paths"]["/health"]["get"]["security"] == []


def _schema(spec: dict[str, Any]) -> Any:
    schema = schemathesis.openapi.from_dict(spec)
    # Query parameters a route does not read are ignored, as HTTP APIs do; the token is sent by the test.
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    return schema


def _fuzz(contract: Contract, operation: Any, headers: dict[str, str], seen: list[int], mode: GenerationMode) -> Any:
    """A hypothesis test sending ``MAX_EXAMPLES`` generated cases of ``operation`` and checking each answer.

    Negative cases (data the document forbids: wrong types, unknown fields, out-of-range values)
    must also be refused with a 4xx (``negative_data_rejection``).
    """
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
        response = contract.request(kwargs)
        seen.append(response.status_code)
        case.validate_response(response, checks=checks, transport_kwargs=kwargs)

    return run


def test_every_operation_conforms_to_the_document(contract: Contract) -> None:
    schema = _schema(contract.spec)
    failures: list[str] = []
    operations = 0
    statuses: list[int] = []
    unsatisfiable = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        tags = set(operation.definition.raw.get("tags", ()))
        headers = contract.super_admin if tags & _PLATFORM_TAGS else contract.tenant_admin
        raw = operation.definition.raw
        # Path parameters are any non-empty text: only a body, query or header can be made invalid.
        negatable = "requestBody" in raw or any(p["in"] != "path" for p in raw.get("parameters", ()))
        modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if negatable else (GenerationMode.POSITIVE,)
        for mode in modes:
            try:  # every failing operation is reported, not only the first
                _fuzz(contract, operation, headers, statuses, mode)()
            except hypothesis.errors.Unsatisfiable:
                unsatisfiable += 1  # free-text query or headers only: nothing the document forbids
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
    by_class = {f"{s // 100}xx": sum(1 for x in statuses if x // 100 == s // 100) for s in sorted(set(statuses))}
    print(
        f"\nschemathesis: {operations} operations, {len(statuses)} requests {by_class}, "
        f"{unsatisfiable} without negative cases, {len(failures)} failing"
    )
    assert operations >= 60
    assert not failures, "\n\n".join(failures)


def test_an_answer_off_the_document_is_caught(contract: Contract) -> None:
    """The fuzzer's checks are live: a document that lies about ``/me`` fails it."""
    spec = copy.deepcopy(contract.spec)
    spec["components"]["schemas"]["Me"]["properties"]["is_super_admin"] = {"type": "string"}
    operation = _schema(spec)["/api/core/v1/me"]["GET"]
    with pytest.raises(BaseExceptionGroup, match=r"is_super_admin|not of type"):
        _fuzz(contract, operation, contract.tenant_admin, [], GenerationMode.POSITIVE)()


def test_a_bad_body_is_a_422_naming_each_field_path(contract: Contract) -> None:
    body = {"name": 5, "parent_id": ["x"], "colour": "red"}
    response = contract.portal.call(
        lambda: contract.running.client.post("/api/core/v1/workspaces", json=body, headers=contract.tenant_admin)
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert sorted(error["field"] for error in response.json()["errors"]) == ["colour", "name", "parent_id"]
