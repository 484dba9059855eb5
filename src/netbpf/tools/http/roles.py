"""Which servers are the gateway's backends, and which is its own front end.

Tracing both legs of a gateway (``--port 80,8080``) shows two kinds of server:
the backends the gateway connects to, and the gateway itself, serving its
clients. Only the backends may be compared in the balance verdict. What can be
known from the traffic and the traced host:

- a server on a port named with ``--front-port`` is the front end (the user says so);
- a server whose address is not one of this host's (this network namespace's) is a
  backend: the traced host does not serve it;
- a server whose address is local, with clients from elsewhere, is the front end: it
  receives requests from outside (a gateway listener, an ipvs VIP);
- a server whose address is local with only local clients cannot be told apart (a
  backend on the same host, or a front end tested from the host itself): it is counted
  as a backend and the table says ``backend?``.

Whether an address is local is asked of the kernel, once per address: a socket can
bind only to an address of the namespace it is in.
"""
from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable

FRONT, BACKEND, UNSURE = "front end", "backend", "backend?"


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``10.0.1.1:80`` or ``[fd00::1]:80`` -> (address, port)."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


class LocalAddresses:
    """Is an address one of this network namespace's? (cached; I/O on first sight)"""

    def __init__(self) -> None:
        self.cache: dict[str, bool] = {}

    def __call__(self, address: str) -> bool:
        known = self.cache.get(address)
        if known is None:
            known = self.cache[address] = _bindable(address)
        return known


def _bindable(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((address, 0))
    except OSError as e:
        if e.errno not in (errno.EADDRNOTAVAIL, errno.EINVAL, errno.EAFNOSUPPORT):
            raise
        return False
    return True


class Roles:
    """The role of each server seen, from its address, port and clients."""

    def __init__(self, front_ports: Iterable[int] = (), is_local: Callable[[str], bool] | None = None) -> None:
        self.front_ports = frozenset(front_ports)
        self.is_local = is_local  # None: nothing is known of the host (replayed or built traffic)
        self.servers: dict[str, tuple[bool, bool]] = {}  # server -> (local, a remote client seen)

    def add(self, server: str, client: str) -> None:
        """One transaction served by ``server`` to ``client`` (cheap after the first)."""
        seen = self.servers.get(server)
        if seen is None:
            local = self.is_local is not None and self.is_local(split_endpoint(server)[0])
            seen = self.servers[server] = (local, False)
        if seen[0] and not seen[1] and self.is_local is not None and not self.is_local(split_endpoint(client)[0]):
            self.servers[server] = (True, True)  # only while unsure: a local server's clients

    def see(self, server: str) -> None:
        """A server seen without its clients (the kernel path counts per server only)."""
        if server not in self.servers:
            local = self.is_local is not None and self.is_local(split_endpoint(server)[0])
            self.servers[server] = (local, False)

    def role(self, server: str) -> str:
        if split_endpoint(server)[1] in self.front_ports:
            return FRONT
        local, remote_client = self.servers.get(server, (False, False))
        if not local:
            return BACKEND
        return FRONT if remote_client else UNSURE
