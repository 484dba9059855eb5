"""Frames and TCP conversations built from scratch, for the tests of ``netbpf http``.

Nothing here comes from the code under test: headers are packed by hand
(with real checksums, so that tcpdump and the kernel accept them too).
"""
from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .packets import checksum

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def ipv4(src: str, dst: str, proto: int, payload: bytes, frag: int = 0, ident: int = 1) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
                         _ip(src), _ip(dst))
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes, ext: bytes = b"") -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(ext) + len(payload), next_header, 64,
                       _ip(src), _ip(dst)) + ext + payload


def ip(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    if ":" in src:
        return ipv6(src, dst, proto, payload)
    return ipv4(src, dst, proto, payload)


def _pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    if ":" in src:
        return _ip(src) + _ip(dst) + struct.pack("!IxxxB", length, proto)
    return _ip(src) + _ip(dst) + struct.pack("!xBH", proto, length)


def tcp(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
        payload: bytes = b"", options: bytes = b"", window: int = 65535) -> bytes:
    doff = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, doff << 4,
                         flags, window, 0, 0) + options
    csum = checksum(_pseudo(src, dst, 6, len(header) + len(payload)) + header + payload)
    return header[:16] + struct.pack("!H", csum) + header[18:] + payload


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    header = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    csum = checksum(_pseudo(src, dst, 17, 8 + len(payload)) + header + payload) or 0xFFFF
    return header[:6] + struct.pack("!H", csum) + payload


def ethernet(payload: bytes, ethertype: int, dst: bytes = b"\x02\0\0\0\0\x02",
             src: bytes = b"\x02\0\0\0\0\x01", vlan: int | None = None) -> bytes:
    if vlan is not None:
        return dst + src + struct.pack("!HHH", 0x8100, vlan, ethertype) + payload
    return dst + src + struct.pack("!H", ethertype) + payload


def ethertype_of(packet: bytes) -> int:
    return 0x0800 if packet[0] >> 4 == 4 else 0x86DD


# -- encapsulations: IP packet in, IP packet out --------------------------------------------
Wrap = Callable[[bytes], bytes]


def plain(packet: bytes) -> bytes:
    return packet


def ipip(outer_src: str = "192.0.2.1", outer_dst: str = "192.0.2.2") -> Wrap:
    """IPIP (proto 4) or IPv6-in-IP (proto 41), over IPv4 or IPv6 as the addresses say."""
    def wrap(packet: bytes) -> bytes:
        proto = 4 if packet[0] >> 4 == 4 else 41
        return ip(outer_src, outer_dst, proto, packet)
    return wrap


def vxlan(vni: int = 101, outer_src: str = "172.16.1.1", outer_dst: str = "172.16.1.2",
          port: int = 4789, vlan: int | None = None) -> Wrap:
    def wrap(packet: bytes) -> bytes:
        inner = ethernet(packet, ethertype_of(packet), vlan=vlan)
        header = struct.pack("!B3xI", 0x08, vni << 8)
        return ip(outer_src, outer_dst, 17, udp(outer_src, outer_dst, 54321, port, header + inner))
    return wrap


# -- a TCP conversation --------------------------------------------------------------------
@dataclass(frozen=True)
class Pkt:
    """One TCP segment of a conversation, before it is packed."""

    direction: int  # 0: client to server
    flags: int
    seq: int
    ack: int
    payload: bytes = b""


