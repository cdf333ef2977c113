"""Hand-made context tokens for the verifier's tests: valid ones, and every forgery it must refuse.

Built with joserfc and the shared claims module directly, not with the host's signer, so the SDK's
tests need no host and can write headers the signer never would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from joserfc import jwt
from joserfc.jwk import OKPKey

from plexica_sdk.remote.claims import TOKEN_TYPE, context_claims
from plexica_sdk.types import Principal, TenantContext

NOW = 1_800_000_000.0

TENANT = TenantContext(
    tenant_id="t-1",
    slug="acme",
    schema="tenant_acme",
    plan="premium",
    user=Principal(id="u-1", tenant_slug="acme", roles=("member", "notes-editor")),
    workspace_id="w-9",
    trace_id="trace-1",
)


def new_key() -> OKPKey:
    key = OKPKey.generate_key("Ed25519")
    key.ensure_kid()
    return key


def jwks_of(*keys: OKPKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def claims(
    *, audience: str = "notes", jti: str = "j-1", issued_at: float = NOW, ttl: int = 30, tenant: Any = TENANT
) -> dict[str, Any]:
    return context_claims(
        tenant, issuer="plexica", audience=audience, jti=jti, issued_at=int(issued_at), expires_at=int(issued_at) + ttl
    )


def sign(key: OKPKey, payload: dict[str, Any], *, kid: str | None = None, **header: Any) -> str:
    protected = {"alg": "Ed25519", "typ": TOKEN_TYPE, "kid": kid or key.kid, **header}
    return jwt.encode(protected, payload, key, algorithms=["Ed25519"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(payload: dict[str, Any], kid: str) -> str:
    """``alg: none``: the oldest algorithm confusion there is."""
    header = {"alg": "none", "typ": TOKEN_TYPE, "kid": kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."


def hmac_with_public_key(key: OKPKey, payload: dict[str, Any]) -> str:
    """HS256 keyed with the public key's bytes: what a verifier trusting the header's ``alg`` would accept."""
    header = {"alg": "HS256", "typ": TOKEN_TYPE, "kid": key.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    secret = json.dumps(key.as_dict(private=False)).encode()
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"
