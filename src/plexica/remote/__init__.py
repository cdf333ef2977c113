"""The host side of remote plugins (docs/remote.md): signed context tokens, so far."""

from __future__ import annotations

from plexica.remote.context_tokens import ContextSigner, generate_signing_key, load_signer, parse_signing_key

__all__ = ["ContextSigner", "generate_signing_key", "load_signer", "parse_signing_key"]
