"""Where a channel's calls may go: the platform's own API hosts, over https.

A channel's ``api_base_url`` is typed by an operator, and its calls carry the channel's
credentials: pointed at the cloud's metadata service (169.254.169.254), an address on the
private network or any other host, they would hand the token over or reach what only the
machine should. So a URL is checked twice:

- when a channel is saved (``url_refusal``, from ``Channel.clean``): https, a host that is
  one of the platform's domains (``Connector.api_domains``) or below one, no address
  literal, no user name in the URL;
- when a request is sent (``channels.connectors.http``): the same check of the URL (a
  link a platform answered with, a setting changed in the database), and the address the
  connection actually reached (``address_refusal``), so a platform's name that resolves to
  a private or link-local address is refused too.

Local simulators listen on loopback over plain http: ``CHANNELS_ALLOW_LOCAL_HOSTS`` (on in
``make run`` and the tests) lets a channel point at loopback, and nothing else.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from urllib.parse import urlsplit

from django.conf import settings

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def local_hosts_allowed() -> bool:
    """Whether channels may point at loopback (local simulators)."""
    return bool(getattr(settings, "CHANNELS_ALLOW_LOCAL_HOSTS", False))


def url_refusal(url: str, *, api_domains: Sequence[str]) -> str:
    """Why a channel may not send its calls to ``url`` ("" when it may); no DNS look-up."""
    try:
        parts = urlsplit(url)
        hostname = (parts.hostname or "").rstrip(".").lower()
        parts.port  # noqa: B018  (a port that is not a number raises ValueError)
    except ValueError:
        return "The URL cannot be read."
    if not hostname:
        return "The URL names no host."
    if parts.username is not None or parts.password is not None:
        return "A user name or password in the URL is not allowed: credentials go in their field."
    local = _is_loopback_name(hostname)
    if local:
        if not local_hosts_allowed():
            return (
                f"{hostname} is this machine: allowed only for local simulators "
                "(CHANNELS_ALLOW_LOCAL_HOSTS)."
            )
        if parts.scheme not in ("http", "https"):
            return "Only http and https URLs are allowed."
        return ""
    if parts.scheme != "https":
        return "Only https URLs are allowed (plain http only for local simulators)."
    if _is_address(hostname):
        refusal = address_refusal(hostname)
        return refusal or f"{hostname} is an address: use the platform's host name."
    if not any(hostname == domain or hostname.endswith(f".{domain}") for domain in api_domains):
        return f"{hostname} is not one of the platform's API hosts ({', '.join(api_domains)})."
    return ""


def address_refusal(address: str) -> str:
    """Why a call may not go to this IP address ("" when it may): loopback only for local
    simulators; never link-local (the cloud's metadata service), private, shared, reserved,
    multicast or unspecified addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address} is not an IP address."
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        if local_hosts_allowed():
            return ""
        return f"{ip} is this machine: allowed only for local simulators."
    if ip.is_link_local:
        return f"{ip} is link-local (the cloud's metadata service lives there)."
    if ip.is_private or ip.is_reserved or ip.is_multicast or ip.is_unspecified:
        return f"{ip} is a private or reserved address."
    if not ip.is_global:
        return f"{ip} is not a public address."
    return ""


# A host name's addresses are looked up again after this long (used only where a proxy
# makes the connection, so that the address it reaches cannot be seen).
_RESOLVED_FOR_S = 60.0
_resolved: dict[str, tuple[float, str]] = {}


def resolved_refusal(hostname: str, *, cache: bool = True) -> str:
    """Why a call may not go to what ``hostname`` resolves to ("" when every address is
    allowed); a name that does not resolve is left to the connection to fail. An address
    literal is checked without a look-up."""
    if _is_address(hostname.strip("[]")):
        return address_refusal(hostname.strip("[]"))
    now = time.monotonic()
    cached = _resolved.get(hostname) if cache else None
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        infos = socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return ""
    refusal = next((reason for info in infos if (reason := address_refusal(str(info[4][0])))), "")
    _resolved[hostname] = (now + _RESOLVED_FOR_S, refusal)
    return refusal


def _is_loopback_name(hostname: str) -> bool:
    if hostname in _LOCAL_NAMES or hostname.endswith(".localhost"):
        return True
    if _is_address(hostname):
        ip = ipaddress.ip_address(hostname)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped.is_loopback
        return ip.is_loopback
    return False


def _is_address(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return True
