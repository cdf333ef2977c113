"""Operator settings of the webhooks plugin: delivery policy and the SSRF guard's allow-list.

These are the operator's, not a tenant's: a tenant admin who could widen the address allow-list
could point the host at its own internal network, so nothing here is in the per-tenant
``config_schema``. They come from the plugin's constructor or from ``PLEXICA_WEBHOOKS_<KEY>``
variables (one underscore: ``PLEXICA_<SECTION>__<KEY>`` is the host's own namespace).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final

import attrs

from plexica_sdk.errors import SettingsError

__all__ = ["ENV_PREFIX", "WebhooksSettings"]

ENV_PREFIX: Final = "PLEXICA_WEBHOOKS_"


def _networks(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(ipaddress.ip_network(str(item).strip(), strict=False)) for item in items if str(item).strip())


@attrs.frozen(kw_only=True)
class WebhooksSettings:
    """How deliveries are made, retried and given up on.

    Attributes:
        allow_networks: CIDRs that endpoint addresses may be in although they are not public
            (``10.0.0.0/8`` for an internal receiver); empty: only public addresses.
        allow_insecure_http: accept ``http://`` endpoint URLs (development and tests only).
        ca_bundle: a PEM file of CAs to trust instead of the system's (a private receiver's CA).
        timeout_seconds: one delivery attempt, connect to last byte.
        max_attempts: attempts of a delivery before it is dead-lettered.
        backoff_base_seconds: the delay after the first failed attempt; it doubles each attempt.
        backoff_max_seconds: the longest delay between two attempts.
        disable_after_failures: consecutive deliveries of an endpoint that ended failed
            (dead-lettered or refused with a 4xx) before the endpoint is disabled.
        poll_interval_seconds: how often the worker looks for due retries when nothing wakes it.
        max_endpoints: endpoints one tenant may register.
        rotation_grace_seconds: how long the previous secret still signs after a rotation.
    """

    allow_networks: tuple[str, ...] = attrs.field(default=(), converter=_networks)
    allow_insecure_http: bool = False
    ca_bundle: str | None = None
    timeout_seconds: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    max_attempts: int = attrs.field(default=8, validator=attrs.validators.ge(1))
    backoff_base_seconds: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    backoff_max_seconds: float = attrs.field(default=3600.0, validator=attrs.validators.ge(0))
    disable_after_failures: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    poll_interval_seconds: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    max_endpoints: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    rotation_grace_seconds: float = attrs.field(default=86_400.0, validator=attrs.validators.ge(0))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WebhooksSettings:
        """Settings from ``PLEXICA_WEBHOOKS_<KEY>`` variables (``PLEXICA_WEBHOOKS_MAX_ATTEMPTS=5``).

        Raises:
            SettingsError: an unknown key or a value of the wrong kind, one line each.
        """
        fields = {field.name: field for field in attrs.fields(cls)}
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, raw in environ.items():
            if not name.startswith(ENV_PREFIX):
                continue
            key = name.removeprefix(ENV_PREFIX).lower()
            field = fields.get(key)
            if field is None:
                problems.append(f"{name}: no such webhooks setting (known: {', '.join(sorted(fields))})")
                continue
            try:
                values[key] = _parse(raw, field.type)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
        if problems:
            raise SettingsError(problems)
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise SettingsError([str(exc)]) from exc

    def to_environ(self) -> dict[str, str]:
        """These settings as the ``PLEXICA_WEBHOOKS_<KEY>`` variables :meth:`from_environ` reads back.

        What a deployment (or a test running the plugin remotely) hands the plugin's own process.
        """
        environ: dict[str, str] = {}
        for field in attrs.fields(type(self)):
            value = getattr(self, field.name)
            if value is None:
                text = ""
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            environ[ENV_PREFIX + field.name.upper()] = text
        return environ


def _parse(raw: str, kind: Any) -> Any:
    text = str(kind)
    if text == "bool":
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(f"{raw!r} is not a boolean")
    if text == "int":
        return int(raw)
    if text == "float":
        return float(raw)
    if text.startswith("str | None"):
        return raw or None
    return raw  # tuples are parsed by their converter (comma-separated)
