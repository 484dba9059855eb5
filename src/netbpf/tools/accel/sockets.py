"""The accelerated sockets: sockhash keys as the BPF side builds them, and listing them."""
from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from ...bpf.maps import Map
from ...errors import NetbpfError
from .layout import SO_NETNS_COOKIE, TCP_REASONS, AccelKey, SockState
from .pins import _present, default_pin_dir, map_keys

# -- keys ---------------------------------------------------------------------------------

def format_endpoint(ip: bytes, port: int) -> str:
    """``127.0.0.1:80`` for IPv4 (mapped) addresses, ``[::1]:80`` for IPv6."""
    addr = ipaddress.IPv6Address(bytes(ip))
    if addr.ipv4_mapped is not None:
        return f"{addr.ipv4_mapped}:{port}"
    return f"[{addr}]:{port}"


def key_of(local: tuple[str, int], remote: tuple[str, int], netns_cookie: int) -> AccelKey:
    """The sockhash key of the socket with this local and remote address (as the BPF side builds it)."""
    def v6(ip: str) -> bytes:
        addr = ipaddress.ip_address(ip)
        if addr.version == 4:
            return ipaddress.IPv6Address(f"::ffff:{addr}").packed
        return addr.packed
    key = AccelKey(netns=netns_cookie, local_port=local[1], remote_port=remote[1])
    key.local_ip[:] = list(v6(local[0]))
    key.remote_ip[:] = list(v6(remote[0]))
    return key


def netns_cookie_of_socket(sock: socket.socket) -> int:
    return int(struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0])


def netns_cookies() -> dict[int, str]:
    """Network namespace cookie -> label (host, ip-netns name, netns:[inode])."""
    from ... import netns

    def cookie() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            return netns_cookie_of_socket(s)
    found: dict[int, str] = {}
    for inode, path in netns.all_namespaces().items():
        try:
            found[netns.run_in(path, cookie)] = netns.label(inode)
        except (NetbpfError, OSError):
            continue
    return found


# -- connections ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Socket:
    netns: str
    local: str
    remote: str
    sends: str  # redirect / tcp (reason)
    small_run: int


def sockets(pin_dir: Path | None = None) -> list[Socket]:
    """Every socket in the sockhash, with how it sends now."""
    pin_dir = pin_dir or default_pin_dir()
    present = _present(pin_dir)
    if "sockhash" not in present:
        return []
    labels = netns_cookies()
    with Map.from_pin(present["sockhash"]) as sockhash:
        keys = [AccelKey.from_buffer_copy(k) for k in map_keys(sockhash)]
    states: dict[bytes, SockState] = {}
    if "state" in present:
        with Map.from_pin(present["state"]) as state_map:
            for k in keys:
                raw = state_map.lookup(k)
                if raw is not None:
                    states[bytes(k)] = SockState.from_buffer_copy(raw)
    out = []
    for k in sorted(keys, key=lambda k: (k.netns, min(k.local_port, k.remote_port), k.local_port)):
        st = states.get(bytes(k))
        out.append(Socket(
            netns=labels.get(k.netns, f"cookie {k.netns}"),
            local=format_endpoint(bytes(k.local_ip), k.local_port),
            remote=format_endpoint(bytes(k.remote_ip), k.remote_port),
            sends=TCP_REASONS.get(st.tcp_only, str(st.tcp_only)) if st else "tcp (no state)",
            small_run=st.small_run if st else 0,
        ))
    return out
