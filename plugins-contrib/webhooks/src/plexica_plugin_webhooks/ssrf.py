"""The SSRF guard: which endpoint URLs, and which resolved addresses, the host may call.

A URL is checked when it is registered and its host resolved again before every attempt, and the
attempt connects to the address that was checked (DNS rebinding cannot swap it in between).
Anything not globally routable is refused (private, loopback, link-local and so the cloud
metadata service, CGNAT, multicast, reserved, documentation ranges, and IPv4 mapped in IPv6),
unless the operator allow-listed its network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from typing import final

import attrs

from plexica_plugin_webhooks.settings import WebhooksSettings
from plexica_sdk.errors import ValidationError

__all__ = ["AddressRefusedError", "Target", "check_url", "resolve"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefusedError(ValidationError):
    """The endpoint URL is not acceptable, or its host resolves to an address the guard refuses."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


@final
@attrs.frozen(kw_only=True)
class Target:
    """A checked endpoint: where to connect, and what to name in ``Host`` and TLS SNI."""

    scheme: str
    hostname: str
    port: int
    address: str

    def url_for(self, url: str) -> str:
        """``url`` with its host replaced by the checked address (the connection is pinned to it)."""
        parts = urllib.parse.urlsplit(url)
        host = f"[{self.address}]" if ":" in self.address else self.address
        return urllib.parse.urlunsplit((parts.scheme, f"{host}:{self.port}", parts.path or "/", parts.query, ""))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.hostname if self.port == default else f"{self.hostname}:{self.port}"


def check_url(url: str, settings: WebhooksSettings) -> urllib.parse.SplitResult:
    """Check a URL's shape (no network): scheme, host, no credentials or fragment.

    Raises:
        AddressRefusedError: with the reason.
    """
    if len(url) > 2048:
        raise AddressRefusedError("the URL is longer than 2048 characters")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise AddressRefusedError(f"not a valid URL: {exc}") from None
    if parts.scheme != "https" and not (parts.scheme == "http" and settings.allow_insecure_http):
        raise AddressRefusedError("the URL must use https")
    if not parts.hostname:
        raise AddressRefusedError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise AddressRefusedError("the URL must not carry credentials")
    if parts.fragment:
        raise AddressRefusedError("the URL must not have a fragment")
    return parts


def _refusal(address: IPAddress, settings: WebhooksSettings) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in ipaddress.ip_network(net) for net in settings.allow_networks):
        return None
    if address.is_global and not address.is_multicast:
        return None
    if address.is_unspecified:
        kind = "the unspecified"
    elif address.is_loopback:
        kind = "a loopback"
    elif address.is_link_local:
        kind = "a link-local (cloud metadata)"
    elif address.is_private:
        kind = "a private"
    else:
        kind = "a non-public"
    return f"{address}, {kind} address"


async def resolve(url: str, settings: WebhooksSettings) -> Target:
    """Check ``url`` and resolve its host; every address it resolves to must be acceptable.

    Raises:
        AddressRefusedError: a bad URL, a host that does not resolve, or a refused address.
    """
    parts = check_url(url, settings)
    hostname = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(hostname)
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise AddressRefusedError(f"the host {hostname!r} does not resolve") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        if not addresses:
            raise AddressRefusedError(f"the host {hostname!r} does not resolve")
    for address in addresses:
        reason = _refusal(address, settings)
        if reason is not None:
            raise AddressRefusedError(f"refused: {hostname!r} resolves to {reason}")
    return Target(scheme=parts.scheme, hostname=hostname, port=port, address=str(addresses[0]))
