"""The claims of a signed context token (wire protocol v1), shared by the host that signs and the SDK that verifies.

One module builds and reads them, so the two sides cannot drift: the host turns a
:class:`~plexica_sdk.types.TenantContext` into claims with :func:`context_claims`, the plugin
turns verified claims back into a :class:`RemoteContext` with :func:`remote_context_from_claims`.
Only identifiers travel: no e-mail address, no name, no upstream token.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final, get_args

import attrs

from plexica_sdk.errors import AuthenticationError, TenantContextMissingError
from plexica_sdk.types import Principal, TenantContext, TenantStatus

__all__ = [
    "ALGORITHM",
    "MAX_TTL_SECONDS",
    "TOKEN_TYPE",
    "RemoteContext",
    "b64url_decode",
    "b64url_encode",
    "context_claims",
    "remote_context_from_claims",
]


def b64url_encode(data: bytes) -> bytes:
    """Unpadded base64url (RFC 7515 §2), the encoding of each segment of a context token."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(segment: str) -> bytes:
    """Strict unpadded base64url: padding or any other character is malformed.

    Raises:
        ValueError: not unpadded base64url (``binascii.Error`` is a ``ValueError``).
    """
    if "=" in segment:
        raise ValueError("padded base64url")
    return base64.b64decode(segment + "=" * (-len(segment) % 4), altchars=b"-_", validate=True)


#: Ed25519 (RFC 9864's fully specified name for EdDSA over Ed25519); the only algorithm either side accepts.
ALGORITHM: Final = "Ed25519"
#: The JOSE ``typ`` of a context token, so no other JWT signed by a host key can pass for one.
TOKEN_TYPE: Final = "plexica-context+jwt"  # noqa: S105 - a media type, not a secret
#: The longest lifetime (``exp - iat``) a verifier accepts.
MAX_TTL_SECONDS: Final = 60


@attrs.frozen(kw_only=True)
class RemoteContext:
    """Who a host call to a remote plugin is for, as the host signed it.

    ``tenant`` is None for host-level calls (``plexica_manifest``, ``plexica_permissions`` at start-up).
    """

    issuer: str
    audience: str
    jti: str
    issued_at: int
    expires_at: int
    tenant: TenantContext | None = None
    #: The verified token itself: a remote plugin's host handle authenticates its callbacks with it.
    token: str = attrs.field(default="", repr=False, eq=False)

    def tenant_context(self) -> TenantContext:
        """The tenant context to run the call in.

        Raises:
            TenantContextMissingError: the host signed this call for no tenant.
        """
        if self.tenant is None:
            raise TenantContextMissingError("this remote call")
        return self.tenant


def context_claims(
    tenant: TenantContext | None, *, issuer: str, audience: str, jti: str, issued_at: int, expires_at: int
) -> dict[str, Any]:
    """The JWT claims of a context token for ``audience`` (a plugin name)."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "jti": jti,
        "iat": issued_at,
        "exp": expires_at,
        "ver": 1,
    }
    if tenant is not None:
        claims["tenant"] = {
            "id": tenant.tenant_id,
            "slug": tenant.slug,
            "schema": tenant.schema,
            "plan": tenant.plan,
            "status": tenant.status,
        }
        if tenant.workspace_id is not None:
            claims["workspace"] = tenant.workspace_id
        if tenant.trace_id is not None:
            claims["trace"] = tenant.trace_id
        user = tenant.user
        if user is not None:
            claims["sub"] = user.id
            claims["roles"] = list(user.roles)
            if user.is_super_admin:
                claims["super_admin"] = True
    return claims


def _text(claims: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise AuthenticationError(f"context token claim {name!r} is missing or not a string")
    return value


def _integer(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise AuthenticationError(f"context token claim {name!r} is missing or not an integer")
    return value


def remote_context_from_claims(claims: Mapping[str, Any]) -> RemoteContext:
    """Read verified claims; a claim of the wrong shape is an :class:`AuthenticationError`, never a crash."""
    if claims.get("ver") != 1:
        raise AuthenticationError("context token is not wire protocol v1")
    tenant: TenantContext | None = None
    raw_tenant = claims.get("tenant")
    if raw_tenant is not None:
        if not isinstance(raw_tenant, Mapping):
            raise AuthenticationError("context token claim 'tenant' is not an object")
        slug = _text(raw_tenant, "slug")
        assert slug is not None
        user: Principal | None = None
        subject = _text(claims, "sub", required=False)
        if subject is not None:
            roles = claims.get("roles", [])
            if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
                raise AuthenticationError("context token claim 'roles' is not a list of strings")
            user = Principal(
                id=subject, tenant_slug=slug, roles=tuple(roles), is_super_admin=claims.get("super_admin") is True
            )
        status = raw_tenant.get("status", "active")
        if status not in get_args(TenantStatus):
            raise AuthenticationError("context token claim 'tenant.status' is unknown")
        tenant = TenantContext(
            tenant_id=_text(raw_tenant, "id") or "",
            slug=slug,
            schema=_text(raw_tenant, "schema") or "",
            plan=_text(raw_tenant, "plan") or "standard",
            status=status,
            user=user,
            workspace_id=_text(claims, "workspace", required=False),
            trace_id=_text(claims, "trace", required=False),
        )
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) == 1:
        audience = audience[0]
    if not isinstance(audience, str):
        raise AuthenticationError("context token claim 'aud' must name one plugin")
    return RemoteContext(
        issuer=_text(claims, "iss") or "",
        audience=audience,
        jti=_text(claims, "jti") or "",
        issued_at=_integer(claims, "iat"),
        expires_at=_integer(claims, "exp"),
        tenant=tenant,
    )
