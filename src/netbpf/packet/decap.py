"""Frames in, TCP segments out: IPv4/IPv6, plain or inside IPIP and VXLAN.

The same headers the socket filter of ``netbpf http`` looks through, read
again in Python to find the TCP segment and the tunnel it came in:

    [Ethernet [802.1Q]] IPv4|IPv6 [ext headers]
        ( IPIP (4) | IPv6-in-IP (41) | UDP:VXLAN Ethernet [802.1Q] )  at most twice
        TCP payload

Nothing here does I/O and nothing raises on bad input: a frame that is not
a whole TCP segment (too short, another protocol, a later IP fragment) gives
``None``. Addresses stay raw bytes (4 or 16) until something prints them.
"""
from __future__ import annotations

import socket
import struct
from typing import NamedTuple

ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x86DD, 0x8100, 0x88A8
IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6 = 4, 6, 17, 41
IPV6_EXT_HEADERS = {0, 43, 44, 51, 60}  # hop-by-hop, routing, fragment, AH, destination options
MAX_TUNNELS = 2
MAX_IPV6_EXT = 4
VXLAN_PORTS = frozenset({4789, 8472})

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_ipv4 = struct.Struct("!BxH2xHxB2x4s4s")  # version/ihl, total length, frag, protocol, src, dst
_ipv6 = struct.Struct("!I H B x 16s 16s")  # version..flow, payload length, next header, src, dst
_tcp = struct.Struct("!HHIIBB")  # ports, seq, ack, data offset, flags
_udp_dport = struct.Struct("!2xH")
_ipv4_tcp = struct.Struct("!BxH2xHxB2x4s4sHHIIBB")  # IPv4 without options, then TCP: the usual frame
_ipv6_tcp = struct.Struct("!IHBx16s16sHHIIBB")
_u16 = struct.Struct("!H")


class Tunnel(NamedTuple):
    """The outermost tunnel a segment came through."""

    kind: str  # "ipip" (also IPv6-in-IP) or "vxlan"
    src: bytes
    dst: bytes
    vni: int | None = None

    def __str__(self) -> str:
        text = f"{self.kind} {format_ip(self.src)}>{format_ip(self.dst)}"
        return text if self.vni is None else f"{text} vni {self.vni}"


class Segment(NamedTuple):
    """One TCP segment. ``payload`` is what was captured; ``missing`` is how many
    more payload bytes the IP header promised but the capture did not hold."""

    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    payload: bytes
    missing: int = 0
    tunnel: Tunnel | None = None
    ts: float = 0.0


