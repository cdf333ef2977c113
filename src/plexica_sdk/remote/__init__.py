"""Running a plugin out of process: wire protocol v1 (docs/remote.md).

``create_app`` (the server) needs the ``plexica-sdk[remote]`` extra (Starlette, uvicorn, joserfc,
httpx2); nothing here imports the host package ``plexica``.
"""

from __future__ import annotations

from plexica_sdk.remote.claims import ALGORITHM, MAX_TTL_SECONDS, TOKEN_TYPE, RemoteContext
from plexica_sdk.remote.server import CONTEXT_SCOPE_KEY, create_app
from plexica_sdk.remote.verify import ContextVerifier, ReplayGuard
from plexica_sdk.remote.wire import (
    CONTEXT_HEADER,
    HEALTH_PATH,
    JWKS_PATH,
    MANIFEST_PATH,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    RPC_HOOKS,
    RPC_PATH,
    decode_problem,
    decode_result,
    encode_problem,
)

__all__ = [
    "ALGORITHM",
    "CONTEXT_HEADER",
    "CONTEXT_SCOPE_KEY",
    "HEALTH_PATH",
    "JWKS_PATH",
    "MANIFEST_PATH",
    "MAX_TTL_SECONDS",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "RPC_HOOKS",
    "RPC_PATH",
    "TOKEN_TYPE",
    "ContextVerifier",
    "RemoteContext",
    "ReplayGuard",
    "create_app",
    "decode_problem",
    "decode_result",
    "encode_problem",
]
