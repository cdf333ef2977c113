"""Scoping a plugin's data to the request's workspace.

A request selects its workspace with the ``X-Workspace-ID`` header; by the time a plugin's
handler runs, the host has checked that the caller is a member of it (else 404) and put it in
the tenant context. A plugin that keeps per-workspace rows stores the id in a column and scopes
every query with :func:`scope_to_workspace`::

    from plexica_sdk.workspaces import scope_to_workspace, workspace_id

    async def list_tasks(request):
        host = plexica_sdk.host(request)
        async with host.session() as session:
            rows = await session.execute(scope_to_workspace(sa.select(tasks), tasks.c.workspace_id, host))
        ...

    values = {"id": ..., "workspace_id": workspace_id(host), ...}  # for inserts

Nothing here imports a database library: :func:`scope_to_workspace` works on any query object
with a ``where`` method (a SQLAlchemy ``Select``, ``Update`` or ``Delete``) and any column that
builds a condition with ``==``.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from plexica_sdk import context
from plexica_sdk.errors import ValidationError
from plexica_sdk.http import WORKSPACE_HEADER
from plexica_sdk.types import TenantContext

__all__ = ["WorkspaceRequiredError", "scope_to_workspace", "workspace_id"]


class WorkspaceRequiredError(ValidationError):
    """The operation works inside a workspace and the request selected none (422).

    ``field`` names the header to send: ``X-Workspace-ID``.
    """

    def __init__(self, what: str = "this operation") -> None:
        super().__init__(f"{what} needs a workspace: send the {WORKSPACE_HEADER} header", field=WORKSPACE_HEADER)


class _HasTenant(Protocol):
    @property
    def tenant(self) -> TenantContext: ...


class _Filterable(Protocol):
    def where(self, *conditions: Any) -> Any: ...


Q = TypeVar("Q", bound=_Filterable)


def _context_of(source: TenantContext | _HasTenant | None) -> TenantContext:
    if source is None:
        return context.current("a workspace-scoped operation")
    if isinstance(source, TenantContext):
        return source
    return source.tenant


def workspace_id(source: TenantContext | _HasTenant | None = None, *, what: str = "this operation") -> str:
    """The id of the workspace the current request (or event) runs in.

    Args:
        source: a plugin's ``Host`` handle, a ``TenantContext``, or ``None`` for the current context.
        what: names the operation in the error message.

    Raises:
        WorkspaceRequiredError: no workspace was selected (422, naming the header).
        TenantContextMissingError: ``source`` is ``None`` and no tenant context is set.
    """
    selected = _context_of(source).workspace_id
    if selected is None:
        raise WorkspaceRequiredError(what)
    return selected


def scope_to_workspace(query: Q, column: Any, source: TenantContext | _HasTenant | None = None) -> Q:
    """``query`` restricted to rows whose ``column`` holds the current workspace's id.

    Args:
        query: anything with ``where`` (a SQLAlchemy ``select()``, ``update()`` or ``delete()``).
        column: the column holding a row's workspace id, e.g. ``tasks.c.workspace_id``.
        source: as for :func:`workspace_id`.

    Raises:
        WorkspaceRequiredError: no workspace was selected, so there is nothing to scope to.
    """
    selected = workspace_id(source)
    scoped: Q = query.where(column == selected)
    return scoped
