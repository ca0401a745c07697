"""Server-side request forgery guard for webhook URLs.

A webhook URL is chosen by an API user and fetched by our servers, so it must not reach
the internal network: its host has to resolve only to public addresses. The check runs
when an endpoint is saved and again before every attempt (DNS answers change), and the
attempt then connects to the address that was checked, so a second, different DNS answer
cannot slip in between (DNS rebinding). ``WEBHOOKS_ALLOW_PRIVATE_URLS`` turns the address
check off (development, tests, receivers on a private network).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

import httpx
from django.conf import settings

from .errors import InvalidWebhookUrlError, WebhookUrlNotAllowedError

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public_address(address: IpAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def parse_url(url: str, *, require_https: bool = True) -> httpx.URL:
    """Syntax and scheme: http(s) with a host; https when ``require_https`` and the
    ``WEBHOOKS_REQUIRE_HTTPS`` setting say so."""
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decodes IDNA labels: a bad "xn--" label raises idna.IDNAError
    except (httpx.InvalidURL, TypeError, UnicodeError) as error:
        raise InvalidWebhookUrlError(f"'{url}' is not a valid URL ({error}).", field="url") from None
    if parsed.scheme not in ("http", "https") or not host:
        raise InvalidWebhookUrlError("The URL must start with https:// and name a host.", field="url")
    if parsed.scheme != "https" and require_https and settings.WEBHOOKS_REQUIRE_HTTPS:
        raise InvalidWebhookUrlError("Webhook URLs must use https.", field="url")
    return parsed


def resolve(host: str, port: int) -> list[IpAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise InvalidWebhookUrlError(f"The host '{host}' does not resolve ({error}).", field="url") from None
    addresses: list[IpAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class Target:
    """Where to connect: the checked address (None: let the HTTP client resolve)."""

    url: httpx.URL
    address: IpAddress | None


def check_url(url: str, *, require_https: bool = True) -> Target:
    """Refuse URLs that are malformed or resolve to a non-public address (every address
    the host resolves to must be public). Raises ``InvalidWebhookUrlError`` or
    ``WebhookUrlNotAllowedError``. The scheme rule applies when an endpoint is saved;
    deliveries (``require_https=False``) re-check the address only."""
    parsed = parse_url(url, require_https=require_https)
    if settings.WEBHOOKS_ALLOW_PRIVATE_URLS:
        return Target(parsed, None)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = resolve(parsed.host, port)
    refused = [str(address) for address in addresses if not is_public_address(address)]
    if refused or not addresses:
        raise WebhookUrlNotAllowedError(
            f"The host '{parsed.host}' resolves to a private, loopback, link-local or reserved "
            f"address ({', '.join(refused)}).",
            field="url",
        )
    return Target(parsed, addresses[0])