def format_ip(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def format_endpoint(raw: bytes, port: int) -> str:
    return f"{format_ip(raw)}:{port}" if len(raw) == 4 else f"[{format_ip(raw)}]:{port}"


def decode_ip(frame: bytes | memoryview, offset: int = 0, l3: int = 0, ts: float = 0.0,
              vxlan_ports: frozenset[int] = VXLAN_PORTS) -> Segment | None:
    """The TCP segment in a frame that starts with an IP header at ``offset``.

    ``l3`` is the ethertype of that header (``ETH_P_IP``/``ETH_P_IPV6``), or 0
    to read it from the version nibble.
    """
    try:
        return _decode(frame if type(frame) is bytes else bytes(frame), offset, l3, ts, vxlan_ports)
    except (struct.error, IndexError, ValueError):
        return None


def decode_ethernet(frame: bytes | memoryview, ts: float = 0.0,
                    vxlan_ports: frozenset[int] = VXLAN_PORTS) -> Segment | None:
    """The TCP segment of an Ethernet frame (802.1Q/802.1ad tags skipped)."""
    try:
        data = frame if type(frame) is bytes else bytes(frame)
        offset, l3 = _ethernet(data, 0, max_tags=2)
        return _decode(data, offset, l3, ts, vxlan_ports)
    except (struct.error, IndexError, ValueError):
        return None


def _ethernet(view: bytes, offset: int, max_tags: int = 1) -> tuple[int, int]:
    (l3,) = _u16.unpack_from(view, offset + 12)
    offset += 14
    for _ in range(max_tags):
        if l3 != ETH_P_8021Q and l3 != ETH_P_8021AD:
            break
        (l3,) = _u16.unpack_from(view, offset + 2)
        offset += 4
    return offset, l3


def _decode(view: bytes, offset: int, l3: int, ts: float,
            vxlan_ports: frozenset[int]) -> Segment | None:
    # Plain TCP over IPv4 (no options) or IPv6 (no extension header): one unpack.
    first = view[offset] >> 4
    if first == 4 and (l3 == ETH_P_IP or not l3) and view[offset] == 0x45 and view[offset + 9] == 6:
        _, total, frag, _, src, dst, sport, dport, seq, ack, doff, flags = _ipv4_tcp.unpack_from(view, offset)
        if not frag & 0x1FFF and doff >> 4 >= 5:
            end, start = offset + total, offset + 20 + (doff >> 4) * 4
            captured = min(end, len(view))
            if start <= captured:
                return Segment(src, dst, sport, dport, seq, ack, flags, view[start:captured],
                               end - captured, None, ts)
    elif first == 6 and (l3 == ETH_P_IPV6 or not l3) and view[offset + 6] == 6:
        _, plen, _, src, dst, sport, dport, seq, ack, doff, flags = _ipv6_tcp.unpack_from(view, offset)
        if plen and doff >> 4 >= 5:
            end, start = offset + 40 + plen, offset + 40 + (doff >> 4) * 4
            captured = min(end, len(view))
            if start <= captured:
                return Segment(src, dst, sport, dport, seq, ack, flags, view[start:captured],
                               end - captured, None, ts)
    tunnel: Tunnel | None = None
    size = len(view)
    for depth in range(MAX_TUNNELS + 1):
        if not l3:
            version = view[offset] >> 4
            l3 = ETH_P_IP if version == 4 else ETH_P_IPV6 if version == 6 else 0
        if l3 == ETH_P_IP:
            vihl, total, frag, proto, src, dst = _ipv4.unpack_from(view, offset)
            if vihl >> 4 != 4 or vihl & 0xF < 5 or frag & 0x1FFF:
                return None
            end = offset + total
            offset += (vihl & 0xF) * 4
        elif l3 == ETH_P_IPV6:
            first, plen, proto, src, dst = _ipv6.unpack_from(view, offset)
            if first >> 28 != 6:
                return None
            end = offset + 40 + plen if plen else size  # 0: jumbogram (BIG TCP)
            offset += 40
            for _ in range(MAX_IPV6_EXT):
                if proto not in IPV6_EXT_HEADERS:
                    break
                nxt, hlen = view[offset], view[offset + 1]
                if proto == 44:
                    if _u16.unpack_from(view, offset + 2)[0] & 0xFFF8:
                        return None  # a later fragment: no TCP header in it
                    offset += 8
                elif proto == 51:
                    offset += (hlen + 2) * 4
                else:
                    offset += (hlen + 1) * 8
                proto = nxt
        else:
            return None
        if end < offset:
            return None
        if depth < MAX_TUNNELS:
            if proto in (IPPROTO_IPIP, IPPROTO_IPV6):
                tunnel = tunnel or Tunnel("ipip", src, dst)
                l3 = ETH_P_IP if proto == IPPROTO_IPIP else ETH_P_IPV6
                continue
            if proto == IPPROTO_UDP:
                (dport,) = _udp_dport.unpack_from(view, offset)
                if dport in vxlan_ports and view[offset + 8] & 0x08:
                    vni = int.from_bytes(view[offset + 12:offset + 15], "big")
                    tunnel = tunnel or Tunnel("vxlan", src, dst, vni)
                    offset, l3 = _ethernet(view, offset + 16)
                    continue
        if proto != IPPROTO_TCP:
            return None
        sport, dport, seq, ack, doff, flags = _tcp.unpack_from(view, offset)
        start = offset + (doff >> 4) * 4
        if doff >> 4 < 5 or start > end:
            return None
        captured = min(end, size)
        if start > captured:
            return None  # options cut off: nothing trustworthy in it
        return Segment(src, dst, sport, dport, seq, ack, flags,
                       view[start:captured], end - captured, tunnel, ts)  # a copy: frames are small
    return None
