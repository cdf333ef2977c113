"""Remote plugins' service credentials: how a plugin calls back into the host outside a host call.

A background job of a remote plugin has no context token to show, so each remote plugin may have
one service credential, ``pxc1.<key id>.<secret>``, made by ``plexica remote credentials create``.
Only an scrypt hash of the secret is kept (``core.remote_credentials``, migration ``core_0006``);
the secret is printed once and never stored. ``rotate`` replaces it at once (the old secret stops
working on the next call), ``revoke`` removes it.

Verifying costs one indexed ``core`` read per call, so a rotation or revocation takes effect on
every host process at once; the scrypt check itself runs once per (credential, stored hash) and
process, then a SHA-256 of the secret is compared (a secret of 256 random bits needs no slow hash
against guessing, the slow hash protects the stored form).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from typing import TYPE_CHECKING, Final, final

import attrs
import sqlalchemy as sa

from plexica.db.metadata import core_metadata
from plexica_sdk.errors import AuthenticationError, ConflictError, NotFoundError

if TYPE_CHECKING:
    from plexica.db.engine import Database

__all__ = ["CREDENTIAL_PREFIX", "CredentialInfo", "IssuedCredential", "ServiceCredentials", "remote_credentials"]

#: The first part of every credential: the format's version.
CREDENTIAL_PREFIX: Final = "pxc1"
_FORMAT: Final = re.compile(r"^pxc1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})\Z")
# scrypt cost: 16 MiB and some 50 ms per hash; kept in each stored hash, so it can be raised later.
_N, _R, _P = 2**14, 8, 1
_VERIFIED_MAX = 1024

remote_credentials = sa.Table(
    "remote_credentials",
    core_metadata,
    sa.Column("plugin", sa.String(63), primary_key=True),
    sa.Column("key_id", sa.String(32), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
)


@attrs.frozen(kw_only=True)
class CredentialInfo:
    """A plugin's credential as ``list`` shows it: never the secret."""

    plugin: str
    key_id: str
    created_at: dt.datetime
    rotated_at: dt.datetime | None = None


@attrs.frozen(kw_only=True)
class IssuedCredential:
    """A credential just made: ``value`` is shown once and kept nowhere by the host."""

    plugin: str
    key_id: str
    secret: str = attrs.field(repr=False)

    @property
    def value(self) -> str:
        """What the plugin sends in ``Plexica-Credential`` (``PLEXICA_PLUGIN_CREDENTIAL``)."""
        return f"{CREDENTIAL_PREFIX}.{self.key_id}.{self.secret}"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str) -> str:
    """``scrypt$N$r$p$salt$hash`` of ``secret``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` hashes to ``stored`` (constant time; a malformed ``stored`` never matches)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        found = hashlib.scrypt(
            secret.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected), maxmem=2**26
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, expected)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@final
class ServiceCredentials:
    """Creates, rotates, revokes, lists and verifies the remote plugins' service credentials."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # (key id, stored hash) → SHA-256 of the secret that matched it: a rotation changes the hash.
        self._verified: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    async def create(self, plugin: str) -> IssuedCredential:
        """A first credential for ``plugin``.

        Raises:
            ConflictError: the plugin has one already (rotate or revoke it).
        """
        issued = self._new(plugin)
        async with self._db.core_connection() as conn:
            found = await conn.scalar(
                sa.select(remote_credentials.c.key_id).where(remote_credentials.c.plugin == plugin)
            )
            if found is not None:
                raise ConflictError(
                    f"plugin {plugin!r} has a credential already: rotate or revoke it", resource="credential"
                )
            await conn.execute(
                remote_credentials.insert().values(
                    plugin=plugin,
                    key_id=issued.key_id,
                    secret_hash=await asyncio.to_thread(hash_secret, issued.secret),
                    created_at=_utcnow(),
                )
            )
        return issued

    async def rotate(self, plugin: str) -> IssuedCredential:
        """Replace ``plugin``'s credential; the old one stops working at once.

        Raises:
            NotFoundError: the plugin has none.
        """
        issued = self._new(plugin)
        hashed = await asyncio.to_thread(hash_secret, issued.secret)
        async with self._db.core_connection() as conn:
            result = await conn.execute(
                remote_credentials.update()
                .where(remote_credentials.c.plugin == plugin)
                .values(key_id=issued.key_id, secret_hash=hashed, rotated_at=_utcnow())
            )
        if result.rowcount != 1:
            raise NotFoundError(f"plugin {plugin!r} has no credential", resource="credential")
        return issued

    async def revoke(self, plugin: str) -> None:
        """Remove ``plugin``'s credential.

        Raises:
            NotFoundError: the plugin has none.
        """
        async with self._db.core_connection() as conn:
            result = await conn.execute(remote_credentials.delete().where(remote_credentials.c.plugin == plugin))
        if result.rowcount != 1:
            raise NotFoundError(f"plugin {plugin!r} has no credential", resource="credential")

    async def list(self) -> list[CredentialInfo]:
        """Every plugin's credential, by plugin name."""
        c = remote_credentials.c
        async with self._db.core_connection() as conn:
            rows = (
                await conn.execute(sa.select(c.plugin, c.key_id, c.created_at, c.rotated_at).order_by(c.plugin))
            ).all()
        return [
            CredentialInfo(plugin=row.plugin, key_id=row.key_id, created_at=row.created_at, rotated_at=row.rotated_at)
            for row in rows
        ]

    async def verify(self, credential: str, plugin: str) -> None:
        """Accept ``credential`` only as ``plugin``'s current one.

        Raises:
            AuthenticationError: malformed, unknown, revoked, rotated away, or another plugin's.
        """
        match = _FORMAT.match(credential)
        if match is None:
            raise AuthenticationError("the service credential is malformed")
        key_id, secret = match.groups()
        c = remote_credentials.c
        async with self._db.core_connection() as conn:
            row = (await conn.execute(sa.select(c.plugin, c.secret_hash).where(c.key_id == key_id))).first()
        if row is None or row.plugin != plugin:
            raise AuthenticationError("the service credential is unknown or revoked")
        cache_key = (key_id, row.secret_hash)
        fingerprint = hashlib.sha256(secret.encode()).digest()
        remembered = self._verified.get(cache_key)
        if remembered is not None:
            if hmac.compare_digest(remembered, fingerprint):
                return
            raise AuthenticationError("the service credential is unknown or revoked")
        if not await asyncio.to_thread(check_secret, secret, row.secret_hash):
            raise AuthenticationError("the service credential is unknown or revoked")
        self._verified[cache_key] = fingerprint
        while len(self._verified) > _VERIFIED_MAX:
            self._verified.popitem(last=False)

    @staticmethod
    def _new(plugin: str) -> IssuedCredential:
        return IssuedCredential(plugin=plugin, key_id=secrets.token_hex(8), secret=secrets.token_urlsafe(32))
