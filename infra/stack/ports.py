"""Choose the loopback ports, once: the first ``up`` picks them, later ones reuse them."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from infra.stack.config import LOOPBACK, PREFERRED_PORTS, StackError


def is_free(port: int, host: str = LOOPBACK) -> bool:
    """Nothing listens on ``host:port`` (a wildcard listener counts: the bind fails).
    SO_REUSEADDR, as the servers set it: closed connections in TIME_WAIT do not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def any_free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def choose_ports(
    asked: Mapping[str, int | None], remembered: Mapping[str, int], running: set[str]
) -> dict[str, int]:
    """The port of each service: the one asked for on the command line (0: any free one),
    else the remembered one, else the preferred one when free, else any free one. A running
    service keeps its port: asking for another one is an error."""
    chosen: dict[str, int] = {}
    for name, preferred in PREFERRED_PORTS.items():
        wanted = asked.get(name)
        old = remembered.get(name)
        if name in running and old:
            if wanted not in (None, 0, old):
                raise StackError(
                    f"{name} runs on port {old}: run `dove stack down` before moving it to {wanted}"
                )
            chosen[name] = old
        elif wanted is None and old:
            chosen[name] = old
        elif wanted:
            chosen[name] = wanted
        elif wanted is None and preferred and is_free(preferred):
            chosen[name] = preferred
        else:
            chosen[name] = any_free_port()
    return chosen


def check_free(name: str, port: int) -> None:
    """Before starting ``name``: its port must be free (another program may hold it)."""
    if not is_free(port):
        raise StackError(
            f"port {port} of {name} is in use by another program: free it, or pass "
            f"--{name}-port with another port (0: any free one)"
        )
