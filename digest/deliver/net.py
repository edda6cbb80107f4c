"""Host names: the one rule for "this host is the local machine", shared by `digest check` and the SMTP sender."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` names this machine: localhost (RFC 6761: also *.localhost, and a trailing dot) or a
    loopback address (127.0.0.0/8, ::1, bracketed or not)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
