"""Where token verification finds public keys: in process, or from an issuer's OIDC JWKS.

Keys are always looked up by ``(issuer, kid)``, never by ``kid`` alone, so a key published by
one realm can never verify a token claiming another realm.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
import httpx2
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key, KeySet

from plexica_sdk.errors import AuthenticationError, BackendUnavailableError

__all__ = ["KeySource", "OidcKeySource", "StaticKeySource"]

logger = logging.getLogger(__name__)

_MAX_DOCUMENT_BYTES = 256 * 1024


class KeySource(Protocol):
    """Public signing keys by issuer and key id."""

    async def get_key(self, issuer: str, kid: str) -> Key:
        """The key ``kid`` of ``issuer``.

        Raises:
            AuthenticationError: the issuer has no such key.
            BackendUnavailableError: the keys could not be fetched.
        """
        ...


def _find(keys: KeySet | Mapping[str, Key], kid: str) -> Key | None:
    if isinstance(keys, KeySet):
        return next((key for key in keys if key.kid == kid), None)
    return keys.get(kid)


@typing.final
class StaticKeySource:
    """Keys held in process, e.g. the dev issuer's: no HTTP, nothing to refresh.

    Args:
        keys: issuer → key set, or a function returning an issuer's key set (None: unknown issuer).
    """

    def __init__(self, keys: Mapping[str, KeySet] | Callable[[str], KeySet | None]) -> None:
        self._lookup: Callable[[str], KeySet | None] = keys.get if isinstance(keys, Mapping) else keys

    async def get_key(self, issuer: str, kid: str) -> Key:
        key_set = self._lookup(issuer)
        if key_set is None:
            raise AuthenticationError("unknown issuer")
        key = _find(key_set, kid)
        if key is None:
            raise AuthenticationError("unknown signing key")
        return key


@attrs.define
class _IssuerKeys:
    lock: asyncio.Lock = attrs.Factory(asyncio.Lock)
    jwks_uri: str | None = None
    keys: dict[str, Key] | None = None  # None: never fetched successfully
    loaded_at: float = float("-inf")  # last successful fetch
    attempted_at: float = float("-inf")  # last fetch, successful or not
    unknown: bool = False  # the last fetch said the issuer does not exist


def parse_jwks(document: object) -> dict[str, Key]:
    """Signing keys of a JWKS document by ``kid``; encryption keys and unusable entries are skipped.

    Skipping rather than failing follows RFC 7517 §5: one key of an unknown type (Keycloak also
    publishes an ``RSA-OAEP`` encryption key) must not take the whole set down.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, Key] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or entry.get("use", "sig") != "sig":
            continue
        public = {name: value for name, value in entry.items() if name not in ("d", "p", "q", "dp", "dq", "qi", "k")}
        try:
            keys.setdefault(entry["kid"], JWKRegistry.import_key(public))
        except (JoseError, ValueError, TypeError, KeyError):
            logger.warning("skipping an unusable key %r in a JWKS document", entry["kid"])
    return keys


