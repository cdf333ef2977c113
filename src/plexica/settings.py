"""Host settings: frozen attrs classes, one per concern, loaded from TOML plus environment.

The defaults run the embedded mode with no server at all: SQLite files, the in-process cache and
event bus, local-disk object storage and the dev token issuer, all under ``data_dir``.
``load_settings`` merges a TOML file with ``PLEXICA_<SECTION>__<KEY>`` variables and reports every
bad key at once in one :class:`SettingsError`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
import cattrs
from cattrs.v import format_exception

from plexica_sdk.converter import build_converter
from plexica_sdk.errors import SettingsError

__all__ = [
    "DEV_ISSUER_IN_PRODUCTION",
    "AuthSettings",
    "CacheSettings",
    "DatabaseSettings",
    "EventSettings",
    "HttpSettings",
    "KafkaSettings",
    "KeycloakSettings",
    "MetricsSettings",
    "OutboxSettings",
    "RateLimitPlan",
    "RateLimitSettings",
    "RemotePluginSettings",
    "RemoteSettings",
    "Settings",
    "StorageSettings",
    "TracingSettings",
    "check_production",
    "check_remote_url",
    "load_settings",
]

ENV_PREFIX = "PLEXICA_"


@attrs.frozen(kw_only=True)
class DatabaseSettings:
    """``url`` None: SQLite files under ``data_dir`` (one per tenant). Else a PostgreSQL URL."""

    url: str | None = None
    #: PostgreSQL: connections a process keeps open (requests beyond it wait up to ``pool_timeout_seconds``).
    pool_size: int = attrs.field(default=15, validator=attrs.validators.ge(1))
    #: PostgreSQL: extra connections for bursts, closed again at check-in while the pool is full, so
    #: under sustained load they are opened and closed all the time (a tenth of the CPU at 50 in
    #: flight, ``benchmarks/request_path.py``): prefer a larger ``pool_size``.
    max_overflow: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: PostgreSQL: seconds after which a pooled connection is replaced (below any proxy's idle timeout).
    pool_recycle_seconds: int = attrs.field(default=1800, validator=attrs.validators.ge(1))
    echo: bool = False
    #: PostgreSQL: schemas kept migrated ahead of time by a serving host, renamed into place on sign-up.
    spare_schemas: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    #: PostgreSQL: seconds to open a connection; a server that does not answer by then is a 503.
    connect_timeout_seconds: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    #: PostgreSQL: the longest single statement a request may run, then 503 (``plexica migrate`` runs have no limit).
    command_timeout_seconds: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: PostgreSQL: seconds a request waits for a pooled connection when all are in use, then 503.
    pool_timeout_seconds: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class CacheSettings:
    """``redis_url`` None: the in-process cache. See docs/cache.md for the layers and keys.

    ``redis_cluster``: the URL names a node of a Redis Cluster (so does a ``redis+cluster://`` URL).
    ``l1_max_age_seconds``: how old a process-local (L1) entry may be when no invalidation
    channel is subscribed; ``l1_subscribed_max_age_seconds`` applies while Redis pub/sub is.
    """

    redis_url: str | None = None
    redis_cluster: bool = False
    ttl_seconds: int = attrs.field(default=300, validator=attrs.validators.ge(1))
    l1_max_age_seconds: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    l1_subscribed_max_age_seconds: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    l1_max_entries: int = attrs.field(default=10_000, validator=attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class StorageSettings:
    """``s3_endpoint`` None and ``backend`` "local": files under ``data_dir/objects``."""

    backend: Literal["local", "s3"] = "local"
    s3_endpoint: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: str | None = attrs.field(default=None, repr=False)
    s3_secret_key: str | None = attrs.field(default=None, repr=False)
    bucket_prefix: str = ""
    #: ``"bucket"``: one bucket per tenant (``tenant-{slug}``); ``"prefix"``: one shared bucket
    #: with ``tenant-{slug}/`` prefixes (S3 accounts cap buckets, 10,000 by default).
    layout: Literal["bucket", "prefix"] = "bucket"
    shared_bucket: str = "plexica"
    #: The largest object a plugin may store where its namespace sets no ``max_bytes``.
    max_object_bytes: int = attrs.field(default=100 * 1024 * 1024, validator=attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class KafkaSettings:
    """aiokafka client tuning (``events.kafka``); the defaults suit production.

    Tests against Tansu use ``session_timeout_ms=2000, heartbeat_interval_ms=300, metadata_max_age_ms=1000``.
    ``metadata_max_age_ms`` bounds how long a new tenant's topic goes unnoticed by the consumers.
    """

    client_id: str = "plexica"
    session_timeout_ms: int = attrs.field(default=10_000, validator=attrs.validators.ge(1))
    heartbeat_interval_ms: int = attrs.field(default=3_000, validator=attrs.validators.ge(1))
    metadata_max_age_ms: int = attrs.field(default=30_000, validator=attrs.validators.ge(1))
    max_poll_records: int = attrs.field(default=1_000, validator=attrs.validators.ge(1))
    #: A batch (handlers, retries, backoff) must finish within this, or the group reassigns its partitions.
    max_poll_interval_ms: int = attrs.field(default=300_000, validator=attrs.validators.ge(1))
    #: How long the broker may hold a fetch waiting for data. Tansu holds it this long even when only
    #: some partitions are drained, which stalls a busy consumer; an idle one polls this often.
    fetch_max_wait_ms: int = attrs.field(default=100, validator=attrs.validators.ge(0))
    poll_timeout_ms: int = attrs.field(
        default=200, validator=attrs.validators.ge(1)
    )  # an idle consumer notices ``stop`` within this
    concurrency_per_partition: int = attrs.field(default=16, validator=attrs.validators.ge(1))  # keys handled at once
    linger_ms: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    max_batch_size: int = attrs.field(default=256 * 1024, validator=attrs.validators.ge(1024))
    io_timeout_seconds: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class OutboxSettings:
    """The transactional outbox relay (``events.outbox``); see ``docs/events.md``."""

    #: Rows published per relay round.
    batch_size: int = attrs.field(default=1000, validator=attrs.validators.ge(1))
    #: How often a relay looks for rows other processes wrote (its own commits wake it at once).
    poll_seconds: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    #: SQLite: how often a relay opens every tenant file for rows no relay woke for (a crash's leftovers).
    sweep_seconds: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: SQLite: how long a relay's claim on a tenant's rows keeps other processes' relays off them.
    lease_seconds: float = attrs.field(default=120.0, validator=attrs.validators.gt(0))
    #: Sent rows are kept this long (for inspection), then deleted.
    retention_seconds: float = attrs.field(default=86_400.0, validator=attrs.validators.ge(0))
    #: Processed-event ids (``Host.mark_processed``) are kept this long: longer than any redelivery.
    processed_retention_seconds: float = attrs.field(default=7 * 86_400.0, validator=attrs.validators.gt(0))
    #: How often retention pruning runs.
    prune_interval_seconds: float = attrs.field(default=3_600.0, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class EventSettings:
    """``backend`` "memory": the in-process bus. "kafka": aiokafka against ``bootstrap_servers``."""

    backend: Literal["memory", "kafka"] = "memory"
    bootstrap_servers: str | None = None
    topology: Literal["per_tenant", "shared"] = "per_tenant"
    partitions: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    replication_factor: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    enable_idempotence: bool = True
    max_attempts: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    retry_backoff_seconds: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    dead_letter_topic: str = "dead-letter-queue"
    handler_timeout_seconds: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: How long event delivery trusts a cached tenant or plugin-install lookup. Changes made in this
    #: process invalidate the cache at once; this bounds staleness across processes.
    delivery_cache_seconds: float = attrs.field(default=5.0, validator=attrs.validators.ge(0))
    delivery_cache_size: int = attrs.field(default=10_000, validator=attrs.validators.ge(1))
    kafka: KafkaSettings = attrs.Factory(KafkaSettings)
    outbox: OutboxSettings = attrs.Factory(OutboxSettings)


@attrs.frozen(kw_only=True)
class KeycloakSettings:
    """Production identity. Absent from ``AuthSettings``: the dev issuer is used."""

    url: str
    realm_template: str = "tenant-{slug}"
    platform_realm: str = "plexica-platform"
    strategy: Literal["realm_per_tenant", "organizations"] = "realm_per_tenant"
    organizations_realm: str = "plexica"
    #: Admin API credentials (a user of ``admin_realm``). Both set: tenant provisioning manages realms.
    admin_username: str | None = None
    admin_password: str | None = attrs.field(default=None, repr=False)
    admin_client_id: str = "admin-cli"
    admin_realm: str = "master"
    admin_timeout_seconds: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    #: The public PKCE client created in every tenant realm; ``{slug}`` in the URIs is the tenant's.
    web_client_id: str = "plexica-web"
    web_redirect_uris: tuple[str, ...] = ()
    web_origins: tuple[str, ...] = ("+",)
    #: The first user of every new realm, with the ``tenant_admin`` role. ``{slug}`` in the email is
    #: the tenant's; without a password the user has none until an administrator sets one.
    first_admin_username: str = "admin"
    first_admin_email: str | None = None
    first_admin_password: str | None = attrs.field(default=None, repr=False)

    @property
    def manages_realms(self) -> bool:
        """Whether admin credentials are set, so tenant lifecycle steps create and change realms."""
        return bool(self.admin_username and self.admin_password)


def _gateway_mode_has_key(instance: AuthSettings, attribute: attrs.Attribute[str], value: str) -> None:
    # Without a key nothing can be verified: every request would be refused, so refuse to start.
    if value == "gateway" and not instance.gateway_key:
        raise ValueError("'auth.mode' = 'gateway' must come with an 'auth.gateway_key'")


@attrs.frozen(kw_only=True)
class AuthSettings:
    """Token verification. ``keycloak`` None: tokens come from the built-in dev issuer."""

    audience: str = "plexica-api"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_seconds: int = attrs.field(default=30, validator=attrs.validators.ge(0))
    dev_issuer_url: str = "http://plexica.localhost"
    keycloak: KeycloakSettings | None = None
    #: "token": bearer JWTs say who calls. "gateway": only gateway-signed headers do (docs/gateway.md).
    mode: Literal["token", "gateway"] = attrs.field(default="token", validator=_gateway_mode_has_key)
    #: HMAC key that signs the identity headers of a trusted gateway (``plexica.auth.GatewaySigner``).
    gateway_key: str | None = attrs.field(default=None, repr=False)
    #: How far a gateway signature's timestamp may be from this host's clock.
    gateway_max_skew_seconds: int = attrs.field(default=60, validator=attrs.validators.ge(1))
    #: Paths served without a signature in gateway mode: the probes and the remote plugins' JWKS,
    #: which bypass the gateway.
    gateway_exempt_paths: tuple[str, ...] = ("/health", "/ready", "/.well-known/plexica/jwks.json")
    jwks_refresh_min_seconds: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))


def _no_credentials_for_any_origin(
    instance: HttpSettings, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    # Credentials for any origin would let every web site act as the signed-in user.
    if "*" in value and instance.cors_credentials:
        raise ValueError("'http.cors_origins' must list the origins when 'http.cors_credentials' is true, not '*'")


@attrs.frozen(kw_only=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8000, validator=[attrs.validators.ge(0), attrs.validators.le(65535)])
    #: Suffix after the tenant slug in host names (``acme.example.com`` → ``acme``); None disables it.
    tenant_host_suffix: str | None = None
    #: How a request names its tenant, in order; the first answer wins and the others must agree
    #: ("path": a ``/t/{slug}/`` prefix). See docs/gateway.md.
    tenant_resolvers: tuple[Literal["token", "host", "header", "path"], ...] = ("token", "host", "header")
    #: Browser origins allowed to call the API (CORS); empty: no CORS headers at all. "*": any origin.
    cors_origins: tuple[str, ...] = attrs.field(default=(), validator=_no_credentials_for_any_origin)
    #: Extra origins per tenant slug, for tenants addressed by host name or path prefix.
    cors_tenant_origins: Mapping[str, tuple[str, ...]] = attrs.Factory(dict)
    cors_methods: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE")
    cors_headers: tuple[str, ...] = ("Authorization", "Content-Type", "X-Workspace-ID", "X-Trace-ID")
    cors_expose_headers: tuple[str, ...] = ("X-Trace-ID", "RateLimit", "RateLimit-Policy", "Retry-After")
    cors_credentials: bool = False
    cors_max_age: int = attrs.field(default=600, validator=attrs.validators.ge(0))
    access_log: bool = True
    plugin_timeout_seconds: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: The largest request body a plugin route reads (413 past it, counted while it streams); 1 MiB.
    #: A plugin's manifest may raise it for its own routes (``PluginManifest.max_body_bytes``).
    max_body_bytes: int = attrs.field(default=1_048_576, validator=attrs.validators.ge(1))
    #: Each ``/health`` and ``/ready`` probe gets this long; they run at once, so this bounds the check.
    health_timeout_seconds: float = attrs.field(default=2.0, validator=attrs.validators.gt(0))
    #: Whether anonymous ``/health`` shows each check and the plugins; None: in development and test only.
    health_details_public: bool | None = None
    #: Sent as ``X-Health-Token``, unlocks ``/health`` details (so does a super-admin token).
    health_token: str | None = attrs.field(default=None, repr=False)


def _optional_positive(instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"'{attribute.name}' must be >= 1 or unset: {value}")


@attrs.frozen(kw_only=True)
class RateLimitPlan:
    """The limits of one plan (or one tenant's override), per ``rate_limit.window_seconds``.

    ``requests``: what one user may send to one route class. ``tenant_requests``: what all of a
    tenant's users may send together (the total cap); ``None``: no cap.
    """

    requests: int = attrs.field(validator=attrs.validators.ge(1))
    tenant_requests: int | None = attrs.field(default=None, validator=_optional_positive)


def _default_plans() -> dict[str, RateLimitPlan]:
    return {
        "standard": RateLimitPlan(requests=100, tenant_requests=2_000),
        "premium": RateLimitPlan(requests=1_000, tenant_requests=20_000),
    }


def _known_plan(instance: RateLimitSettings, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in instance.plans:
        raise ValueError(f"'rate_limit.default_plan' must name one of the plans {sorted(instance.plans)}: {value!r}")


@attrs.frozen(kw_only=True)
class RateLimitSettings:
    """The request rate limiter; see docs/rate-limits.md.

    A tenant gets its plan's limits (``TenantInfo.plan``; an unknown plan: ``default_plan``), or
    ``tenants[slug]`` when set. Requests without a verified caller are limited per client address
    (``anonymous_requests``; ``None``: not limited). ``fail_mode``: what happens while Redis does not
    answer: ``"open"`` admits (logged and counted), ``"closed"`` answers 503.
    """

    enabled: bool = True
    window_seconds: int = attrs.field(default=60, validator=attrs.validators.ge(1))
    plans: Mapping[str, RateLimitPlan] = attrs.Factory(_default_plans)
    default_plan: str = attrs.field(default="standard", validator=_known_plan)
    tenants: Mapping[str, RateLimitPlan] = attrs.Factory(dict)
    anonymous_requests: int | None = attrs.field(default=300, validator=_optional_positive)
    fail_mode: Literal["open", "closed"] = "open"
    #: Path prefixes never limited (under the app's root path).
    exempt_paths: tuple[str, ...] = ("/health", "/ready", "/metrics", "/openapi.json")


@attrs.frozen(kw_only=True)
class MetricsSettings:
    """Where ``/metrics`` is served and what its labels may disclose (see ``docs/metrics.md``).

    Tenant ids are labels, so an anonymous scrape would list every tenant: in production the main
    port serves ``/metrics`` only with ``token``, or not at all when ``port`` serves it instead.
    """

    enabled: bool = True
    #: Serve the metrics on this port only (its own listener, started with the host); None: on ``/metrics``.
    port: int | None = attrs.field(
        default=None, validator=attrs.validators.optional([attrs.validators.ge(0), attrs.validators.le(65535)])
    )
    host: str = "127.0.0.1"
    #: A bearer secret every scrape must send (``Authorization: Bearer <token>``); None: no check.
    token: str | None = attrs.field(default=None, repr=False)
    #: Tenants labelled by id in ``tenant_id`` (the busiest ones); the rest are ``other``.
    tenant_label_limit: int = attrs.field(default=100, validator=attrs.validators.ge(0))
    tenant_label_refresh_seconds: float = attrs.field(default=300.0, validator=attrs.validators.gt(0))
    #: How long values read from the database or broker at scrape time are reused.
    refresh_seconds: float = attrs.field(default=15.0, validator=attrs.validators.ge(0))


def _remote_url(instance: RemotePluginSettings, attribute: attrs.Attribute[str], value: str) -> None:
    check_remote_url(value)


def check_remote_url(value: str) -> None:
    """A remote plugin's URL: http(s), a host, no credentials, no query or fragment.

    Raises:
        ValueError: naming what is wrong (without the credentials).
    """
    parts = urlsplit(value)
    if parts.username or parts.password:
        raise ValueError("'plugins.remote.url' must be an http(s) URL without credentials")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise ValueError(f"'plugins.remote.url' must be an http(s) URL without credentials: {value[:100]!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"'plugins.remote.url' must have no query or fragment: {value[:100]!r}")


def _plugin_name(instance: RemotePluginSettings, attribute: attrs.Attribute[str], value: str) -> None:
    if not re.match(r"^[a-z][a-z0-9-]{1,62}\Z", value):
        raise ValueError(f"'plugins.remote.name' must be a plugin name like 'notes': {value[:100]!r}")


@attrs.frozen(kw_only=True)
class RemotePluginSettings:
    """One remote plugin, ``[[plugins.remote]]`` (also ``remote.plugins``); see docs/remote.md.

    ``name`` must be the name in the plugin's manifest: context tokens are addressed to it, so a
    URL can never make the host sign calls for another plugin.
    """

    name: str = attrs.field(validator=_plugin_name)
    #: The plugin's base URL; remote URLs come only from settings or ``plexica plugins register``.
    url: str = attrs.field(validator=_remote_url)
    #: Each attempt of a hook call or event delivery, and each read of a proxied route's answer.
    timeout_seconds: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    connect_timeout_seconds: float = attrs.field(default=2.0, validator=attrs.validators.gt(0))
    #: Extra attempts of an idempotent hook call (never after a 4xx, never for other hooks).
    retries: int = attrs.field(default=2, validator=[attrs.validators.ge(0), attrs.validators.le(5)])
    #: Consecutive failures (no answer, timeout, 5xx) that open the circuit breaker.
    breaker_failures: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    #: How long an open breaker refuses calls before one trial call (half-open) may pass.
    breaker_reset_seconds: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))
    #: Connections the host keeps to this plugin at most; a hung plugin holds only these.
    max_connections: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    #: How long building the host waits for the manifest before it uses the copy kept under ``data_dir``.
    start_timeout_seconds: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    #: Deliveries of a lifecycle hook deferred while the plugin was down, before it is dead-lettered.
    deferred_attempts: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    #: Accept only this migrations bundle (its SHA-256); None: the one accepted first (see docs/remote.md).
    migrations_sha256: str | None = None


def _unique_names(
    instance: RemoteSettings, attribute: attrs.Attribute[tuple[RemotePluginSettings, ...]], value: tuple[Any, ...]
) -> None:
    names = [plugin.name for plugin in value]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"'plugins.remote' must name each plugin once: {duplicates[0]!r} is there more than once")


@attrs.frozen(kw_only=True)
class RemoteSettings:
    """Remote plugins (docs/remote.md): the keys that sign the context tokens sent to them.

    ``signing_keys``: private Ed25519 JWKs (``plexica.remote.generate_signing_key``), the current
    one first; keep the previous one listed during a rotation. Empty: a generated key under
    ``data_dir`` in development; production then calls no remote plugin.
    """

    #: Private Ed25519 JWKs (JSON text), the current signing key first.
    signing_keys: tuple[str, ...] = attrs.field(default=(), repr=False)
    #: The ``iss`` of context tokens; plugins may pin it.
    issuer: str = "plexica"
    #: Lifetime of each context token; wire protocol v1 allows at most 60 s.
    token_ttl_seconds: int = attrs.field(default=30, validator=[attrs.validators.ge(1), attrs.validators.le(60)])
    #: The remote plugins (``[[plugins.remote]]`` in TOML; ``PLEXICA_REMOTE__PLUGINS`` as JSON).
    plugins: tuple[RemotePluginSettings, ...] = attrs.field(default=(), validator=_unique_names)


@attrs.frozen(kw_only=True)
class TracingSettings:
    """OpenTelemetry tracing (``[tracing]``, see ``docs/tracing.md``); off by default, and free when off.

    ``exporter``: "otlp" sends spans over OTLP/HTTP to ``endpoint`` (None: the exporter's default,
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``http://localhost:4318/v1/traces``); "console" prints
    them; "none" records them for in-process span processors only (tests, benchmarks).
    ``sampler_ratio``: the share of new traces recorded; a sampled ``traceparent`` from the caller is
    always followed (parent-based sampling).
    """

    enabled: bool = False
    exporter: Literal["otlp", "console", "none"] = "otlp"
    endpoint: str | None = None
    sampler_ratio: float = attrs.field(default=1.0, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)])
    service_name: str = "plexica"


@attrs.frozen(kw_only=True)
class Settings:
    """Everything the host needs; build with :func:`load_settings`, vary with ``attrs.evolve``."""

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = attrs.field(default=Path(".plexica"), converter=Path)
    #: Extra plugins to load besides the ``plexica.plugins`` entry points: "module:attribute" paths.
    plugins: tuple[str, ...] = ()
    #: Entry-point plugins to skip (by entry-point name).
    disabled_plugins: tuple[str, ...] = ()
    load_entry_points: bool = True
    #: Signs local presigned URLs; None: a random key kept in ``data_dir/secret.key``.
    secret_key: str | None = attrs.field(default=None, repr=False)
    database: DatabaseSettings = attrs.Factory(DatabaseSettings)
    cache: CacheSettings = attrs.Factory(CacheSettings)
    storage: StorageSettings = attrs.Factory(StorageSettings)
    events: EventSettings = attrs.Factory(EventSettings)
    auth: AuthSettings = attrs.Factory(AuthSettings)
    http: HttpSettings = attrs.Factory(HttpSettings)
    metrics: MetricsSettings = attrs.Factory(MetricsSettings)
    rate_limit: RateLimitSettings = attrs.Factory(RateLimitSettings)
    tracing: TracingSettings = attrs.Factory(TracingSettings)
    remote: RemoteSettings = attrs.Factory(RemoteSettings)

    @property
    def is_development(self) -> bool:
        return self.environment in ("development", "test")


_TOP_LEVEL_KEYS = [field.name for field in attrs.fields(Settings)]
_converter = build_converter()
_converter.register_structure_hook(Path, lambda value, _: Path(value))
_converter.register_unstructure_hook(Path, str)


def _setting_type(path: Sequence[str]) -> Any:
    """The annotated type of the setting at ``path``, or None for an unknown key."""
    cls: Any = Settings
    for part in path:
        field = attrs.fields_dict(attrs.resolve_types(cls)).get(part) if attrs.has(cls) else None
        if field is None:
            return None
        cls = field.type
    return cls


def _parse_env_value(raw: str, path: Sequence[str]) -> Any:
    """Text settings take the variable as it is ("null" unsets an optional one); others parse as JSON."""
    kind = _setting_type(path)
    if kind in (str, Path):
        return raw
    if kind == str | None:
        return None if raw == "null" else raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _env_setting_path(name: str) -> list[str] | None:
    """The settings path a variable sets, or None when it is not a setting.

    Settings are ``PLEXICA_<SECTION>__<KEY>`` and the top-level keys (``PLEXICA_DATA_DIR``). Other
    ``PLEXICA_*`` variables belong to tools (``PLEXICA_KEEP_SERVICES``) and are ignored, unless
    the name is close to a top-level key: then it is read, so the typo is reported.
    """
    if not name.startswith(ENV_PREFIX) or name == "PLEXICA_SETTINGS":
        return None
    path = name[len(ENV_PREFIX) :].lower().split("__")
    if path[0] in _TOP_LEVEL_KEYS or len(path) > 1:
        return path
    return path if difflib.get_close_matches(path[0], _TOP_LEVEL_KEYS, n=1, cutoff=0.8) else None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for name, raw in environ.items():
        path = _env_setting_path(name)
        if path is None:
            continue
        node = overrides
        for depth, part in enumerate(path[:-1], start=1):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                section = ENV_PREFIX + "__".join(path[:depth]).upper()
                raise SettingsError([f"{name} sets a key inside {section}, which is set as a whole too"])
        node[path[-1]] = _parse_env_value(raw, path)
    return overrides


_EXTRA_RE = re.compile(r"^extra fields found \((?P<names>[^)]*)\) @ (?P<where>settings(?:\.\w+)*)$")


def _with_suggestions(problem: str) -> str:
    """An unknown-key problem with a "did you mean" for keys close to a real one."""
    match = _EXTRA_RE.match(problem)
    if match is None:
        return problem
    kind = _setting_type(match["where"].split(".")[1:])
    if not attrs.has(kind):
        return problem
    known = list(attrs.fields_dict(kind))
    names = match["names"].split(", ")
    hints = [(name, close[0]) for name in names if (close := difflib.get_close_matches(name, known, n=1))]
    if not hints:
        return problem
    if len(names) == 1:
        return f"{problem}: did you mean {hints[0][1]!r}?"
    return f"{problem}: did you mean {', '.join(f'{close!r} for {name!r}' for name, close in hints)}?"


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _format_problem(exc: BaseException, type_: type | None) -> str:
    # attrs validators raise ValueError("'ttl_seconds' must be >= 1: 0"): that message names the key.
    if isinstance(exc, ValueError) and type(exc) is ValueError and "must" in str(exc):
        return str(exc)
    return format_exception(exc, type_)


#: Why production refuses the dev issuer, in the one line ``plexica serve`` prints.
DEV_ISSUER_IN_PRODUCTION = (
    "environment = 'production' needs an identity provider: set 'auth.keycloak' (or 'auth.mode' = 'gateway');"
    " the development token issuer lets anyone who can read data_dir mint any token, super-admin included"
)


def _plugins_table(data: dict[str, Any], path: str | Path | None) -> dict[str, Any]:
    """``[plugins]`` as a table: its ``paths`` are ``plugins``, its ``[[plugins.remote]]`` are ``remote.plugins``.

    TOML cannot hold both ``plugins = [...]`` and ``[[plugins.remote]]``, so the table form carries both.
    """
    table = data.get("plugins")
    if not isinstance(table, Mapping):
        return data
    unknown = sorted(set(table) - {"paths", "remote"})
    if unknown:
        problem = f"unknown key plugins.{unknown[0]}: [plugins] takes 'paths' and [[plugins.remote]] tables"
        raise SettingsError([problem], path=str(path) if path else None)
    merged = {**data, "plugins": table.get("paths", ())}
    if "remote" in table:
        remote = data.get("remote", {})
        merged["remote"] = {**(remote if isinstance(remote, Mapping) else {}), "plugins": table["remote"]}
    return merged


def check_production(settings: Settings) -> None:
    """Refuse settings that are safe only in development: production never trusts the dev token issuer.

    :func:`load_settings` calls it; ``create_app`` calls it again for settings built by hand.

    Raises:
        SettingsError: production without ``auth.keycloak`` in token mode.
    """
    if not settings.is_development and settings.auth.keycloak is None and settings.auth.mode == "token":
        raise SettingsError([DEV_ISSUER_IN_PRODUCTION])


def load_settings(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Load settings from a TOML file (``path`` or ``$PLEXICA_SETTINGS``), the environment and overrides.

    Later sources win: file, then ``PLEXICA_<SECTION>__<KEY>`` variables, then keyword overrides.

    Raises:
        SettingsError: the file is unreadable or invalid, or any key is unknown or ill-typed;
            ``problems`` lists every bad key.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get("PLEXICA_SETTINGS")
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError([f"settings file {str(path)!r} does not exist"], path=str(path)) from None
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError([f"cannot read settings file: {exc}"], path=str(path)) from exc
    data = _deep_merge(data, _env_overrides(environ))
    data = _deep_merge(data, overrides)
    data = _plugins_table(data, path)
    try:
        settings = _converter.structure(data, Settings)
    except cattrs.BaseValidationError as exc:
        problems = cattrs.transform_error(exc, path="settings", format_exception=_format_problem)
        problems = [_with_suggestions(problem) for problem in problems]
        raise SettingsError(problems, path=str(path) if path else None) from exc
    except (ValueError, TypeError) as exc:
        raise SettingsError([str(exc)], path=str(path) if path else None) from exc
    check_production(settings)
    return settings
