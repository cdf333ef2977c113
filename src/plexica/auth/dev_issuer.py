"""The built-in token issuer of the embedded mode, which runs no identity server.

One random seed is created on first use in ``data_dir/dev-issuer-key.json`` (mode 0600) and an
ES256 key per realm is derived from it with HKDF. Derivation keeps the file a single write (no
rewrite per new tenant, no race between processes) while a token of realm A can never verify
against realm B's key, even when ``iss`` is ignored.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import tempfile
import threading
import time
import typing
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from joserfc.util import int_to_base64

from plexica.auth.issuers import (
    DEFAULT_PLATFORM_REALM,
    DEFAULT_REALM_TEMPLATE,
    REALM_NAME_RE,
    RealmPerTenantStrategy,
)
from plexica_sdk.errors import SettingsError, ValidationError

if TYPE_CHECKING:
    from plexica.settings import Settings

__all__ = ["DEV_ISSUER_ALGORITHM", "KEY_FILE_NAME", "DevIssuer", "DevIssuerKeyError"]

KEY_FILE_NAME = "dev-issuer-key.json"
DEV_ISSUER_ALGORITHM = "ES256"
_FORMAT = "plexica-dev-issuer/v1"
_SEED_BYTES = 32
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_KEY_CACHE_SIZE = 1024


class DevIssuerKeyError(SettingsError):
    """The dev issuer's key file exists but cannot be used; ``path`` names it."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__([f"dev issuer key file: {problem}; delete it to create a new key"], path=str(path))


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _read_seed(path: Path) -> bytes:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DevIssuerKeyError(path, "not valid JSON") from exc
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("seed"), str):
        raise DevIssuerKeyError(path, f"not a {_FORMAT} document")
    try:
        seed = _b64url_decode(data["seed"])
    except ValueError as exc:
        raise DevIssuerKeyError(path, "seed is not base64url") from exc
    if len(seed) != _SEED_BYTES:
        raise DevIssuerKeyError(path, f"seed must be {_SEED_BYTES} bytes")
    return seed


