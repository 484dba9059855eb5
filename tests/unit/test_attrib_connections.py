"""A connection's two local ends from its addresses: found, not local, ambiguous, cached."""
from __future__ import annotations

import ctypes
import socket

from netbpf.attrib import connections
from netbpf.attrib.connections import (
    AMBIGUOUS,
    AttribConn,
    ConnectionOwners,
    conn_key,
    packed,
    side_fields,
    side_text,
)
from netbpf.attrib.container import container_of
from netbpf.attrib.tracker import NO_SOCKET, OWNER, Owner

ID = "cd" * 32


class FakeMap:
    def __init__(self, items: dict[bytes, bytes]) -> None:
        self.items_ = items
        self.lookups = 0

    def lookup(self, key: object) -> bytes | None:
        self.lookups += 1
        return self.items_.get(bytes(key))  # type: ignore[call-overload]

    def keys(self) -> list[bytes]:
        return list(self.items_)


class FakeSockets:
    def owner(self, cookie: int) -> Owner:
        path = f"/system.slice/docker-{ID}.scope"
        return Owner(OWNER, cookie, pid=cookie, comm=f"c{cookie}", cgroup=path, container=container_of(path))


def owners(conns: dict[bytes, int], namespaces: list[int]) -> ConnectionOwners:
    co = ConnectionOwners.__new__(ConnectionOwners)
    co.conns = FakeMap({k: v.to_bytes(8, "little") for k, v in conns.items()})  # type: ignore[assignment]
    co.netns_map = FakeMap({ns.to_bytes(8, "little"): b"\1\0\0\0" for ns in namespaces})  # type: ignore[assignment]
    co.added = FakeMap({bytes(ctypes.c_uint32(0)): len(namespaces).to_bytes(8, "little")})  # type: ignore[assignment]
    co.sockets = FakeSockets()  # type: ignore[assignment]
    co._namespaces, co._added, co._cache, co.lookups = [], -1, {}, 0
    return co


C, S = packed("10.0.1.2"), packed("10.0.1.1")


def test_key_is_the_kernel_layout_and_mapped_addresses_are_ipv4() -> None:
    key = AttribConn.from_buffer_copy(conn_key(7, C, 40000, S, 80))
    assert (key.netns, key.family, key.local_port, key.remote_port) == (7, socket.AF_INET, 40000, 80)
    assert bytes(key.local)[:4] == C and bytes(key.remote)[:4] == S and not any(bytes(key.local)[4:])
    assert packed("::ffff:10.0.1.2") == C and len(packed("fd00::1")) == 16


def test_both_ends_in_different_namespaces_are_found() -> None:
    co = owners({conn_key(1, C, 40000, S, 80): 11, conn_key(2, S, 80, C, 40000): 22}, [1, 2])
    sides = co.sides_of("10.0.1.2:40000", "10.0.1.1:80")
    assert (sides.client.pid, sides.server.pid) == (11, 22)
    assert side_text(sides.client) == f"c11[11] docker:{ID[:12]}"
    assert side_fields(sides.server)["container"] == ID


def test_an_end_that_is_no_local_socket_says_so() -> None:
    co = owners({conn_key(1, C, 40000, S, 80): 11}, [1])
    sides = co.sides("10.0.1.2", 40000, "10.0.1.1", 80)
    assert sides.client.status == OWNER and sides.server.status == NO_SOCKET
    assert side_text(sides.server) == "no local socket"
    assert side_fields(sides.server) == {"pid": None, "comm": None, "cgroup": None, "container": None,
                                         "owner": "no local socket"}


def test_the_same_addresses_in_two_namespaces_are_not_guessed_between() -> None:
    co = owners({conn_key(1, C, 40000, S, 80): 11, conn_key(2, C, 40000, S, 80): 12}, [1, 2])
    sides = co.sides("10.0.1.2", 40000, "10.0.1.1", 80)
    assert sides.client.status == AMBIGUOUS and side_fields(sides.client)["pid"] is None
    assert "ambiguous" in side_text(sides.client)


def test_a_connection_is_looked_up_once_per_cache_lifetime(monkeypatch: object) -> None:
    co = owners({conn_key(1, C, 40000, S, 80): 11, conn_key(1, S, 80, C, 40000): 22}, [1])
    for _ in range(100):
        co.sides_of("10.0.1.2:40000", "10.0.1.1:80")
    assert co.lookups == 1
    assert co.conns.lookups == 2  # type: ignore[attr-defined]
    now = [1e6]
    monkeypatch.setattr(connections.time, "monotonic", lambda: now[0])  # type: ignore[attr-defined]
    co.sides_of("10.0.1.2:40000", "10.0.1.1:80")
    now[0] += connections.CACHE_SECONDS + 0.1
    co.sides_of("10.0.1.2:40000", "10.0.1.1:80")
    assert co.lookups == 3


def test_a_namespace_added_later_is_read_again() -> None:
    co = owners({conn_key(5, C, 40000, S, 80): 11}, [1])
    assert co.sides("10.0.1.2", 40000, "10.0.1.1", 80).client.status == NO_SOCKET
    co.netns_map.items_[(5).to_bytes(8, "little")] = b"\1\0\0\0"  # type: ignore[attr-defined]
    co.added.items_[bytes(ctypes.c_uint32(0))] = (2).to_bytes(8, "little")  # type: ignore[attr-defined]
    co._cache.clear()
    assert co.sides("10.0.1.2", 40000, "10.0.1.1", 80).client.pid == 11