@dataclass
class TcpFlow:
    """The segments of one TCP connection, in the order they are sent."""

    client: tuple[str, int] = ("10.0.1.2", 40000)
    server: tuple[str, int] = ("10.0.11.2", 8080)
    isn: tuple[int, int] = (1000, 0xFFFFF000)  # the server's wraps around 2**32 soon
    next_seq: list[int] = field(default_factory=list)
    packets: list[Pkt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.next_seq = [self.isn[0], self.isn[1]]

    def emit(self, direction: int, flags: int, payload: bytes = b"") -> None:
        self.packets.append(Pkt(direction, flags, self.next_seq[direction],
                                self.next_seq[1 - direction] if flags & ACK else 0, payload))
        self.next_seq[direction] = (self.next_seq[direction] + len(payload)
                                    + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def handshake(self) -> TcpFlow:
        self.emit(0, SYN)
        self.emit(1, SYN | ACK)
        self.emit(0, ACK)
        return self

    def send(self, direction: int, data: bytes, sizes: Iterable[int] | None = None) -> TcpFlow:
        """Data in segments of the given sizes (default: 1460 bytes each)."""
        for chunk in split(data, sizes if sizes is not None else [1460] * (len(data) // 1460 + 1)):
            if chunk:
                self.emit(direction, ACK | PSH, chunk)
        return self

    def fin(self, direction: int) -> TcpFlow:
        self.emit(direction, FIN | ACK)
        return self

    def rst(self, direction: int) -> TcpFlow:
        self.emit(direction, RST | ACK)
        return self

    def render(self, pkt: Pkt, wrap: Wrap = plain) -> bytes:
        """The IP packet of one segment (wrapped in a tunnel by ``wrap``)."""
        a, b = (self.client, self.server) if pkt.direction == 0 else (self.server, self.client)
        segment = tcp(a[0], b[0], a[1], b[1], pkt.seq, pkt.ack, pkt.flags, pkt.payload)
        return wrap(ip(a[0], b[0], 6, segment))


def split(data: bytes, sizes: Iterable[int]) -> Iterable[bytes]:
    pos = 0
    for size in sizes:
        if pos >= len(data):
            return
        yield data[pos:pos + size]
        pos += size
    if pos < len(data):
        yield data[pos:]


def random_sizes(rng: random.Random, total: int, largest: int = 3000) -> list[int]:
    sizes = []
    while total > 0:
        size = rng.randint(1, largest)
        sizes.append(size)
        total -= size
    return sizes


def runs(packets: list[Pkt]) -> list[list[Pkt]]:
    """Maximal runs of consecutive segments in the same direction."""
    out: list[list[Pkt]] = []
    for pkt in packets:
        if (out and out[-1][0].direction == pkt.direction and not pkt.flags & (SYN | RST)
                and not out[-1][-1].flags & RST):
            out[-1].append(pkt)
        else:
            out.append([pkt])
    return out


def reordered(packets: list[Pkt], rng: random.Random) -> list[Pkt]:
    """Each run shuffled: what a receiver sees when the network reorders, while
    nothing is acknowledged before it was sent."""
    out: list[Pkt] = []
    for run in runs(packets):
        run = list(run)
        rng.shuffle(run)
        out += run
    return out


def retransmitted(packets: list[Pkt], rng: random.Random, share: float = 0.3) -> list[Pkt]:
    """Some segments sent again later in their run, some again merged with the next one
    (a retransmission cut at other boundaries)."""
    out: list[Pkt] = []
    first = next((p for p in packets if p.payload), None)  # at least this one is sent twice
    for run in runs(packets):
        run = list(run)
        extra: list[Pkt] = []
        for i, pkt in enumerate(run):
            if pkt.payload and (rng.random() < share or pkt is first):
                extra.append(pkt)
            nxt = run[i + 1] if i + 1 < len(run) else None
            if (nxt is not None and pkt.payload and nxt.payload and rng.random() < share
                    and len(pkt.payload) + len(nxt.payload) < 65000
                    and (pkt.seq + len(pkt.payload)) & 0xFFFFFFFF == nxt.seq):
                # Sent again after both: it acknowledges what the later one did.
                extra.append(Pkt(pkt.direction, ACK | PSH, pkt.seq, nxt.ack, pkt.payload + nxt.payload))
        for pkt in extra:
            run.insert(rng.randint(run.index(pkt) + 1 if pkt in run else 0, len(run)), pkt)
        out += run
    return out
