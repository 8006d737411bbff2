"""What a WireGuard mesh's subnet may be (``spec.network.vpn.subnet``)."""

from __future__ import annotations

import ipaddress

DEFAULT_SUBNET = "10.66.0.0/24"
# WireGuard's usual UDP port: every node of a mesh listens on it (and its firewall opens it).
MESH_PORT = 51820
# Shared address space (RFC 6598): what Tailscale and Headscale use; private enough here.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
# Headscale's own default range, and the one it supports: a v4 prefix outside Tailscale's
# CGNAT range makes Headscale 0.23 warn "an unsupported configuration".
HEADSCALE_DEFAULT_PREFIX = "100.64.0.0/10"


def check_subnet(text: str) -> ipaddress.IPv4Network:
    """The mesh subnet ``text``, if it can be one.

    Raises:
        ValueError: Not an IPv4 network, host bits set, not private, or not /16 to /28.
    """
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"expected a private IPv4 network like {DEFAULT_SUBNET}, got {text!r} ({exc})"
        ) from exc
    shared = network.subnet_of(_CGNAT)  # what Tailscale and Headscale use: private enough
    if not (network.is_private or shared) or network.is_loopback or network.is_link_local:
        raise ValueError(f"{text} is not a private range (10/8, 172.16/12, 192.168/16, 100.64/10)")
    if not 16 <= network.prefixlen <= 28:
        raise ValueError(f"{text}: the prefix must be from /16 to /28 (a /24 gives 253 nodes)")
    return network


def check_prefix(text: str) -> ipaddress.IPv4Network:
    """The v4 prefix Headscale hands addresses out of, if ``text`` can be one.

    Raises:
        ValueError: Not an IPv4 network, host bits set, or not inside 100.64.0.0/10.
    """
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise ValueError(
            f"expected an IPv4 network inside {_CGNAT} like {HEADSCALE_DEFAULT_PREFIX} "
            f"(Headscale's range), got {text!r} ({exc})"
        ) from exc
    if not network.subnet_of(_CGNAT) or network.prefixlen > 28:
        raise ValueError(
            f"{text}: headscale hands out addresses of {_CGNAT} (Tailscale's range; "
            "Headscale 0.23 calls any other an unsupported configuration): use a network "
            f"inside it from /10 to /28, like {HEADSCALE_DEFAULT_PREFIX}"
        )
    return network
