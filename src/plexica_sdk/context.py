"""The tenant context: who and where the current request or event runs for.

It lives in a :class:`contextvars.ContextVar` so it follows ``await`` and tasks without being
passed through every call. Edges (middleware, the event consumer, CLI commands) set it; the
database session factory reads it. :func:`current` raises rather than returning ``None``, so
tenant-scoped code can never run for "no tenant" by accident.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from plexica_sdk.errors import TenantContextMissingError
from plexica_sdk.types import TenantContext

__all__ = ["current", "get", "tenant_context", "use"]

tenant_context: ContextVar[TenantContext | None] = ContextVar("plexica_tenant_context", default=None)


def current(what: str = "this operation") -> TenantContext:
    """Return the current tenant context.

    Raises:
        TenantContextMissingError: no tenant context is set.
    """
    ctx = tenant_context.get()
    if ctx is None:
        raise TenantContextMissingError(what)
    return ctx


def get() -> TenantContext | None:
    """Return the current tenant context, or ``None`` outside any tenant."""
    return tenant_context.get()


@contextlib.contextmanager
def use(ctx: TenantContext) -> Iterator[TenantContext]:
    """Run a block inside ``ctx`` and always restore the previous context."""
    token = tenant_context.set(ctx)
    try:
        yield ctx
    finally:
        tenant_context.reset(token)
