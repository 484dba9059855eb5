"""How kernel numbers read to a person: namespaces, interfaces, protocols, flows, time.

Everything here is cached: a drop storm repeats the same few namespaces,
interfaces and flows, and the reader must keep up with it.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable

from .. import netns
from ..errors import NetbpfError

PROTOCOLS = {
    1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp",
    51: "ah", 58: "icmp6", 89: "ospf", 112: "vrrp", 132: "sctp", 136: "udplite", 0: "hopopt",
}
PROTOCOL_NUMBERS = {name: number for number, name in PROTOCOLS.items()} | {"icmpv6": 58}
ETHERTYPES = {0x0800: "ip", 0x86DD: "ip6", 0x0806: "arp", 0x8100: "vlan", 0x88A8: "qinq",
              0x8847: "mpls", 0x88CC: "lldp", 0x8035: "rarp"}
TCP_FLAGS = "FSRP.UEW"  # bit order, as tcpdump prints them: [S.] is SYN+ACK
TCP_STATES = {
    1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
    6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING",
    12: "NEW_SYN_RECV", 13: "BOUND_INACTIVE",
}


def tcp_flags(bits: int) -> str:
    return "".join(c for i, c in enumerate(TCP_FLAGS) if bits >> i & 1)


def protocol_name(family: int, l4_proto: int, eth_proto: int = 0) -> str:
    if family:
        return PROTOCOLS.get(l4_proto, str(l4_proto))
    if eth_proto:
        return ETHERTYPES.get(eth_proto, f"0x{eth_proto:04x}")
    return ""


def address(raw: bytes) -> str:
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if len(raw) == 16:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return ""


def endpoint(raw: bytes, port: int, with_port: bool = True) -> str:
    text = address(raw)
    if not with_port or not text:
        return text
    return f"[{text}]:{port}" if len(raw) == 16 else f"{text}:{port}"


def has_ports(l4_proto: int) -> bool:
    return l4_proto in (6, 17, 132, 136)


def parse_protocol(text: str) -> int:
    """``tcp``, ``udp``, ``icmp``, ``icmp6``... or a number."""
    from ..errors import UsageError

    key = text.lower()
    if key in PROTOCOL_NUMBERS:
        return PROTOCOL_NUMBERS[key]
    if key.isascii() and key.isdigit() and 0 <= int(key) < 256:
        return int(key)
    raise UsageError(f"unknown protocol {text!r} (tcp, udp, icmp, icmp6, sctp or a number 0-255)")


class Clock:
    """bpf_ktime_get_ns() (CLOCK_MONOTONIC) to wall-clock text, one strftime per second."""

    def __init__(self) -> None:
        self.offset_ns = time.time_ns() - time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        self.offset = self.offset_ns / 1e9
        self._second = -1
        self._prefix = ""

    def epoch(self, ts_ns: int) -> float:
        return (self.offset_ns + ts_ns) / 1e9

    def text(self, ts_ns: int) -> str:
        second, ns = divmod(self.offset_ns + ts_ns, 1_000_000_000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%H:%M:%S", time.localtime(second))
        return f"{self._prefix}.{ns // 1000:06d}"


class Names:
    """Namespace labels and interface names, resolved once each.

    An ifindex means something only inside its namespace: the name is looked
    up from a thread that entered that namespace (``netns.run_in``).
    """

    def __init__(self) -> None:
        self._labels: dict[int, str] = {}
        self._ifnames: dict[tuple[int, int], str] = {}
        self._paths: dict[int, str] = {}
        self._here = netns.current_inode()

    def netns(self, inode: int) -> str:
        if not inode:
            return ""
        label = self._labels.get(inode)
        if label is None:
            label = self._labels[inode] = netns.label(inode)
        return label

    def interface(self, inode: int, ifindex: int) -> str:
        if not ifindex:
            return ""
        key = (inode, ifindex)
        name = self._ifnames.get(key)
        if name is None:
            name = self._ifnames[key] = self._resolve(inode, ifindex)
        return name

    def _resolve(self, inode: int, ifindex: int) -> str:
        lookup: Callable[[], str] = lambda: socket.if_indextoname(ifindex)  # noqa: E731
        try:
            if inode in (0, self._here):
                return lookup()
            path = self._paths.get(inode)
            if path is None:
                self._paths = netns.all_namespaces()
                path = self._paths.get(inode)
            if path is None:
                return f"if{ifindex}"
            return netns.run_in(path, lookup)
        except (OSError, NetbpfError):  # gone, or no longer root enough to enter it (-Z)
            return f"if{ifindex}"

    def prime(self) -> None:
        """Name every interface of every namespace now, while root: after the
        privilege drop (-Z) other namespaces cannot be entered; an interface
        that appears later reads ``if<index>``."""
        try:
            self._paths = netns.all_namespaces()
        except OSError:
            return
        for inode, path in self._paths.items():
            self.netns(inode)
            try:
                pairs = socket.if_nameindex() if inode == self._here else netns.run_in(path, socket.if_nameindex)
            except (OSError, NetbpfError):
                continue
            for ifindex, name in pairs:
                self._ifnames[(inode, ifindex)] = name
