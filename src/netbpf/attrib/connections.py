"""The local process on each side of a TCP connection, from its addresses alone.

For tools that see a connection's packets but not its socket (``netbpf
http``: a packet socket, or the kernel's per-transaction records). The
tracker's sockops program writes every connection's local end when its
handshake completes, in every network namespace of the machine
(``attrib_conns``: namespace cookie, addresses and ports -> socket cookie;
connections already open at start come from sock_diag), and the socket
cookie names its process through ``attrib_socks``. So a process that exits
right after its request is still found, and so is a side in another
namespace of this host (a client in a container, a backend in a pod).

A side is looked up in every namespace the program has seen: found in none,
it has no local socket (another host, or addresses rewritten by NAT between
the wire and the socket); found in several (two namespaces using the same
addresses and ports), it is said to be ambiguous, never picked.

Connections are few next to transactions: an answer is kept for
:data:`CACHE_SECONDS` per connection, so a keep-alive connection costs
a handful of map lookups a second, whatever its rate of requests.
"""
from __future__ import annotations

import ctypes
import ipaddress
import time
from dataclasses import dataclass

from .tracker import (
    BPF_OBJECT,
    NO_SOCKET,
    OWNER,
    STATUS_TEXT,
    UNKNOWN_OWNER,
    AttribConn,
    Owner,
    SocketOwners,
    Tracker,
    conn_key,
)

CACHE_SECONDS = 1.0
CACHE_MAX = 65536  # connections remembered (the oldest answers go first)
AMBIGUOUS = 100  # not a kernel status: the addresses are local in several namespaces
SIDE_TEXT = {**STATUS_TEXT, AMBIGUOUS: "ambiguous: these addresses are local in several network namespaces"}

Address = bytes | str  # 4 or 16 bytes, or as written ("10.0.0.1", "fd00::1")


SHARED_STRUCTS = (AttribConn,)
__all__ = ["BPF_OBJECT", "ConnectionOwners", "Sides", "side_fields", "side_text"]


def packed(address: Address) -> bytes:
    """4 bytes for IPv4 (an IPv4-mapped IPv6 address too: the kernel side keys it so), else 16."""
    raw = address if isinstance(address, bytes) else ipaddress.ip_address(address).packed
    if len(raw) == 16 and raw[:12] == bytes(10) + b"\xff\xff":
        return raw[12:]
    if len(raw) not in (4, 16):
        raise ValueError(f"not an IP address: {raw!r}")
    return raw


@dataclass(frozen=True, slots=True)
class Sides:
    """The two ends of one connection, each an :class:`Owner` (``status`` OWNER when known)."""
    client: Owner
    server: Owner


def side_text(owner: Owner) -> str:
    """A text column: ``comm[pid]`` and the container (else the cgroup), or why there is none."""
    if owner.status != OWNER:
        return SIDE_TEXT.get(owner.status, "unknown")
    from .container import describe

    where = describe(owner.container) if owner.container else (owner.cgroup or f"cgroup id {owner.cgroup_id}")
    return f"{owner.comm}[{owner.pid}] {where}"


def side_fields(owner: Owner) -> dict[str, object]:
    """JSON: pid, comm, cgroup, container (and runtime, pod) of one side, or nulls and why."""
    fields = owner.fields()
    if owner.status != OWNER:
        fields["owner"] = SIDE_TEXT.get(owner.status, "unknown")
    return fields


class ConnectionOwners:
    """Owners of connections' ends, from a running :class:`Tracker`'s maps (one made with
    ``connections=True``)."""

    def __init__(self, tracker: Tracker, sockets: SocketOwners | None = None) -> None:
        assert tracker.obj is not None and tracker.connections
        self.conns = tracker.obj.map("attrib_conns")
        self.netns_map = tracker.obj.map("attrib_netns")
        self.added = tracker.obj.map("attrib_netns_added")
        self.sockets = sockets or SocketOwners(tracker)
        self._namespaces: list[int] = []
        self._added = -1
        self._cache: dict[tuple[bytes, int, bytes, int], tuple[float, Sides]] = {}
        self.lookups = 0  # connections looked up in the maps (not answered from the cache)

    def sides(self, client: Address, client_port: int, server: Address, server_port: int) -> Sides:
        """The client's and the server's local owner, each "no local socket" when that end is
        not a socket of this host."""
        c, s = packed(client), packed(server)
        key = (c, client_port, s, server_port)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
        self.lookups += 1
        answer = Sides(self._end(c, client_port, s, server_port), self._end(s, server_port, c, client_port))
        if len(self._cache) >= CACHE_MAX:
            del self._cache[next(iter(self._cache))]
        self._cache.pop(key, None)  # re-inserted last: the oldest answers are first
        self._cache[key] = (now, answer)
        return answer

    def sides_of(self, client: str, server: str) -> Sides:
        """As :meth:`sides`, the ends written ``ADDR:PORT`` / ``[V6]:PORT`` (http's columns)."""
        return self.sides(*_split(client), *_split(server))

    def _end(self, local: bytes, local_port: int, remote: bytes, remote_port: int) -> Owner:
        found = self._find(local, local_port, remote, remote_port)
        if not found and self._refresh():  # a namespace new since the last look
            found = self._find(local, local_port, remote, remote_port)
        if not found:
            return Owner(NO_SOCKET)
        if len(found) > 1:
            return Owner(AMBIGUOUS)
        owner = self.sockets.owner(found[0])
        return owner if owner.status == OWNER else Owner(UNKNOWN_OWNER, found[0])

    def _find(self, local: bytes, local_port: int, remote: bytes, remote_port: int) -> list[int]:
        cookies = []
        for ns in self._namespaces:
            raw = self.conns.lookup(conn_key(ns, local, local_port, remote, remote_port))
            if raw is not None:
                cookies.append(int.from_bytes(raw[:8], "little"))
        return cookies

    def _refresh(self) -> bool:
        """Read the namespace set again if the kernel added one; whether it did."""
        raw = self.added.lookup(ctypes.c_uint32(0))
        added = int.from_bytes(raw[:8], "little") if raw else 0
        if added == self._added:
            return False
        self._added = added
        self._namespaces = [int.from_bytes(k, "little") for k in self.netns_map.keys()]  # noqa: SIM118 (a Map)
        return True


def _split(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), int(port)
