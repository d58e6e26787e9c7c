"""Free loopback ports for servers a test starts (or tells a child process to start)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now; the kernel may hand it out again, rarely."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_pair() -> int:
    """A port P such that P and P + 1 are both free (for workers numbered from P)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two consecutive free ports found")
