"""The webhooks plugin: tenants' HTTPS endpoints get their events, signed, retried and guarded against SSRF."""

from __future__ import annotations

from plexica_plugin_webhooks.plugin import WebhooksPlugin
from plexica_plugin_webhooks.settings import WebhooksSettings
from plexica_plugin_webhooks.signing import SIGNATURE_HEADER, InvalidSignatureError, verify_signature
from plexica_plugin_webhooks.ssrf import AddressRefusedError

__all__ = [
    "SIGNATURE_HEADER",
    "AddressRefusedError",
    "InvalidSignatureError",
    "WebhooksPlugin",
    "WebhooksSettings",
    "verify_signature",
]
