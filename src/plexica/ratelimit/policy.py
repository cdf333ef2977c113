"""Who is limited how: a request's route class and cost, the partitions it counts against, the headers.

Pure: no IO. The route class is the first segment that names an area: ``core.<area>`` for
``/api/core/v1/<area>/...``, ``plugin.<name>`` for ``/api/plugins/<name>/...``, ``other`` for the
rest. Keys follow the seed, with the tenant id as a Redis Cluster hash tag::

    rate_limit:{<tenant id>}:<user id>:<route class>    one user's route class
    rate_limit:{<tenant id>}                            the tenant's total cap
    rate_limit:{platform}:<user id>:<route class>       a platform caller (no tenant)
    rate_limit:{ip:<address>}                           a caller without a verified token
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, final

import attrs

from plexica.ratelimit.base import Quota, QuotaState

if TYPE_CHECKING:
    from plexica.settings import RateLimitPlan, RateLimitSettings
    from plexica_sdk.types import Principal, RouteRateLimit, TenantInfo

__all__ = ["KEY_PREFIX", "RateLimitPolicy", "Route", "limit_header", "policy_header"]

KEY_PREFIX = "rate_limit:"
_CORE = "/api/core/v1/"
_PLUGINS = "/api/plugins/"
_MEMO_SIZE = 10_000


@attrs.frozen
class Route:
    """What the limiter knows of a request's route: its class and its cost."""

    route_class: str
    cost: int = 1


@attrs.frozen
class _Rule:
    pattern: re.Pattern[str]
    methods: frozenset[str]
    cost: int
    exempt: bool


@final
class RateLimitPolicy:
    """Turns settings and plugin manifests into per-request decisions of what to count.

    Args:
        settings: the ``[rate_limit]`` section.
        plugin_rules: each plugin's manifest ``rate_limits``, by plugin name.
    """

    def __init__(self, settings: RateLimitSettings, plugin_rules: Mapping[str, Sequence[RouteRateLimit]]) -> None:
        self.settings = settings
        self._rules = {
            plugin: [
                _Rule(re.compile(fnmatch.translate(rule.path)), frozenset(rule.methods), rule.cost, rule.exempt)
                for rule in rules
            ]
            for plugin, rules in plugin_rules.items()
            if rules
        }
        self._exempt = frozenset(settings.exempt_paths)
        self._exempt_prefixes = tuple(prefix.rstrip("/") + "/" for prefix in settings.exempt_paths)
        # The quotas of recent (tenant, plan, caller, route) combinations: built once, not per request.
        self._memo: dict[tuple[str | None, str | None, tuple[str, str | None], str, int], tuple[Quota, ...]] = {}

    def route(self, method: str, path: str) -> Route | None:
        """The route class and cost of a request, or ``None`` when it is not limited at all."""
        if path in self._exempt or path.startswith(self._exempt_prefixes):
            return None
        if path.startswith(_CORE):
            area = path[len(_CORE) :].split("/", 1)[0]
            return Route(f"core.{area}" if area else "core")
        if path.startswith(_PLUGINS):
            plugin, _, rest = path[len(_PLUGINS) :].partition("/")
            for rule in self._rules.get(plugin, ()):
                if (not rule.methods or method in rule.methods) and rule.pattern.match("/" + rest):
                    return None if rule.exempt else Route(f"plugin.{plugin}", rule.cost)
            return Route(f"plugin.{plugin}")
        return Route("other")

    def plan_for(self, tenant: TenantInfo | None) -> RateLimitPlan:
        """The tenant's override, else its plan, else the default plan."""
        settings = self.settings
        if tenant is not None:
            override = settings.tenants.get(tenant.slug)
            if override is not None:
                return override
            plan = settings.plans.get(tenant.plan)
            if plan is not None:
                return plan
        return settings.plans[settings.default_plan]

    def quotas(
        self, route: Route, *, tenant: TenantInfo | None, principal: Principal | None, client: str | None
    ) -> tuple[Quota, ...]:
        """The partitions this request counts against (none: it is not limited).

        A caller without a verified token counts against its address only, never against a
        tenant's cap: anonymous traffic must not use up a tenant's capacity for its users.
        """
        memo_key = (
            tenant.id if tenant is not None else None,
            tenant.plan if tenant is not None else None,
            ("user", principal.id) if principal is not None else ("ip", client),
            route.route_class,
            route.cost,
        )
        quotas = self._memo.get(memo_key)
        if quotas is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            quotas = self._memo[memo_key] = self._build(route, tenant=tenant, principal=principal, client=client)
        return quotas

    def _build(
        self, route: Route, *, tenant: TenantInfo | None, principal: Principal | None, client: str | None
    ) -> tuple[Quota, ...]:
        window = self.settings.window_seconds
        if principal is None:
            limit = self.settings.anonymous_requests
            if limit is None:
                return ()
            return (Quota("anonymous", f"{KEY_PREFIX}{{ip:{client or 'unknown'}}}", limit, window, route.cost),)
        plan = self.plan_for(tenant)
        tag = tenant.id if tenant is not None else "platform"
        user = Quota(
            "user", f"{KEY_PREFIX}{{{tag}}}:{principal.id}:{route.route_class}", plan.requests, window, route.cost
        )
        if tenant is None or plan.tenant_requests is None:
            return (user,)
        return user, Quota("tenant", f"{KEY_PREFIX}{{{tag}}}", plan.tenant_requests, window, route.cost)


def policy_header(states: Sequence[QuotaState]) -> str:
    """``RateLimit-Policy`` (draft-ietf-httpapi-ratelimit-headers): ``"user";q=100;w=60, ...``."""
    return ", ".join(f'"{s.policy}";q={s.limit};w={s.window_seconds}' for s in states)


def limit_header(states: Sequence[QuotaState]) -> str:
    """``RateLimit``: each policy's remaining quota ``r`` and seconds ``t`` until it is whole again."""
    return ", ".join(f'"{s.policy}";r={s.remaining};t={math.ceil(s.reset_seconds)}' for s in states)
