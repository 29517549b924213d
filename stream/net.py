"""Network addresses: which endpoints only this machine can reach. The config asks it: an alert
endpoint off loopback needs CURVE keys (or `allow_plaintext`), an HTTP endpoint off loopback a token."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def is_loopback(endpoint: str) -> bool:
    """Whether only this machine can reach the endpoint (ipc/inproc, or tcp on a loopback address)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False            # a name or an interface (tcp://eth0:5556, tcp://*:5556): reachable from outside