@typing.final
class OidcKeySource:
    """Keys from each issuer's OIDC discovery document and JWKS, cached per issuer.

    An unknown ``kid`` triggers a refresh at most once per ``refresh_min_seconds`` per issuer,
    so a stream of garbage ``kid`` values costs the identity server one request per window;
    concurrent refreshes of one issuer share one fetch. Keys older than ``max_age_seconds`` are
    refetched so a key the issuer withdrew stops verifying; if that fetch fails the old keys stay.

    Args:
        http_client: owned by the caller (the lifespan), never closed here.
        refresh_min_seconds: least time between two fetches of one issuer's keys.
        max_age_seconds: keys are refetched when older than this.
        timeout_seconds: per HTTP request.
        max_issuers: issuers remembered at once (least recently used are forgotten).
        clock: monotonic seconds; injectable for tests.
    """

    def __init__(
        self,
        http_client: httpx2.AsyncClient,
        *,
        refresh_min_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
        timeout_seconds: float = 5.0,
        max_issuers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http_client
        self.refresh_min_seconds = refresh_min_seconds
        self.max_age_seconds = max_age_seconds
        self.timeout_seconds = timeout_seconds
        self.max_issuers = max_issuers
        self._clock = clock
        self._issuers: OrderedDict[str, _IssuerKeys] = OrderedDict()

    def _state(self, issuer: str) -> _IssuerKeys:
        state = self._issuers.get(issuer)
        if state is None:
            state = self._issuers[issuer] = _IssuerKeys()
            if len(self._issuers) > self.max_issuers:
                self._issuers.popitem(last=False)
        else:
            self._issuers.move_to_end(issuer)
        return state

    async def get_key(self, issuer: str, kid: str) -> Key:
        state = self._state(issuer)
        keys = state.keys
        if keys is not None and kid in keys and self._clock() - state.loaded_at < self.max_age_seconds:
            return keys[kid]
        async with state.lock:  # one fetch per issuer at a time; waiters then see its result
            keys = await self._refresh(issuer, state, kid)
        key = keys.get(kid)
        if key is None:
            raise AuthenticationError("unknown signing key")
        return key

    async def _refresh(self, issuer: str, state: _IssuerKeys, kid: str) -> dict[str, Key]:
        now = self._clock()
        keys = state.keys
        fresh = keys is not None and now - state.loaded_at < self.max_age_seconds
        if fresh and keys is not None and kid in keys:
            return keys  # fetched by the task we waited for
        if now - state.attempted_at < self.refresh_min_seconds:
            if state.unknown:
                raise AuthenticationError("unknown issuer")
            if keys is None:
                raise BackendUnavailableError("identity", "signing keys not loaded yet; retry shortly")
            return keys
        state.attempted_at = now
        try:
            fetched = await self._fetch(issuer, state)
            state.unknown = False
        except AuthenticationError:  # the realm is gone: forget its keys and where they were
            state.unknown, state.keys, state.jwks_uri = True, None, None
            raise
        except BackendUnavailableError:
            if keys is None:
                raise
            logger.warning("refreshing the keys of %s failed; keeping the cached keys", issuer, exc_info=True)
            return keys
        state.keys, state.loaded_at = fetched, self._clock()
        return fetched

    async def _fetch(self, issuer: str, state: _IssuerKeys) -> dict[str, Key]:
        if state.jwks_uri is None:
            discovery = await self._get_json(f"{issuer}/.well-known/openid-configuration")
            if not isinstance(discovery, dict):
                raise BackendUnavailableError("identity", f"discovery document of {issuer} is not an object")
            if discovery.get("issuer") != issuer:
                # The IdP's idea of its own URL differs from ours: its tokens can never verify.
                raise BackendUnavailableError("identity", f"discovery document of {issuer} names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise BackendUnavailableError("identity", f"discovery document of {issuer} has no usable jwks_uri")
            state.jwks_uri = jwks_uri
        try:
            keys = parse_jwks(await self._get_json(state.jwks_uri))
        except ValueError as exc:
            raise BackendUnavailableError("identity", f"JWKS of {issuer} is invalid: {exc}") from exc
        logger.info("fetched %d signing keys of %s", len(keys), issuer)
        return keys

    async def _get_json(self, url: str) -> Any:
        try:
            # httpx timeouts bound each read; this bounds a server that drips bytes slowly.
            async with asyncio.timeout(self.timeout_seconds):
                body = await self._get_body(url)
        except TimeoutError as exc:
            raise BackendUnavailableError("identity", f"{url} timed out") from exc
        except httpx2.HTTPError as exc:
            raise BackendUnavailableError("identity", f"cannot fetch {url}: {type(exc).__name__}") from exc
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BackendUnavailableError("identity", f"{url} did not answer JSON") from exc

    async def _get_body(self, url: str) -> bytes:
        async with self._http.stream("GET", url, timeout=self.timeout_seconds) as response:
            if response.status_code == 404:
                raise AuthenticationError("unknown issuer")  # e.g. Keycloak: no such realm
            if response.status_code != 200:
                raise BackendUnavailableError("identity", f"{url} answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_DOCUMENT_BYTES:
                    raise BackendUnavailableError("identity", f"{url} answered more than {_MAX_DOCUMENT_BYTES} bytes")
            return bytes(body)
