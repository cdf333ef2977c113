"""The host's signed context tokens: who a call to a remote plugin is for (wire protocol v1).

Every call to a remote plugin carries a short-lived JWT (``exp - iat`` ≤ 60 s) signed with an
Ed25519 key, addressed to that plugin (``aud``), with a fresh ``jti``; the plugin verifies it
against the host's JWKS (``/.well-known/plexica/jwks.json``) with
:class:`plexica_sdk.remote.ContextVerifier`. The caller's own token never leaves the host.

Keys come from ``remote.signing_keys`` (private JWKs; the first signs, the others are still
published so tokens and caches signed before a rotation keep verifying until the key is removed).
Without configured keys a development host keeps one generated key in
``data_dir/remote-signing-keys.json`` (0600); production refuses to sign without configured keys.
"""

from __future__ import annotations

import json
import os
import threading
import time
import typing
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from plexica_sdk.errors import SettingsError
from plexica_sdk.remote.claims import ALGORITHM, MAX_TTL_SECONDS, TOKEN_TYPE, b64url_encode, context_claims
from plexica_sdk.types import TenantContext

if TYPE_CHECKING:
    from plexica.settings import Settings

__all__ = ["KEY_FILE_NAME", "ContextSigner", "generate_signing_key", "load_signer", "parse_signing_key"]

KEY_FILE_NAME = "remote-signing-keys.json"


def generate_signing_key(kid: str | None = None) -> str:
    """A new Ed25519 private key as JWK JSON, for ``remote.signing_keys``.

    Its ``kid`` is ``kid`` when given (a name operators recognise in a rotation), else the key's
    RFC 7638 thumbprint.
    """
    key = OKPKey.generate_key("Ed25519", parameters={"kid": kid} if kid else None)
    key.ensure_kid()
    return json.dumps(key.as_dict(private=True))


def parse_signing_key(text: str, *, where: str = "remote.signing_keys") -> OKPKey:
    """Read one private Ed25519 JWK.

    Raises:
        SettingsError: not JSON, not an Ed25519 key, or no private part. The message never holds the key.
    """
    try:
        data = json.loads(text)
        key = OKPKey.import_key(data)
    except (ValueError, TypeError, JoseError) as exc:
        raise SettingsError([f"{where}: not an Ed25519 JWK ({type(exc).__name__})"]) from exc
    if data.get("crv") != "Ed25519" or not key.is_private:
        raise SettingsError([f"{where}: must be a private Ed25519 JWK (crv 'Ed25519' with 'd')"])
    key.ensure_kid()
    return key


@typing.final
class ContextSigner:
    """Issues context tokens for remote plugins and publishes the public keys that verify them.

    Args:
        keys: private Ed25519 keys, the current one first; or a function loading them on first
            use (so building the host does no file IO).
        issuer: the ``iss`` of every token.
        ttl_seconds: each token's lifetime, at most 60 s.
        clock: seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        keys: Sequence[OKPKey] | Callable[[], Sequence[OKPKey]],
        *,
        issuer: str = "plexica",
        ttl_seconds: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise SettingsError([f"remote.token_ttl_seconds must be between 1 and {MAX_TTL_SECONDS}: {ttl_seconds}"])
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._loader = keys if callable(keys) else None
        self._keys: list[OKPKey] | None = None
        #: The current key's encoded header segment and loaded private key: a token is then one sign.
        self._signing: tuple[bytes, Ed25519PrivateKey] | None = None
        self._lock = threading.Lock()
        if not callable(keys):
            self._install(keys)

    @staticmethod
    def _checked(keys: Sequence[OKPKey]) -> list[OKPKey]:
        if not keys:
            raise SettingsError(["remote.signing_keys: at least one key is needed to sign context tokens"])
        for key in keys:
            key.ensure_kid()
        return list(keys)

    def _install(self, keys: Sequence[OKPKey]) -> list[OKPKey]:
        checked = self._checked(keys)
        current = checked[0]
        private = current.private_key
        if not isinstance(private, Ed25519PrivateKey):
            raise SettingsError(["remote.signing_keys: the current key must be a private Ed25519 JWK"])
        header = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": current.kid}
        self._signing = (b64url_encode(json.dumps(header, separators=(",", ":")).encode()), private)
        self._keys = checked
        return checked

    def _key_list(self) -> list[OKPKey]:
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    assert self._loader is not None
                    return self._install(self._loader())
        return self._keys

    @property
    def current_kid(self) -> str:
        """The ``kid`` new tokens are signed with."""
        kid = self._key_list()[0].kid
        assert kid is not None
        return kid

    def issue(self, audience: str, tenant: TenantContext | None = None) -> str:
        """A context token for one call to plugin ``audience``, for ``tenant`` (None: a host-level call).

        Mint one per attempt: a retried call with the same token is refused as a replay.
        """
        now = int(self._clock())
        claims = context_claims(
            tenant,
            issuer=self.issuer,
            audience=audience,
            jti=uuid.uuid4().hex,
            issued_at=now,
            expires_at=now + self.ttl_seconds,
        )
        if self._signing is None:
            self._key_list()
        assert self._signing is not None
        head, private = self._signing
        signing_input = head + b"." + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
        return (signing_input + b"." + b64url_encode(private.sign(signing_input))).decode("ascii")

    def jwks(self) -> dict[str, Any]:
        """The public JWK set of every key (current and previous), as served at the well-known URL."""
        keys = [{**key.as_dict(private=False), "use": "sig", "alg": ALGORITHM} for key in self._key_list()]
        return {"keys": keys}


def _read_key_file(path: Path) -> list[OKPKey]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        texts = [json.dumps(entry) for entry in data["keys"]]
    except (ValueError, TypeError, KeyError) as exc:
        raise SettingsError([f"{path} is corrupt; delete it to create a new key"], path=str(path)) from exc
    return [parse_signing_key(text, where=str(path)) for text in texts]


def _dev_keys(path: Path) -> Callable[[], list[OKPKey]]:
    def load() -> list[OKPKey]:
        try:
            return _read_key_file(path)
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"keys": [json.loads(generate_signing_key())]})
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # first writer wins
        except FileExistsError:
            return _read_key_file(path)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        return _read_key_file(path)

    return load


def load_signer(settings: Settings) -> ContextSigner | None:
    """The host's context signer: configured keys, else a development key under ``data_dir``.

    None in production without ``remote.signing_keys``: such a host cannot call remote plugins
    (and serves no JWKS) rather than sign with a key nobody configured.

    Raises:
        SettingsError: a configured key is not a private Ed25519 JWK.
    """
    remote = settings.remote
    if remote.signing_keys:
        keys: Sequence[OKPKey] | Callable[[], list[OKPKey]] = [
            parse_signing_key(text, where=f"remote.signing_keys[{index}]")
            for index, text in enumerate(remote.signing_keys)
        ]
    elif settings.is_development:
        keys = _dev_keys(settings.data_dir / KEY_FILE_NAME)
    else:
        return None
    return ContextSigner(keys, issuer=remote.issuer, ttl_seconds=remote.token_ttl_seconds)
