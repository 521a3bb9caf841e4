"""Free TCP ports on the loopback interface, for test servers and local clusters.

Tests and `kubemini up` start etcd, the API server and friends on ports nobody else uses; asking
the kernel for an ephemeral port is simpler and safer than a fixed range. The port is released
before it is returned, so a rare race with another process is possible: callers that bind it
should report a clear error if the bind fails.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (bind to port 0 and read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on (or holds) ``host:port`` right now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False
