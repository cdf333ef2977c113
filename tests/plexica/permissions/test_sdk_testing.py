"""``plexica_sdk.testing``: the policy tables plugin authors run with pytest."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from plexica_sdk.testing import PolicyCase, PolicySubject, PolicyTable, policy_table
from plexica_sdk.types import Policy, RoleDef
from tests.plexica.permissions.conftest import TasksPlugin

ann = PolicySubject(id="ann")
editor = PolicySubject(id="eve", roles=("tasks-editor",))
viewer = PolicySubject(id="vic", roles=(), workspace_roles={"ws-1": "viewer"}, workspace_id="ws-1")

# What a plugin's test module looks like: one table, collected and run by pytest.
test_tasks_policies = policy_table(
    TasksPlugin(),
    [
        PolicyCase(ann, "tasks:task:read", expected=True, decided_by="role:member"),
        PolicyCase(ann, "tasks:task:write", {"author_id": "ann"}, expected=True, id="authors-edit-own"),
        PolicyCase(ann, "tasks:task:write", {"author_id": "bob"}, expected=False, id="not-others"),
        PolicyCase(editor, "tasks:task:write", {"author_id": "bob"}, expected=True),
        PolicyCase(viewer, "tasks:task:read", expected=True, decided_by="role:workspace_viewer"),
        PolicyCase(viewer, "tasks:task:read", {"workspace_id": "ws-2"}, expected=False, id="other-workspace"),
        PolicyCase("nobody", "core:tenant:read", expected=True),
        PolicyCase("nobody", "core:role:write", expected=False),
    ],
    policies=[
        Policy(
            id="frozen",
            effect="deny",
            target="tasks:*",
            condition={"attribute": "resource.frozen", "operator": "exists"},
        )
    ],
)


def test_a_wrong_expectation_fails_with_the_decision_in_the_message() -> None:
    table = PolicyTable(TasksPlugin())
    with pytest.raises(AssertionError, match=r"expected allow, got .*no role or policy"):
        table.check(PolicyCase(ann, "tasks:task:write", {"author_id": "bob"}, expected=True, id="wrong"))
    with pytest.raises(AssertionError, match="decided_by"):
        table.check(PolicyCase(ann, "tasks:task:read", decided_by="role:tasks-editor"))


def test_tables_take_tenant_roles_and_policies() -> None:
    table = PolicyTable([TasksPlugin()], roles=[RoleDef(name="auditor", permissions=("tasks:task:read",))])
    assert table.decide(PolicyCase(PolicySubject(roles=("auditor",)), "tasks:task:read")).decided_by == "role:auditor"


def test_case_ids_are_readable() -> None:
    assert PolicyCase(ann, "tasks:task:read").label() == "ann-tasks:task:read-allowed"
    assert PolicyCase("bob", "x:y:z", expected=False).label() == "bob-x:y:z-denied"


def test_importing_the_testing_package_pulls_in_no_host_database_or_web_library() -> None:
    probe = (
        "import json, sys; import plexica_sdk.testing; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'starlette', 'redis', 'plexica', 'pytest', 'aiokafka'})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(done.stdout) == []
