"""``/.well-known/plexica/jwks.json``: the public keys that verify the host's context tokens.

Remote plugins fetch it (``plexica_sdk.remote.ContextVerifier``) to check every call the host makes
to them. Public by design: it holds public keys only, and is exempt from gateway signatures.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from plexica.remote.context_tokens import ContextSigner
from plexica_sdk.remote.wire import JWKS_PATH

__all__ = ["jwks_routes"]


def jwks_routes(signer: ContextSigner | None) -> list[Route]:
    """The JWKS route of ``signer``; none without a signer (production without ``remote.signing_keys``)."""
    if signer is None:
        return []

    async def jwks(request: Request) -> JSONResponse:
        """Current and previous public keys; short caching, since verifiers refetch on an unknown ``kid``."""
        return JSONResponse(signer.jwks(), headers={"Cache-Control": "public, max-age=60"})

    return [Route(JWKS_PATH, jwks, methods=["GET"], include_in_schema=False)]
