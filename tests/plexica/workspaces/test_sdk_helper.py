"""``plexica_sdk.workspaces``: the request's workspace, and queries scoped to it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from plexica_sdk import context
from plexica_sdk.errors import TenantContextMissingError, ValidationError
from plexica_sdk.types import TenantContext
from plexica_sdk.workspaces import WorkspaceRequiredError, scope_to_workspace, workspace_id

CTX = TenantContext(tenant_id="t", slug="acme", schema="tenant_acme", workspace_id="ws-a")
NO_WORKSPACE = TenantContext(tenant_id="t", slug="acme", schema="tenant_acme")

rows = sa.Table("rows", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("workspace_id", sa.String))


class FakeHost:
    """Anything with a ``tenant`` (a plugin's ``Host`` handle) will do."""

    def __init__(self, ctx: TenantContext) -> None:
        self.tenant = ctx


def test_the_workspace_comes_from_the_context_a_host_or_the_current_context() -> None:
    assert workspace_id(CTX) == "ws-a"
    assert workspace_id(FakeHost(CTX)) == "ws-a"
    with context.use(CTX):
        assert workspace_id() == "ws-a"


def test_no_selected_workspace_is_a_typed_422_naming_the_header() -> None:
    with pytest.raises(WorkspaceRequiredError) as error:
        workspace_id(NO_WORKSPACE, what="listing tasks")
    assert isinstance(error.value, ValidationError)
    assert error.value.field == "X-Workspace-ID"
    assert "listing tasks" in str(error.value)
    with pytest.raises(TenantContextMissingError):
        workspace_id()


@pytest.mark.parametrize(
    "query",
    [sa.select(rows), sa.update(rows).values(id=1), sa.delete(rows)],
    ids=["select", "update", "delete"],
)
def test_scoping_adds_one_bound_condition_on_the_column(query: sa.Select[tuple[int, str]]) -> None:
    scoped = scope_to_workspace(query, rows.c.workspace_id, CTX)
    compiled = scoped.compile()
    assert "rows.workspace_id = :workspace_id_1" in str(compiled)
    assert compiled.params["workspace_id_1"] == "ws-a"


def test_scoping_without_a_workspace_refuses_rather_than_returning_everything() -> None:
    with pytest.raises(WorkspaceRequiredError):
        scope_to_workspace(sa.select(rows), rows.c.workspace_id, NO_WORKSPACE)


def test_importing_the_helper_pulls_in_no_database_library() -> None:
    probe = (
        "import json, sys; import plexica_sdk.workspaces; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {'sqlalchemy', 'starlette'})))"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == []
