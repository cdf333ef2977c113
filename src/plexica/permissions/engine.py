"""The permission engine: resolves subjects through the caches and decides, per tenant.

Three levels answer a check:

* **L1, the request.** Each :class:`~plexica_sdk.types.TenantContext` object (one per request or
  event) gets a scope holding the resolved :class:`~plexica.permissions.decision.Subject`; a
  repeated check in the request is a dict lookup. A scope older than ``scope_ttl`` re-validates.
* **L1, the process** (with a :class:`~plexica.cache.layered.LayeredCache`). Each user's model
  and grants, as last read from L2, for the layered cache's bound; an invalidation drops them in
  every process by broadcast, so a warm request reads no cache at all.
* **L2, the cache backend.** Each user's grants under ``tenant:{slug}:permissions:{user}``,
  checked against version counters (:mod:`plexica.permissions.cache`), all read in one ``MGET``.
* **The compiled model.** Each tenant's roles and policies, compiled once per tenant version and
  kept in an LRU of ``max_tenants`` tenants (only tenants in use are loaded), reloaded at the
  latest after ``model_ttl``.

Changes made through this process invalidate its own scopes at once; other processes see them
through the broadcast (within the layered cache's bound if a message is lost), or, without a
process L1, at their next request through the counters.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping
from contextvars import ContextVar
from typing import Any, final

import attrs

from plexica.cache.layered import LayeredCache
from plexica.permissions.abac import CompiledPolicy, compile_policy
from plexica.permissions.cache import PermissionCache
from plexica.permissions.contributions import PluginContribution, contributions_of
from plexica.permissions.decision import Explanation, Grants, Subject, TenantModel
from plexica.permissions.directory import SqlSubjectDirectory, SubjectDirectory
from plexica.permissions.rbac import SYSTEM_ROLES
from plexica.permissions.repository import ModelRows, PermissionRepository
from plexica_sdk.errors import ConflictError, PermissionDeniedError, ValidationError
from plexica_sdk.protocols import Cache
from plexica_sdk.types import Decision, TenantContext

__all__ = ["PermissionEngine", "client_ip"]

logger = logging.getLogger(__name__)
decision_log = logging.getLogger("plexica.permissions.decisions")

#: The client address of the current request, for ``environment.client_ip`` (set by the edge).
client_ip: ContextVar[str | None] = ContextVar("plexica_client_ip", default=None)

InstalledPlugins = Callable[[TenantContext], Awaitable[Collection[str]]]
ResourceAttributes = Callable[[TenantContext, str, str], Awaitable[Mapping[str, Any] | None]]


class _Scope:
    __slots__ = ("__weakref__", "ref", "subjects", "tenant")

    def __init__(self, ref: weakref.ref[TenantContext], tenant: str) -> None:
        self.ref = ref
        self.tenant = tenant
        self.subjects: dict[str, tuple[Subject, float]] = {}


@attrs.define
class _Loaded:
    model: TenantModel
    expires: float


@final
class PermissionEngine:
    """Authorizes, explains and filters for every tenant of the host.

    Args:
        db: the host database (tenant sessions).
        cache: the shared cache (L2).
        plugins: the plugin manager (contributions are read once, here).
        installed: names of the plugins enabled for a tenant; when given, each model load
            reconciles the tenant's registered contributions with it.
        directory: team and workspace memberships (default: SQL over the identity tables).
        resource_attributes: looks up a resource's attributes by type and id for ABAC.
        max_tenants: how many tenant models stay loaded.
        local: the process L1 of subjects' state (the host's layered cache); ``None``: none.
        scope_ttl: seconds a request scope's subject is trusted before re-validation.
        model_ttl: seconds a compiled model is trusted before a reload, whatever the counters say.
        clock: monotonic seconds; now: wall-clock time for ``environment.*``.
    """

    #: Remembered policy-free decisions (see ``_remembered``); the memory is emptied when full.
    _MAX_DECISIONS = 10_000

    def __init__(
        self,
        *,
        db: Any,
        cache: Cache,
        plugins: Any,
        installed: InstalledPlugins | None = None,
        directory: SubjectDirectory | None = None,
        resource_attributes: ResourceAttributes | None = None,
        max_tenants: int = 256,
        local: LayeredCache | None = None,
        scope_ttl: float = 1.0,
        model_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.db = db
        self.cache = PermissionCache(cache)
        self.repo = PermissionRepository()
        self.directory: SubjectDirectory = directory or SqlSubjectDirectory()
        self._subject_query = self.repo.subject_query(self.directory)
        self.contributions = contributions_of(plugins)
        self._installed = installed
        self._resource_attributes = resource_attributes
        self.max_tenants = max_tenants
        self._local = local
        self.scope_ttl = scope_ttl
        self.model_ttl = model_ttl
        self._clock = clock
        self._now = now
        self._builtin_keys = {p.key: c.name for c in self.contributions.values() if c.builtin for p in c.permissions}
        self._builtin_roles: dict[str, set[str]] = {role: set() for role in SYSTEM_ROLES}
        self._builtin_policies: list[CompiledPolicy] = []
        for contribution in self.contributions.values():
            if contribution.builtin:
                for role in contribution.roles:
                    self._builtin_roles.setdefault(role.name, set()).update(role.permissions)
                self._builtin_policies += [
                    compile_policy(
                        attrs.evolve(p, id=f"{contribution.name}:{p.id}"), source=f"plugin:{contribution.name}"
                    )
                    for p in contribution.policies
                ]
        self._models: OrderedDict[str, _Loaded] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._scopes: dict[int, _Scope] = {}
        # (tenant, user, token roles, workspace, permission) -> (the L1 state it was decided on, decision)
        self._decisions: dict[tuple[str, str, tuple[str, ...], str | None, str], tuple[object, Decision]] = {}

    # ---------------------------------------------------------------- checks

    async def authorize(
        self, ctx: TenantContext, permission: str, resource: Mapping[str, Any] | None = None
    ) -> Decision:
        """Decide for the context's user; denials go to the decision log with the permission."""
        user = ctx.user
        if user is None:
            return Decision(allowed=False, reason="no authenticated user")
        # The hot path, inlined: this request's subject, from its scope (L1).
        scope = self._scopes.get(id(ctx))
        hit = scope.subjects.get(user.id) if scope is not None and scope.ref() is ctx else None
        if hit is not None and self._clock() - hit[1] < self.scope_ttl:
            subject = hit[0]
        else:
            if resource is None and self._local is not None and user.tenant_slug == ctx.slug:
                remembered = await self._remembered(ctx, user.id, user.roles, permission)
                if remembered is not None:
                    if not remembered.allowed:
                        self._log(ctx, user.id, permission, remembered)
                    return remembered
            subject = await self.subject(ctx)
        if resource is not None and self._resource_attributes is not None:
            try:
                resource = await self._expand(ctx, subject, permission, resource)
            except Exception:
                logger.warning("resource attributes failed", exc_info=True, extra={"tenant": ctx.slug})
                decision = Decision(allowed=False, reason="the resource's attributes could not be read")
                self._log(ctx, subject.user_id, permission, decision)
                return decision
        decision = subject.authorize(permission, resource)
        if not decision.allowed:  # only denials are logged: allowed checks are the hot path
            self._log(ctx, subject.user_id, permission, decision)
        return decision

    async def require(self, ctx: TenantContext, permission: str, resource: Mapping[str, Any] | None = None) -> None:
        """Raise :class:`PermissionDeniedError` unless :meth:`authorize` allows."""
        decision = await self.authorize(ctx, permission, resource)
        if not decision.allowed:
            raise PermissionDeniedError(permission, decision.reason)

    async def explain(
        self,
        ctx: TenantContext,
        permission: str,
        resource: Mapping[str, Any] | None = None,
        *,
        user_id: str | None = None,
    ) -> Explanation:
        """The decision for the context's user (or ``user_id``) with its working."""
        subject = await self.subject(ctx, user_id=user_id)
        return subject.explain(permission, await self._expand(ctx, subject, permission, resource))

    async def subject(self, ctx: TenantContext, *, user_id: str | None = None) -> Subject:
        """The resolved subject of the context's user, or of ``user_id`` in the context's tenant.

        Another user's subject lacks the roles of their token, which only their requests carry.

        Raises:
            ValidationError: no user is given and the context has none.
        """
        own = ctx.user.id if ctx.user is not None else None
        user = user_id if user_id is not None else own
        if user is None:
            raise ValidationError("a user is required", field="user_id")
        scope = self._scope(ctx)
        now = self._clock()
        hit = scope.subjects.get(user)
        if hit is not None and now - hit[1] < self.scope_ttl:
            return hit[0]
        subject = await self._resolve(ctx, user, own=user == own)
        scope.subjects[user] = (subject, now)
        return subject

    def _scope(self, ctx: TenantContext) -> _Scope:
        key = id(ctx)
        scope = self._scopes.get(key)
        if scope is not None and scope.ref() is ctx:
            return scope
        scopes = self._scopes

        def forget(_: object, key: int = key) -> None:
            if (found := scopes.get(key)) is not None and found.ref() is None:
                del scopes[key]

        scope = self._scopes[key] = _Scope(weakref.ref(ctx, forget), ctx.slug)
        return scope

    async def _resolve(self, ctx: TenantContext, user: str, *, own: bool) -> Subject:
        model, grants = await (self._load_state(ctx, user) if self._local is None else self._local_state(ctx, user))
        principal = ctx.user if own else None
        if principal is not None and principal.tenant_slug != ctx.slug:
            # Not issued for this tenant (a super-admin visiting): its roles count nowhere here, and
            # the tenant's user of the same id lends it none of their grants.
            grants = Grants(user_id=user)
            principal = attrs.evolve(principal, roles=())
        return Subject(
            model,
            user,
            token_roles=principal.roles if principal is not None else (),
            grants=grants,
            workspace_id=ctx.workspace_id,
            attributes={"username": principal.username} if principal is not None and principal.username else None,
            tenant={"id": ctx.tenant_id, "slug": ctx.slug, "plan": ctx.plan},
            environment=self._environment(),
        )

    async def _load_state(self, ctx: TenantContext, user: str) -> tuple[TenantModel, Grants]:
        # Both counters are read (with the entry, in one round trip) before the database is; see
        # plexica.permissions.cache for why that makes a late refill harmless.
        version, user_version, raw = await self.cache.read_state(ctx.slug, user)
        model = await self._model_at(ctx, version)
        assert model.version is not None
        stamp = (model.version, user_version)
        grants = self.cache.current(raw, stamp)
        if grants is None:
            grants = await self._load_grants(ctx, user)
            await self.cache.put(ctx.slug, user, stamp, grants)
        return model, grants

    async def _remembered(
        self, ctx: TenantContext, user: str, roles: tuple[str, ...], permission: str
    ) -> Decision | None:
        """A check no policy applies to, decided once per L1 state of the user (``None``: decide in full).

        Such a decision depends only on the model, the user's grants, the token's roles and the
        workspace, never on the request's environment or resource, so it holds for as long as the
        user's L1 state is the same object: an invalidation or a reload replaces that object.
        This spares the first check of every request building a subject.
        """
        state = await self._local_entry(ctx, user)
        model = state[1]
        deny, allow = model.applicable(permission)
        if deny or allow:  # ABAC reads the environment (time, client address): decided per request
            return None
        key = (ctx.slug, user, roles, ctx.workspace_id, permission)
        found = self._decisions.get(key)
        if found is not None and found[0] is state:
            return found[1]
        subject = Subject(model, user, token_roles=roles, grants=state[2], workspace_id=ctx.workspace_id)
        decision = subject.authorize(permission)
        if len(self._decisions) >= self._MAX_DECISIONS:
            self._decisions.clear()
        self._decisions[key] = (state, decision)
        return decision

    async def _local_state(self, ctx: TenantContext, user: str) -> tuple[TenantModel, Grants]:
        state = await self._local_entry(ctx, user)
        return state[1], state[2]

    async def _local_entry(self, ctx: TenantContext, user: str) -> tuple[object, TenantModel, Grants]:
        """The user's state from the process L1, tagged with the tenant's L1 epoch.

        The epoch is a token that a tenant-wide invalidation replaces, so one broadcast key drops
        every user's state of the tenant; each user's own key drops theirs.
        """
        assert self._local is not None
        local = self._local
        epoch = await local.get_local(_tenant_local_key(ctx.slug), _new_epoch)
        key = _user_local_key(ctx.slug, user)

        async def load() -> tuple[object, TenantModel, Grants]:
            return (epoch, *await self._load_state(ctx, user))

        state = await local.get_local(key, load)
        if state[0] is not epoch:  # loaded before the tenant's last invalidation
            local.forget(key)
            state = await local.get_local(key, load)
        return state

    async def _load_grants(self, ctx: TenantContext, user: str) -> Grants:
        async with self.db.tenant_session(ctx.schema) as session:
            found_teams, memberships, rows = await self.repo.subject_rows(session, self._subject_query, user)
        return Grants.build(user, teams=found_teams, grants=rows, memberships=memberships)

    def _environment(self) -> dict[str, Any]:
        now = self._now().astimezone(dt.UTC)
        found: dict[str, Any] = {"time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "hour": now.hour, "weekday": now.weekday()}
        address = client_ip.get()
        if address:
            found["client_ip"] = address
        return found

    async def _expand(
        self, ctx: TenantContext, subject: Subject, permission: str, resource: Mapping[str, Any] | None
    ) -> Mapping[str, Any] | None:
        """Fill a ``{"type", "id"}`` resource from the plugins, when a policy reads the resource."""
        if resource is None or self._resource_attributes is None:
            return resource
        kind, ident = resource.get("type"), resource.get("id")
        if not (isinstance(kind, str) and isinstance(ident, str)):
            return resource
        deny, allow = subject.model.applicable(permission)
        if not any(p.uses_resource for p in (*deny, *allow)):
            return resource
        found = await self._resource_attributes(ctx, kind, ident)
        return {**found, **resource} if found else resource

    @staticmethod
    def _log(ctx: TenantContext, user: str, permission: str, decision: Decision) -> None:
        if not decision_log.isEnabledFor(logging.INFO):
            return
        extra = {
            "tenant": ctx.slug,
            "user": user,
            "permission": permission,
            "decided_by": decision.decided_by,
            "trace_id": ctx.trace_id,
        }
        decision_log.info("permission denied: %s", decision.reason, extra=extra)

    # ----------------------------------------------------------------- models

    @property
    def loaded_tenants(self) -> tuple[str, ...]:
        """Ids of the tenants whose models are loaded, least recently used first."""
        return tuple(self._models)

    async def model(self, ctx: TenantContext) -> TenantModel:
        """The tenant's compiled model at its current version."""
        return await self._model_at(ctx, await self.cache.tenant_version(ctx.slug))

    async def _model_at(self, ctx: TenantContext, version: int) -> TenantModel:
        loaded = self._models.get(ctx.tenant_id)
        if loaded is not None and loaded.model.version == version and self._clock() < loaded.expires:
            self._models.move_to_end(ctx.tenant_id)
            return loaded.model
        lock = self._locks.setdefault(ctx.tenant_id, asyncio.Lock())
        async with lock:
            loaded = self._models.get(ctx.tenant_id)
            if loaded is not None and loaded.model.version == version and self._clock() < loaded.expires:
                return loaded.model
            if await self._reconcile(ctx):
                version = await self.cache.bump_tenant(ctx.slug)
            async with self.db.tenant_session(ctx.schema) as session:
                rows = await self.repo.model_rows(session)
            model = self._compile(rows, version)
            jitter = 1 + random.uniform(-0.1, 0.1)  # noqa: S311 - spreads reloads, not a secret
            self._models[ctx.tenant_id] = _Loaded(model, self._clock() + self.model_ttl * jitter)
            self._models.move_to_end(ctx.tenant_id)
            while len(self._models) > self.max_tenants:
                evicted, _ = self._models.popitem(last=False)
                self._locks.pop(evicted, None)
        return model

    def _compile(self, rows: ModelRows, version: int) -> TenantModel:
        roles = {name: set(patterns) for name, patterns in self._builtin_roles.items()}
        for role, pattern, _source in rows.role_permissions:
            roles.setdefault(role, set()).add(pattern)
        for row in rows.roles:
            roles.setdefault(row.name, set())
        policies = [*self._builtin_policies]
        policies += [compile_policy(r.policy, source=r.source, validate=False) for r in rows.policies]
        return TenantModel(roles, policies, version=version)

    # --------------------------------------------------------------- plugins

    async def _reconcile(self, ctx: TenantContext) -> bool:
        """Register the contributions of enabled plugins and drop the others'; True if any changed."""
        if self._installed is None:
            return False
        enabled = set(await self._installed(ctx))
        wanted = {n: c for n, c in self.contributions.items() if n in enabled and not c.builtin}
        async with self.db.tenant_session(ctx.schema) as session:
            registered = await self.repo.registered_plugins(session)
        changed = False
        for name, contribution in wanted.items():
            if registered.get(name) != contribution.fingerprint:
                try:
                    await self._register(ctx, contribution)
                except ConflictError as exc:
                    logger.error("plugin %s not registered: %s", name, exc, extra={"tenant": ctx.slug})
                    continue
                changed = True
        for name in set(registered) - set(wanted):
            async with self.db.tenant_session(ctx.schema) as session:
                await self.repo.unregister_plugin(session, name)
            changed = True
        return changed

    async def _register(self, ctx: TenantContext, contribution: PluginContribution) -> None:
        async with self.db.tenant_session(ctx.schema) as session:
            await self.repo.register_plugin(
                session,
                plugin=contribution.name,
                version=contribution.version,
                fingerprint=contribution.fingerprint,
                permissions=contribution.permissions,
                roles=contribution.roles,
                policies=contribution.policies,
                reserved_keys=self._builtin_keys,
            )

    async def on_plugin_installed(self, ctx: TenantContext, plugin: str) -> None:
        """Register ``plugin``'s permissions, default grants and policies for the tenant.

        Call after the plugin's migrations ran and before the install is recorded.

        Raises:
            ValidationError: the plugin is unknown or built in.
            ConflictError: one of its permission keys or roles belongs to someone else.
        """
        contribution = self.contributions.get(plugin)
        if contribution is None or contribution.builtin:
            raise ValidationError(f"unknown plugin {plugin!r}", field="plugin")
        await self._register(ctx, contribution)
        await self.invalidate_tenant(ctx)

    async def on_plugin_uninstalled(self, ctx: TenantContext, plugin: str) -> None:
        """Remove what ``plugin`` registered for the tenant (grants of its roles stay, inert)."""
        async with self.db.tenant_session(ctx.schema) as session:
            await self.repo.unregister_plugin(session, plugin)
        await self.invalidate_tenant(ctx)

    # ---------------------------------------------------------- invalidation

    async def invalidate_tenant(self, ctx: TenantContext) -> None:
        """After a committed change of roles, policies, plugins or team grants of the tenant."""
        await self.cache.bump_tenant(ctx.slug)
        self._models.pop(ctx.tenant_id, None)
        self._forget_scopes(ctx.slug)
        if self._local is not None:
            await self._local.invalidate_local(_tenant_local_key(ctx.slug))

    async def invalidate_user(self, ctx: TenantContext, user_id: str) -> None:
        """After a committed change of one user's grants, teams or workspace memberships."""
        await self.cache.bump_user(ctx.slug, user_id)
        self._forget_scopes(ctx.slug)
        if self._local is not None:
            await self._local.invalidate_local(_user_local_key(ctx.slug, user_id))

    def forget(self, ctx: TenantContext) -> None:
        """Drop everything this process holds for a tenant (after the tenant is deleted)."""
        self._models.pop(ctx.tenant_id, None)
        self._locks.pop(ctx.tenant_id, None)
        self._forget_scopes(ctx.slug)
        if self._local is not None:
            self._local.forget(_tenant_local_key(ctx.slug))

    def _forget_scopes(self, slug: str) -> None:
        for scope in list(self._scopes.values()):
            if scope.tenant == slug:
                scope.subjects.clear()


def _tenant_local_key(slug: str) -> str:
    return f"l1:{PermissionCache.tenant_version_key(slug)}"


def _user_local_key(slug: str, user: str) -> str:
    return f"l1:{PermissionCache.entry_key(slug, user)}"


async def _new_epoch() -> object:
    return object()
