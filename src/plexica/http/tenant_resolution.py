"""How a request names its tenant: small strategies, chosen and ordered by ``http.tenant_resolvers``.

=========  ============================================================================
``token``  the tenant whose issuer signed the bearer token (or the gateway's signed tenant)
``host``   the host name's first label before ``http.tenant_host_suffix``
``header`` ``X-Tenant-ID``, when a gateway signed it (or unsigned, in development only)
``path``   a ``/t/{slug}/...`` prefix, which is then moved into ``root_path`` so routes match
=========  ============================================================================

The first strategy with an answer names the tenant, and every other answer must agree with it.
Whatever the order, a token issued for one tenant never acts in another: the token's tenant is
compared with the addressed one even when ``token`` is not in the list (see
:func:`resolve_tenant`), and a mismatch is 404, like a tenant that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from plexica.tenancy.naming import SLUG_RE
from plexica_sdk.errors import TenantNotFoundError

if TYPE_CHECKING:
    from starlette.datastructures import Headers
    from starlette.types import Scope

    from plexica.http.scope import RequestState

__all__ = [
    "DEFAULT_RESOLVERS",
    "HeaderResolver",
    "HostResolver",
    "PathPrefixResolver",
    "ResolverName",
    "TenantResolver",
    "TokenResolver",
    "build_resolvers",
    "resolve_tenant",
]

ResolverName = Literal["token", "host", "header", "path"]
DEFAULT_RESOLVERS: tuple[ResolverName, ...] = ("token", "host", "header")


class TenantResolver(Protocol):
    """One way a request may name its tenant."""

    def resolve(self, scope: Scope, headers: Headers, state: RequestState) -> str | None:
        """The slug this request names this way, or ``None``. Must not change the scope."""
        ...


class TokenResolver:
    """The tenant the caller's credential was issued for (bearer token, or gateway signature)."""

    def resolve(self, scope: Scope, headers: Headers, state: RequestState) -> str | None:
        return state.token.tenant_slug if state.token is not None else None


class HostResolver:
    """``acme.example.com`` → ``acme`` with ``suffix="example.com"``."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix.lstrip(".").lower()

    def resolve(self, scope: Scope, headers: Headers, state: RequestState) -> str | None:
        host = headers.get("host", "").split(":", 1)[0].lower()
        if self.suffix and host.endswith("." + self.suffix):
            return host[: -len(self.suffix) - 1] or None
        return None


class HeaderResolver:
    """``X-Tenant-ID`` when the gateway stage verified its signature, or unsigned if trusted (development)."""

    def __init__(self, *, trust_unsigned: bool) -> None:
        self.trust_unsigned = trust_unsigned

    def resolve(self, scope: Scope, headers: Headers, state: RequestState) -> str | None:
        if state.gateway is not None:
            return state.gateway.tenant_slug
        if self.trust_unsigned:
            return headers.get("x-tenant-id") or None
        return None  # unsigned outside development: ignored


class PathPrefixResolver:
    """``/t/acme/api/...`` → ``acme``; :meth:`enter` then serves the rest as ``/api/...``."""

    def __init__(self, prefix: str = "/t") -> None:
        self.prefix = "/" + prefix.strip("/")

    def resolve(self, scope: Scope, headers: Headers, state: RequestState) -> str | None:
        rest = _route_path(scope)
        if not rest.startswith(self.prefix + "/"):
            return None
        slug = rest[len(self.prefix) + 1 :].split("/", 1)[0]
        return slug or None

    def enter(self, scope: Scope, slug: str) -> None:
        """Move ``/t/{slug}`` from the route path into ``root_path``, the way a ``Mount`` does.

        The ASGI ``path`` keeps the full path (so logs and ``url_for`` stay right); routing reads
        the path after ``root_path``.
        """
        scope["root_path"] = scope.get("root_path", "") + f"{self.prefix}/{slug}"
        if scope["path"] == scope["root_path"]:
            scope["path"] += "/"


def build_resolvers(
    names: Iterable[ResolverName], *, host_suffix: str | None, trust_unsigned_header: bool
) -> tuple[TenantResolver, ...]:
    """The strategies ``names`` ask for, in that order (``host`` without a suffix is skipped)."""
    resolvers: list[TenantResolver] = []
    for name in names:
        if name == "token":
            resolvers.append(TokenResolver())
        elif name == "host":
            if host_suffix:
                resolvers.append(HostResolver(host_suffix))
        elif name == "header":
            resolvers.append(HeaderResolver(trust_unsigned=trust_unsigned_header))
        else:
            resolvers.append(PathPrefixResolver())
    return tuple(resolvers)


def resolve_tenant(
    resolvers: Sequence[TenantResolver], scope: Scope, headers: Headers, state: RequestState
) -> str | None:
    """The tenant slug of this request, or ``None`` when it names none.

    Enters a path prefix when one was used.

    Raises:
        TenantNotFoundError: answers disagree (a token for tenant A addressing tenant B), or a
            slug is not well-formed.
    """
    answers: list[str] = []
    entered: tuple[PathPrefixResolver, str] | None = None
    for resolver in resolvers:
        slug = resolver.resolve(scope, headers, state)
        if slug is None:
            continue
        if not SLUG_RE.match(slug):
            raise TenantNotFoundError(slug)
        answers.append(slug)
        if isinstance(resolver, PathPrefixResolver):
            entered = (resolver, slug)
    if not answers:
        return None
    chosen = answers[0]
    credential = state.token.tenant_slug if state.token is not None else None
    for slug in answers:
        if slug != chosen:
            raise TenantNotFoundError(slug if slug != credential else chosen)
    if credential is not None and credential != chosen:
        raise TenantNotFoundError(chosen)
    if entered is not None:
        entered[0].enter(scope, entered[1])
    return chosen


def _route_path(scope: Scope) -> str:
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
