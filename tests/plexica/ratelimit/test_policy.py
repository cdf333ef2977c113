"""Route classes, exemptions, plugin costs, plans and overrides, keys and header fields."""

from __future__ import annotations

import pytest

from plexica.plugins.manifest import validate_manifest
from plexica.ratelimit import QuotaState, RateLimitPolicy, Route
from plexica.ratelimit.policy import limit_header, policy_header
from plexica.settings import RateLimitPlan, RateLimitSettings, load_settings
from plexica_sdk.errors import PluginLoadError, SettingsError
from plexica_sdk.types import PluginManifest, Principal, RouteRateLimit, TenantInfo

RULES = {
    "reports": (
        RouteRateLimit(path="/hooks/*", exempt=True),
        RouteRateLimit(path="/reports/*/export", methods=("post",), cost=10),
    )
}


def _tenant(plan: str = "standard", slug: str = "acme") -> TenantInfo:
    return TenantInfo(id="t-1", slug=slug, name=slug, status="active", plan=plan, schema=f"tenant_{slug}")


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/api/core/v1/tenants/acme", Route("core.tenants")),
        ("GET", "/api/core/v1/", Route("core")),
        ("GET", "/api/plugins/notes/notes", Route("plugin.notes")),
        ("POST", "/api/plugins/reports/reports/7/export", Route("plugin.reports", 10)),
        ("GET", "/api/plugins/reports/reports/7/export", Route("plugin.reports")),
        ("POST", "/api/plugins/reports/hooks/github", None),
        ("GET", "/health", None),
        ("GET", "/metrics", None),
        ("GET", "/openapi.json", None),
        ("GET", "/healthz", Route("other")),
        ("GET", "/objects/x", Route("other")),
    ],
    ids=[
        "core-area",
        "core-root",
        "plugin",
        "plugin-cost",
        "cost-only-for-its-method",
        "plugin-exempt",
        "health",
        "metrics",
        "openapi",
        "prefix-is-a-whole-segment",
        "other",
    ],
)
def test_route_class_and_cost(method: str, path: str, expected: Route | None) -> None:
    assert RateLimitPolicy(RateLimitSettings(), RULES).route(method, path) == expected


def test_plans_overrides_and_the_default_plan() -> None:
    settings = RateLimitSettings(tenants={"globex": RateLimitPlan(requests=7)})
    policy = RateLimitPolicy(settings, {})
    assert policy.plan_for(_tenant()).requests == 100
    assert policy.plan_for(_tenant("premium")).requests == 1_000
    assert policy.plan_for(_tenant("gold")).requests == 100  # an unknown plan: the default plan
    assert policy.plan_for(_tenant("premium", slug="globex")) == RateLimitPlan(requests=7)


def test_quota_keys_carry_the_tenant_as_hash_tag() -> None:
    policy = RateLimitPolicy(RateLimitSettings(), {})
    alice = Principal(id="alice")
    user, tenant = policy.quotas(Route("core.me"), tenant=_tenant(), principal=alice, client="10.0.0.1")
    assert (user.key, user.limit, user.window_seconds) == ("rate_limit:{t-1}:alice:core.me", 100, 60)
    assert (tenant.key, tenant.limit) == ("rate_limit:{t-1}", 2_000)
    (platform,) = policy.quotas(Route("core.tenants"), tenant=None, principal=alice, client=None)
    assert platform.key == "rate_limit:{platform}:alice:core.tenants"


def test_anonymous_callers_count_per_address_and_never_against_a_tenant() -> None:
    policy = RateLimitPolicy(RateLimitSettings(anonymous_requests=5), {})
    (quota,) = policy.quotas(Route("other", 2), tenant=_tenant(), principal=None, client="10.0.0.1")
    assert (quota.policy, quota.key, quota.limit, quota.cost) == ("anonymous", "rate_limit:{ip:10.0.0.1}", 5, 2)
    unlimited = RateLimitPolicy(RateLimitSettings(anonymous_requests=None), {})
    assert unlimited.quotas(Route("other"), tenant=None, principal=None, client="10.0.0.1") == ()


def test_header_fields_use_the_structured_field_form() -> None:
    states = [QuotaState("user", 100, 60, 99, 0.6), QuotaState("tenant", 2000, 60, 1999, 0.03)]
    assert policy_header(states) == '"user";q=100;w=60, "tenant";q=2000;w=60'
    assert limit_header(states) == '"user";r=99;t=1, "tenant";r=1999;t=1'


def test_settings_load_plans_and_overrides_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "PLEXICA_RATE_LIMIT__PLANS": '{"standard": {"requests": 5}, "gold": {"requests": 50}}',
            "PLEXICA_RATE_LIMIT__TENANTS__ACME__TENANT_REQUESTS": "9",
            "PLEXICA_RATE_LIMIT__TENANTS__ACME__REQUESTS": "3",
            "PLEXICA_RATE_LIMIT__FAIL_MODE": "closed",
        }
    ).rate_limit
    assert settings.plans["gold"].requests == 50 and settings.plans["standard"].tenant_requests is None
    assert settings.tenants["acme"] == RateLimitPlan(requests=3, tenant_requests=9)
    assert settings.fail_mode == "closed"


@pytest.mark.parametrize(
    "overrides",
    [
        {"default_plan": "gold"},
        {"plans": {"standard": {"requests": 0}}},
        {"tenants": {"acme": {"requests": 5, "tenant_requests": 0}}},
        {"fail_mode": "sometimes"},
    ],
    ids=["unknown-default-plan", "zero-requests", "zero-cap", "bad-fail-mode"],
)
def test_bad_rate_limit_settings_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(SettingsError, match="rate_limit"):
        load_settings(environ={}, rate_limit=overrides)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (RouteRateLimit(path="reports"), "must start with '/'"),
        (RouteRateLimit(path="/r", methods=("FETCH",)), "unknown HTTP methods"),
        (RouteRateLimit(path="/r", cost=0), "cost must be an integer >= 1"),
        ("/r", "not RouteRateLimit"),
    ],
    ids=["relative-path", "unknown-method", "zero-cost", "not-a-rule"],
)
def test_bad_manifest_rate_limits_fail_the_plugin_load(rule: object, message: str) -> None:
    manifest = PluginManifest(name="reports", version="1.0.0", rate_limits=(rule,))  # type: ignore[arg-type]
    with pytest.raises(PluginLoadError, match=message):
        validate_manifest(manifest, origin="reports")


def test_manifests_without_rate_limits_still_load() -> None:
    assert validate_manifest(PluginManifest(name="reports", version="1.0.0"), origin="x").rate_limits == ()


def test_remembered_quotas_follow_the_tenants_plan_and_never_mix_callers() -> None:
    policy = RateLimitPolicy(RateLimitSettings(), {})
    route = Route("core.me")
    standard = policy.quotas(route, tenant=_tenant(), principal=Principal(id="alice"), client=None)
    premium = policy.quotas(route, tenant=_tenant("premium"), principal=Principal(id="alice"), client=None)
    assert (standard[0].limit, premium[0].limit) == (100, 1_000)
    assert policy.quotas(route, tenant=_tenant(), principal=Principal(id="alice"), client=None) is standard
    named_like_an_address = policy.quotas(route, tenant=None, principal=Principal(id="ip:10.0.0.1"), client=None)
    anonymous = policy.quotas(route, tenant=None, principal=None, client="10.0.0.1")
    assert [q.policy for q in named_like_an_address] == ["user"] and [q.policy for q in anonymous] == ["anonymous"]
