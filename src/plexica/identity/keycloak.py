"""Keycloak's admin REST API behind one small interface: the realm of each tenant.

:class:`IdentityAdmin` is all the tenant lifecycle needs (create, enable/disable, delete,
reconcile a realm); :class:`KeycloakAdmin` implements it with ``httpx2`` against
``{url}/admin/realms``. Every operation is idempotent: it reads what exists, creates what is
missing and updates only what differs, and reports what it changed.

A tenant realm (``tenant-{slug}`` by default) holds:

* the realm roles ``tenant_admin`` and ``member`` (``member`` is a default role of new users);
* the client scope ``plexica-api-audience``, a realm default scope whose audience mapper puts the
  API audience (``AuthSettings.audience``) into every access token's ``aud``;
* the public web client ``plexica-web``: authorization-code flow only, PKCE ``S256`` required;
* the first administrator, with ``tenant_admin`` (created once; its password is never reset).

The admin token comes from a password grant on ``admin_realm``'s ``admin_client_id`` and is cached
until shortly before it expires. Passwords and tokens never appear in logs or error messages.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import quote

import attrs
import httpx2

from plexica.errors import IdentityAdminError  # defined with the error table; importable from here too
from plexica.settings import KeycloakSettings
from plexica.tenancy.naming import validate_slug
from plexica_sdk.errors import BackendUnavailableError

__all__ = [
    "AUDIENCE_SCOPE",
    "RETRY_DELAYS",
    "TENANT_ROLES",
    "AdminUser",
    "IdentityAdmin",
    "IdentityAdminError",
    "KeycloakAdmin",
    "RealmReport",
]

logger = logging.getLogger(__name__)

#: Realm roles of every tenant realm, with their descriptions.
TENANT_ROLES: Mapping[str, str] = {
    "tenant_admin": "Administers the tenant: every permission of the tenant",
    "member": "A member of the tenant",
}
#: Given to every new user of a tenant realm.
DEFAULT_ROLE = "member"
#: The client scope carrying the API audience.
AUDIENCE_SCOPE = "plexica-api-audience"
_AUDIENCE_MAPPER = "api-audience"
#: Realm settings every tenant realm must have (self-registration off, brute-force detection on).
_REALM_SETTINGS: Mapping[str, Any] = {
    "registrationAllowed": False,
    "bruteForceProtected": True,
    "sslRequired": "external",
}
_ERROR_DETAIL_MAX = 200
_TOKEN_MARGIN_SECONDS = 10.0
#: Seconds to wait before each retry of an admin call that failed in transit or with a 5xx.
RETRY_DELAYS = (0.25, 1.0, 2.0)


@attrs.frozen(kw_only=True)
class AdminUser:
    """A user to create in a realm (the tenant's first administrator, or a test user).

    ``password`` is set only when the user is created, never reset on an existing user;
    ``temporary`` passwords must be changed at the first login.
    """

    username: str
    email: str | None = attrs.field(default=None, repr=False)  # personal data: not in reprs
    first_name: str = "Tenant"
    last_name: str = "Administrator"
    password: str | None = attrs.field(default=None, repr=False)
    temporary: bool = True


@attrs.frozen(kw_only=True)
class RealmReport:
    """What ensuring or reconciling one realm did."""

    realm: str
    created: bool = False
    changes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.created or bool(self.changes)


class IdentityAdmin(Protocol):
    """The realm operations of the tenant lifecycle. Every method is idempotent.

    Raises (every method):
        BackendUnavailableError: the identity server cannot be reached or failed (5xx).
        IdentityAdminError: the identity server refused the operation.
    """

    async def ensure_realm(self, slug: str, admin_user: AdminUser | None) -> RealmReport:
        """Create the tenant's realm if missing, enable it, apply the template, ensure ``admin_user``."""
        ...

    async def set_realm_enabled(self, slug: str, enabled: bool) -> bool:
        """Enable or disable the tenant's realm; True if that changed anything."""
        ...

    async def delete_realm(self, slug: str) -> bool:
        """Delete the tenant's realm; True if it existed."""
        ...

    async def reconcile_realm(self, slug: str) -> RealmReport:
        """Re-apply the template to the tenant's realm (created if missing); ``enabled`` is left alone."""
        ...

    async def realm_exists(self, slug: str) -> bool:
        """Whether the tenant's realm exists."""
        ...

    async def tenant_realms(self) -> list[str]:
        """Slugs of every tenant whose realm exists (realms named by the template), sorted."""
        ...


def _error_detail(response: httpx2.Response) -> str:
    """Keycloak's own explanation (``errorMessage`` / ``error``), short; never a request body."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    detail = body.get("errorMessage") or body.get("error_description") or body.get("error") or ""
    return str(detail)[:_ERROR_DETAIL_MAX]


def _same(expected: Any, actual: Any) -> bool:
    # Keycloak returns lists in its own order; attribute maps may hold more keys than we manage.
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(_same(value, actual.get(key)) for key, value in expected.items())
    if isinstance(expected, list | tuple):
        return isinstance(actual, list) and sorted(map(str, expected)) == sorted(map(str, actual))
    return bool(expected == actual)


def _differences(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    return [key for key, value in expected.items() if not _same(value, actual.get(key))]


def _created_id(response: httpx2.Response) -> str:
    location = response.headers.get("location", "")
    created = location.rstrip("/").rsplit("/", 1)[-1]
    if not created:
        raise IdentityAdminError("Keycloak created an object but did not say where", status=response.status_code)
    return created


@typing.final
class KeycloakAdmin:
    """:class:`IdentityAdmin` over Keycloak's admin REST API.

    Args:
        settings: where Keycloak is, the admin credentials, the realm template and web client.
        audience: the API audience every access token of a tenant realm must carry.
        http_client: used for every request and left open (the caller owns it); None: an own
            client, created on first use and closed by :meth:`aclose`.
        clock: monotonic seconds, for the admin token's expiry; injectable for tests.
        retry_delays: seconds to wait before each retry of a call that failed in transit or
            with a 5xx; ``()`` disables retries.

    Raises:
        ValueError: the settings hold no admin credentials.
    """

    def __init__(
        self,
        settings: KeycloakSettings,
        *,
        audience: str,
        http_client: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        if not settings.manages_realms:
            raise ValueError("Keycloak admin credentials (admin_username, admin_password) are required")
        self.settings = settings
        self.audience = audience
        self.base_url = settings.url.rstrip("/")
        self._own_client = http_client is None
        self._http = http_client
        self._clock = clock
        self.retry_delays = tuple(retry_delays)
        self._token_lock = asyncio.Lock()
        self._access_token: str | None = None
        self._token_expires_at = float("-inf")

    # ----------------------------------------------------------------- lifetime

    async def __aenter__(self) -> KeycloakAdmin:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the own HTTP client (a caller's client is left open); a later call opens another."""
        self._access_token = None
        if self._own_client and self._http is not None:
            client, self._http = self._http, None
            await client.aclose()

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=self.settings.admin_timeout_seconds)
        return self._http

    # ------------------------------------------------------------------- names

    def realm_name(self, slug: str) -> str:
        """The realm of tenant ``slug``, from the template."""
        return self.settings.realm_template.replace("{slug}", validate_slug(slug))

    def tenant_of_realm(self, realm: str) -> str | None:
        """The tenant slug a realm name stands for under the template, or None."""
        prefix, _, suffix = self.settings.realm_template.partition("{slug}")
        match = re.fullmatch(rf"{re.escape(prefix)}([a-z][a-z0-9-]{{1,48}}[a-z0-9]){re.escape(suffix)}", realm)
        return match[1] if match else None

    # ------------------------------------------------------------------- token

    async def _token(self) -> str:
        token = self._access_token
        if token is not None and self._clock() < self._token_expires_at:
            return token
        async with self._token_lock:
            if self._access_token is not None and self._clock() < self._token_expires_at:
                return self._access_token
            url = f"{self.base_url}/realms/{quote(self.settings.admin_realm, safe='')}/protocol/openid-connect/token"
            form = {
                "grant_type": "password",
                "client_id": self.settings.admin_client_id,
                "username": self.settings.admin_username or "",
                "password": self.settings.admin_password or "",
            }
            try:
                response = await self._client().post(url, data=form)
            except httpx2.HTTPError as exc:
                raise BackendUnavailableError("identity", f"Keycloak unreachable: {type(exc).__name__}") from exc
            if response.status_code >= 500:
                raise BackendUnavailableError("identity", f"Keycloak token endpoint answered {response.status_code}")
            if response.status_code != 200:
                raise IdentityAdminError(
                    f"Keycloak refused the admin credentials of {self.settings.admin_username!r} "
                    f"(HTTP {response.status_code}: {_error_detail(response)})",
                    status=response.status_code,
                )
            try:
                body = response.json()
                token, expires_in = body["access_token"], float(body.get("expires_in", 60))
            except (ValueError, TypeError, KeyError):
                raise IdentityAdminError("Keycloak's token endpoint answered without an access token") from None
            self._access_token = str(token)
            self._token_expires_at = self._clock() + max(expires_in - _TOKEN_MARGIN_SECONDS, expires_in / 2)
            return self._access_token

    # ----------------------------------------------------------------- requests

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx2.Response:
        """One admin API request (``path`` below ``/admin/realms``), with a fresh admin token.

        Any status below 500 is returned for the caller to judge; a stale token is renewed once;
        connection failures and 5xx answers are retried a few times (``retry_delays``). The
        escape hatch for admin calls this class does not wrap.

        Raises:
            BackendUnavailableError: Keycloak cannot be reached or kept answering 5xx.
        """
        url = f"{self.base_url}/admin/realms{path}"
        relogged = False
        delays = iter(self.retry_delays)
        # Every operation built on this is idempotent (creations accept 409), so a transient
        # failure (Keycloak restarting, a 5xx from a conflict inside it) is retried.
        while True:
            try:
                token = await self._token()
                response = await self._client().request(
                    method, url, json=json, params=params, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx2.HTTPError as exc:
                failure = BackendUnavailableError(
                    "identity", f"Keycloak unreachable on {method} {path}: {type(exc).__name__}"
                )
            except BackendUnavailableError as exc:  # from the admin login
                failure = exc
            else:
                if response.status_code == 401 and not relogged:
                    relogged, self._access_token = True, None  # revoked or expired early: log in again
                    continue
                if response.status_code < 500:
                    return response
                failure = BackendUnavailableError(
                    "identity", f"Keycloak answered {response.status_code} on {method} {path}"
                )
            delay = next(delays, None)
            if delay is None:
                raise failure
            logger.warning("Keycloak admin call failed; retrying", extra={"method": method, "path": path})
            await asyncio.sleep(delay)

    async def _expect(
        self,
        method: str,
        path: str,
        what: str,
        *,
        realm: str | None,
        ok: Sequence[int] = (200, 201, 204),
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx2.Response:
        response = await self.call(method, path, json=json, params=params)
        if response.status_code not in ok:
            raise IdentityAdminError(
                f"Keycloak refused to {what} (HTTP {response.status_code}: {_error_detail(response)})",
                realm=realm,
                status=response.status_code,
            )
        return response

    async def _get_realm(self, realm: str) -> dict[str, Any] | None:
        response = await self._expect("GET", f"/{realm}", f"read realm {realm!r}", realm=realm, ok=(200, 404))
        if response.status_code == 404:
            return None
        body: dict[str, Any] = response.json()
        return body

    # ------------------------------------------------------------------ realms

    async def realm_exists(self, slug: str) -> bool:
        return await self._get_realm(self.realm_name(slug)) is not None

    async def ensure_realm(self, slug: str, admin_user: AdminUser | None) -> RealmReport:
        realm = self.realm_name(slug)
        report = await self._apply_template(realm, enable=True)
        if admin_user is None:
            return report
        changes = await self._ensure_user(realm, admin_user, roles=("tenant_admin",))
        return attrs.evolve(report, changes=(*report.changes, *changes))

    async def reconcile_realm(self, slug: str) -> RealmReport:
        return await self._apply_template(self.realm_name(slug), enable=False)

    async def set_realm_enabled(self, slug: str, enabled: bool) -> bool:
        realm = self.realm_name(slug)
        current = await self._get_realm(realm)
        if current is None:
            raise IdentityAdminError(f"realm {realm!r} does not exist", realm=realm, status=404)
        if current.get("enabled") is enabled:
            return False
        await self._expect("PUT", f"/{realm}", f"update realm {realm!r}", realm=realm, json={"enabled": enabled})
        logger.info("realm %s %s", realm, "enabled" if enabled else "disabled")
        return True

    async def delete_realm(self, slug: str) -> bool:
        realm = self.realm_name(slug)
        response = await self._expect("DELETE", f"/{realm}", f"delete realm {realm!r}", realm=realm, ok=(204, 404))
        if response.status_code == 404:
            return False
        logger.info("realm %s deleted", realm)
        return True

    async def tenant_realms(self) -> list[str]:
        response = await self._expect("GET", "", "list realms", realm=None, params={"briefRepresentation": "true"})
        slugs = (self.tenant_of_realm(str(rep.get("realm", ""))) for rep in response.json())
        return sorted(slug for slug in slugs if slug is not None)

    async def _apply_template(self, realm: str, *, enable: bool) -> RealmReport:
        current = await self._get_realm(realm)
        created = current is None
        if current is None:
            rep = {"realm": realm, "enabled": True, **_REALM_SETTINGS}
            response = await self._expect("POST", "", f"create realm {realm!r}", realm=realm, ok=(201, 409), json=rep)
            created = response.status_code == 201  # 409: created meanwhile by a concurrent call
            current = await self._get_realm(realm)
            if current is None:
                raise IdentityAdminError(f"realm {realm!r} vanished right after its creation", realm=realm)
            if created:
                logger.info("realm %s created", realm)
        changes: list[str] = []
        expected = dict(_REALM_SETTINGS)
        if enable:
            expected["enabled"] = True
        if differing := _differences(expected, current):
            await self._expect(
                "PUT",
                f"/{realm}",
                f"update realm {realm!r}",
                realm=realm,
                json={key: expected[key] for key in differing},
            )
            changes.extend(f"realm.{key}" for key in differing)
        changes += await self._ensure_roles(realm, current)
        scope_id, scope_changes = await self._ensure_audience_scope(realm)
        changes += scope_changes
        changes += await self._ensure_web_client(realm, scope_id)
        return RealmReport(realm=realm, created=created, changes=tuple(changes))

    # ------------------------------------------------------------------- roles

    async def _role(self, realm: str, name: str) -> dict[str, Any] | None:
        response = await self._expect(
            "GET", f"/{realm}/roles/{quote(name, safe='')}", f"read role {name!r}", realm=realm, ok=(200, 404)
        )
        if response.status_code == 404:
            return None
        body: dict[str, Any] = response.json()
        return body

    async def _ensure_roles(self, realm: str, realm_rep: Mapping[str, Any]) -> list[str]:
        changes: list[str] = []
        for name, description in TENANT_ROLES.items():
            role = await self._role(realm, name)
            if role is None:
                await self._expect(
                    "POST",
                    f"/{realm}/roles",
                    f"create role {name!r}",
                    realm=realm,
                    ok=(201, 409),
                    json={"name": name, "description": description},
                )
                changes.append(f"role {name} created")
            elif role.get("description") != description:
                await self._expect(
                    "PUT",
                    f"/{realm}/roles/{name}",
                    f"update role {name!r}",
                    realm=realm,
                    json={**role, "description": description},
                )
                changes.append(f"role {name} updated")
        default_role = realm_rep.get("defaultRole")
        default_name = default_role.get("name") if isinstance(default_role, Mapping) else None
        if isinstance(default_name, str):
            path = f"/{realm}/roles/{quote(default_name, safe='')}/composites"
            response = await self._expect("GET", f"{path}/realm", "read the default roles", realm=realm)
            if DEFAULT_ROLE not in {role.get("name") for role in response.json()}:
                member = await self._role(realm, DEFAULT_ROLE)
                await self._expect("POST", path, "add a default role", realm=realm, ok=(204, 409), json=[member])
                changes.append(f"default role {DEFAULT_ROLE} added")
        return changes

    # ---------------------------------------------------------- audience scope

    def _audience_mapper(self) -> dict[str, Any]:
        return {
            "name": _AUDIENCE_MAPPER,
            "protocol": "openid-connect",
            "protocolMapper": "oidc-audience-mapper",
            "config": {
                "included.custom.audience": self.audience,
                "access.token.claim": "true",
                "introspection.token.claim": "true",
                "id.token.claim": "false",
            },
        }

    async def _audience_scope(self, realm: str) -> dict[str, Any] | None:
        response = await self._expect("GET", f"/{realm}/client-scopes", "list client scopes", realm=realm)
        return next((scope for scope in response.json() if scope.get("name") == AUDIENCE_SCOPE), None)

    async def _ensure_audience_scope(self, realm: str) -> tuple[str, list[str]]:
        changes: list[str] = []
        mapper = self._audience_mapper()
        scope = await self._audience_scope(realm)
        if scope is None:
            created = await self._expect(
                "POST",
                f"/{realm}/client-scopes",
                f"create client scope {AUDIENCE_SCOPE!r}",
                realm=realm,
                ok=(201, 409),
                json={
                    "name": AUDIENCE_SCOPE,
                    "description": "Puts the Plexica API audience into access tokens",
                    "protocol": "openid-connect",
                    "attributes": {"include.in.token.scope": "false", "display.on.consent.screen": "false"},
                    "protocolMappers": [mapper],
                },
            )
            if created.status_code == 201:
                changes.append(f"client scope {AUDIENCE_SCOPE} created")
            else:  # 409: a concurrent call created it; check it like an existing one
                scope = await self._audience_scope(realm)
        if scope is None:
            scope_id = _created_id(created)
        else:
            scope_id = str(scope["id"])
            mappers = scope.get("protocolMappers") or []
            current = next((m for m in mappers if m.get("name") == _AUDIENCE_MAPPER), None)
            models = f"/{realm}/client-scopes/{scope_id}/protocol-mappers/models"
            if current is None:
                await self._expect(
                    "POST", models, "create the audience mapper", realm=realm, ok=(201, 409), json=mapper
                )
                changes.append("audience mapper created")
            elif not _same(mapper, current):
                await self._expect(
                    "PUT",
                    f"{models}/{current['id']}",
                    "update the audience mapper",
                    realm=realm,
                    json={**mapper, "id": current["id"]},
                )
                changes.append("audience mapper updated")
        defaults = await self._expect(
            "GET", f"/{realm}/default-default-client-scopes", "list default client scopes", realm=realm
        )
        if scope_id not in {s.get("id") for s in defaults.json()}:
            await self._expect(
                "PUT",
                f"/{realm}/default-default-client-scopes/{scope_id}",
                "make the audience scope a default",
                realm=realm,
                ok=(204, 409),  # 409: made a default meanwhile by a concurrent call
            )
            changes.append(f"client scope {AUDIENCE_SCOPE} made a realm default")
        return scope_id, changes

    # -------------------------------------------------------------- web client

    def _web_client(self, realm: str) -> dict[str, Any]:
        slug = self.tenant_of_realm(realm) or ""
        return {
            "clientId": self.settings.web_client_id,
            "name": "Plexica web",
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": True,
            "standardFlowEnabled": True,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "serviceAccountsEnabled": False,
            "redirectUris": [uri.replace("{slug}", slug) for uri in self.settings.web_redirect_uris],
            "webOrigins": [origin.replace("{slug}", slug) for origin in self.settings.web_origins],
            "attributes": {"pkce.code.challenge.method": "S256", "post.logout.redirect.uris": "+"},
        }

    async def ensure_client(self, slug: str, representation: Mapping[str, Any]) -> tuple[str, list[str]]:
        """Create the client ``representation["clientId"]`` in the tenant's realm, or update what differs.

        Returns:
            The client's internal id and what changed.
        """
        return await self._ensure_client(self.realm_name(slug), representation)

    async def _ensure_client(self, realm: str, expected: Mapping[str, Any]) -> tuple[str, list[str]]:
        client_id = str(expected["clientId"])
        current = await self._find_client(realm, client_id)
        if current is None:
            created = await self._expect(
                "POST", f"/{realm}/clients", f"create client {client_id!r}", realm=realm, ok=(201, 409), json=expected
            )
            if created.status_code == 201:
                return _created_id(created), [f"client {client_id} created"]
            current = await self._find_client(realm, client_id)  # 409: created by a concurrent call
            if current is None:
                raise IdentityAdminError(f"client {client_id!r} both exists and does not", realm=realm, status=409)
        internal_id = str(current["id"])
        if differing := _differences(expected, current):
            update = {key: expected[key] for key in differing}
            await self._expect(
                "PUT", f"/{realm}/clients/{internal_id}", f"update client {client_id!r}", realm=realm, json=update
            )
            return internal_id, [f"client {client_id}.{key} updated" for key in differing]
        return internal_id, []

    async def _find_client(self, realm: str, client_id: str) -> dict[str, Any] | None:
        response = await self._expect(
            "GET", f"/{realm}/clients", f"find client {client_id!r}", realm=realm, params={"clientId": client_id}
        )
        found = response.json()
        return found[0] if found else None

    async def _ensure_web_client(self, realm: str, scope_id: str) -> list[str]:
        client_id, changes = await self._ensure_client(realm, self._web_client(realm))
        scopes = await self._expect(
            "GET", f"/{realm}/clients/{client_id}/default-client-scopes", "list the web client's scopes", realm=realm
        )
        if scope_id not in {s.get("id") for s in scopes.json()}:
            await self._expect(
                "PUT",
                f"/{realm}/clients/{client_id}/default-client-scopes/{scope_id}",
                "give the web client the audience scope",
                realm=realm,
                ok=(204, 409),
            )
            changes.append(f"client {self.settings.web_client_id} given scope {AUDIENCE_SCOPE}")
        return changes

    # ------------------------------------------------------------------- users

    async def ensure_user(self, slug: str, user: AdminUser, roles: Sequence[str] = ()) -> list[str]:
        """Create ``user`` in the tenant's realm if missing (with its password), and grant ``roles``.

        An existing user keeps its password and enabled state; missing realm roles are created.

        Returns:
            What changed.
        """
        realm = self.realm_name(slug)
        return await self._ensure_user(realm, user, roles=roles)

    async def _find_user(self, realm: str, username: str) -> str | None:
        found = await self._expect(
            "GET",
            f"/{realm}/users",
            f"find user {username!r}",
            realm=realm,
            params={"username": username, "exact": "true"},
        )
        matches = found.json()
        return str(matches[0]["id"]) if matches else None

    async def _ensure_user(self, realm: str, user: AdminUser, *, roles: Sequence[str]) -> list[str]:
        changes: list[str] = []
        user_id = await self._find_user(realm, user.username)
        if user_id is None:
            rep: dict[str, Any] = {
                "username": user.username,
                "enabled": True,
                "firstName": user.first_name,
                "lastName": user.last_name,
            }
            if user.email:
                rep["email"] = user.email
            if user.password:
                rep["credentials"] = [{"type": "password", "value": user.password, "temporary": user.temporary}]
            created = await self._expect(
                "POST", f"/{realm}/users", f"create user {user.username!r}", realm=realm, ok=(201, 409), json=rep
            )
            if created.status_code == 201:
                user_id = _created_id(created)
                changes.append(f"user {user.username} created")
            else:  # 409: created meanwhile (or its email is taken, which the lookup tells apart)
                user_id = await self._find_user(realm, user.username)
                if user_id is None:
                    raise IdentityAdminError(
                        f"Keycloak refused to create user {user.username!r} (HTTP 409: {_error_detail(created)})",
                        realm=realm,
                        status=409,
                    )
        mapped = await self._expect(
            "GET", f"/{realm}/users/{user_id}/role-mappings/realm", "read a user's roles", realm=realm
        )
        have = {role.get("name") for role in mapped.json()}
        grant = []
        for name in roles:
            if name in have:
                continue
            role = await self._role(realm, name)
            if role is None:
                await self._expect(
                    "POST", f"/{realm}/roles", f"create role {name!r}", realm=realm, ok=(201, 409), json={"name": name}
                )
                role = await self._role(realm, name)
            grant.append(role)
        if grant:
            await self._expect(
                "POST",
                f"/{realm}/users/{user_id}/role-mappings/realm",
                "grant roles",
                realm=realm,
                ok=(204, 409),
                json=grant,
            )
            changes.append(f"user {user.username} granted {', '.join(str(r['name']) for r in grant if r)}")
        return changes