def _create_seed(path: Path) -> bytes:
    """Write a new seed atomically; if another process won the race, use its seed instead."""
    seed = secrets.token_bytes(_SEED_BYTES)
    body = json.dumps({"format": _FORMAT, "seed": base64.urlsafe_b64encode(seed).rstrip(b"=").decode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails if the file exists: first writer wins, nobody is overwritten
        except FileExistsError:
            return _read_seed(path)
        except OSError:  # a filesystem without hard links: still atomic, last writer wins
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return seed


def _derive_key(seed: bytes, realm: str) -> ECKey:
    info = f"{_FORMAT}/realm/{realm}".encode()
    material = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=info).derive(seed)
    # 384 bits reduced modulo n-1: bias below 2**-128 (FIPS 186-5 A.2.1), never zero.
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    numbers = ec.derive_private_key(scalar, ec.SECP256R1()).private_numbers()
    key = ECKey.import_key(
        {
            "kty": "EC",
            "crv": "P-256",
            "x": int_to_base64(numbers.public_numbers.x, 32),
            "y": int_to_base64(numbers.public_numbers.y, 32),
            "d": int_to_base64(numbers.private_value, 32),
            "use": "sig",
            "alg": DEV_ISSUER_ALGORITHM,
        }
    )
    key.ensure_kid()  # RFC 7638 thumbprint: differs per realm
    return key


@typing.final
class DevIssuer:
    """Mints and publishes tokens for any realm under ``base_url``, shaped like Keycloak's.

    Args:
        key_file: where the seed lives; created (0600) on first use, reused afterwards.
        base_url: issuers are ``{base_url}/realms/{realm}``.
        audience: default ``aud`` of minted tokens.
        clock: seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        key_file: Path,
        *,
        base_url: str,
        audience: str = "plexica-api",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key_file = Path(key_file)
        self.base_url = base_url.rstrip("/")
        self.audience = audience
        self._clock = clock
        self._seed: bytes | None = None
        self._keys: OrderedDict[str, tuple[ECKey, KeySet]] = OrderedDict()  # private, public
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> DevIssuer:
        """The dev issuer of ``settings``: key under ``data_dir``, ``auth.dev_issuer_url``, ``auth.audience``."""
        return cls(
            settings.data_dir / KEY_FILE_NAME,
            base_url=settings.auth.dev_issuer_url,
            audience=settings.auth.audience,
        )

    def load(self) -> None:
        """Read or create the key file now (otherwise done on first use); blocking file IO.

        Raises:
            DevIssuerKeyError: the file exists but is corrupt.
        """
        with self._lock:
            if self._seed is not None:
                return
            try:
                try:
                    self._seed = _read_seed(self.key_file)
                except FileNotFoundError:
                    self._seed = _create_seed(self.key_file)
            except OSError as exc:
                raise DevIssuerKeyError(self.key_file, f"cannot be read or created ({exc.strerror})") from exc

    def issuer(self, realm: str) -> str:
        """The ``iss`` of ``realm``'s tokens."""
        return f"{self.base_url}/realms/{_valid_realm(realm)}"

    def _keys_of(self, realm: str) -> tuple[ECKey, KeySet]:
        realm = _valid_realm(realm)
        self.load()
        with self._lock:
            keys = self._keys.get(realm)
            if keys is None:
                assert self._seed is not None
                private = _derive_key(self._seed, realm)
                keys = self._keys[realm] = (private, KeySet([ECKey.import_key(private.as_dict(private=False))]))
                if len(self._keys) > _KEY_CACHE_SIZE:  # bounded: token issuers are attacker-chosen
                    self._keys.popitem(last=False)
            else:
                self._keys.move_to_end(realm)
            return keys

    def public_key_set(self, realm: str) -> KeySet:
        """Public signing keys of ``realm``.

        Raises:
            ValidationError: ``realm`` is not a valid realm name.
            DevIssuerKeyError: the key file is corrupt.
        """
        return self._keys_of(realm)[1]

    def key_set_for_issuer(self, issuer: str) -> KeySet | None:
        """Public keys of an issuer under ``base_url``, or None; the lookup of a ``StaticKeySource``."""
        prefix = f"{self.base_url}/realms/"
        if not issuer.startswith(prefix):
            return None
        try:
            return self.public_key_set(issuer[len(prefix) :])
        except ValidationError:
            return None

    def jwks(self, realm: str) -> dict[str, Any]:
        """The JWKS document of ``realm`` (public keys only), served at ``.../protocol/openid-connect/certs``."""
        return dict(self.public_key_set(realm).as_dict(private=False))

    def discovery(self, realm: str) -> dict[str, Any]:
        """The OIDC discovery document of ``realm``, served at ``.../.well-known/openid-configuration``."""
        issuer = self.issuer(realm)
        return {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/protocol/openid-connect/certs",
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [DEV_ISSUER_ALGORITHM],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "preferred_username", "email"],
        }

    def mint(
        self,
        *,
        realm: str,
        subject: str,
        roles: Sequence[str] = (),
        username: str | None = None,
        email: str | None = None,
        expires_in: int = 3600,
        audience: str | Sequence[str] | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A signed access token of ``realm`` for ``subject``, shaped like a Keycloak access token.

        Args:
            realm: e.g. ``tenant-acme`` or ``plexica-platform``.
            roles: ``realm_access.roles``.
            expires_in: lifetime in seconds (negative mints an already expired token).
            audience: ``aud``; defaults to the issuer's audience.
            extra_claims: added last, so they may override any claim (tests forge tokens with it).

        Raises:
            ValidationError: ``realm`` is not a valid realm name.
            DevIssuerKeyError: the key file is corrupt.
        """
        key = self._keys_of(realm)[0]
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self.issuer(realm),
            "sub": subject,
            "aud": _audience(self.audience if audience is None else audience),
            "iat": now,
            "nbf": now,
            "exp": now + expires_in,
            "jti": str(uuid.uuid4()),
            "typ": "Bearer",
            "realm_access": {"roles": list(roles)},
        }
        if username is not None:
            claims["preferred_username"] = username
        if email is not None:
            claims["email"] = email
        claims.update(extra_claims or {})
        header = {"alg": DEV_ISSUER_ALGORITHM, "kid": key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, key, algorithms=[DEV_ISSUER_ALGORITHM])

    def strategy(
        self, *, realm_template: str = DEFAULT_REALM_TEMPLATE, platform_realm: str = DEFAULT_PLATFORM_REALM
    ) -> RealmPerTenantStrategy:
        """The realm-per-tenant strategy matching this issuer's URLs."""
        return RealmPerTenantStrategy(self.base_url, realm_template=realm_template, platform_realm=platform_realm)


def _audience(audience: str | Sequence[str]) -> str | list[str]:
    return audience if isinstance(audience, str) else list(audience)


def _valid_realm(realm: str) -> str:
    if not REALM_NAME_RE.fullmatch(realm):
        raise ValidationError(f"invalid realm name {realm!r}", field="realm")
    return realm
