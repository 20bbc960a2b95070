"""Provides :func:`address_key`, the key client addresses are limited by.

Shared by the limits before login (:mod:`backend.admission`) and the account limits
(:mod:`backend.accounts.throttle`): an IPv6 client is limited by its /64, the block a single
subscriber usually holds, so it cannot dodge a limit by changing its address.
"""

from __future__ import annotations

import ipaddress


def address_key(address: str) -> str:
    """The key a client address is limited by: an IPv4 address, or the /64 of an IPv6 one.

    An IPv4-mapped IPv6 address counts as its IPv4 address; text that is no IP address (a
    Unix socket peer, ``"?"``) is its own key.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
