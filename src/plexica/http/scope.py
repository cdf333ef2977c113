"""Typed access to what the request path learned, kept in one place in the ASGI scope.

The middleware stages fill one :class:`RequestState` (trace id, verified token, principal,
tenant) instead of scattering ``"plexica.*"`` keys through the scope, and every reader goes
through :func:`request_state`, which fails with a message that says what is missing, the way
Starlette's ``request.state`` accessors do.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from plexica.auth.gateway import GatewayAssertion
    from plexica.auth.tokens import VerifiedToken
    from plexica_sdk.types import Principal, TenantInfo

__all__ = ["SCOPE_KEY", "RequestState", "attach_state", "request_state", "trace_id_of"]

#: The one scope key the host writes (besides the SDK's ``plexica.host`` handle for plugin routes).
SCOPE_KEY = "plexica"


@attrs.define(slots=True)
class RequestState:
    """What the middleware stages have established about one request so far.

    Attributes:
        trace_id: the correlation id (``X-Trace-ID``), set by the outermost stage.
        token: the verified bearer token, if one was sent.
        principal: who is calling; the user stage may replace it with the admitted profile.
        tenant: the resolved tenant, if the request addresses one.
        gateway: what a verified gateway signature vouches for, if one was sent.
    """

    trace_id: str
    token: VerifiedToken | None = None
    principal: Principal | None = None
    tenant: TenantInfo | None = None
    gateway: GatewayAssertion | None = None


def attach_state(scope: MutableMapping[str, Any], trace_id: str) -> RequestState:
    """Start the request's state (the trace-id stage does this, first)."""
    state = RequestState(trace_id)
    scope[SCOPE_KEY] = state
    return state


def request_state(scope: MutableMapping[str, Any]) -> RequestState:
    """The request's state.

    Raises:
        RuntimeError: the request did not pass through the host's middleware (a route of the host
            mounted without ``create_app``'s stack, or a test calling a handler directly).
    """
    state = scope.get(SCOPE_KEY)
    if not isinstance(state, RequestState):
        raise RuntimeError(
            "no Plexica request state in the ASGI scope: serve this route through plexica.create_app(), "
            "whose middleware sets it"
        )
    return state


def trace_id_of(scope: MutableMapping[str, Any]) -> str | None:
    """The trace id, or ``None`` on paths that may run before the trace stage (error pages)."""
    state = scope.get(SCOPE_KEY)
    return state.trace_id if isinstance(state, RequestState) else None
