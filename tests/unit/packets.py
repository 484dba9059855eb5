"""Frames built by hand for tests: Ethernet, VLAN, ARP, IPv4/IPv6, ICMP/ICMPv6, TCP, UDP.

Checksums are computed (tcpdump does not check them without -v, tshark may).
"""
from __future__ import annotations

import socket
import struct

from ..packets import checksum

CLIENT_MAC = bytes.fromhex("020000000002")
SERVER_MAC = bytes.fromhex("020000000001")


def ether(payload: bytes, ethertype: int, vlans: tuple[int, ...] = (), src: bytes = CLIENT_MAC,
          dst: bytes = SERVER_MAC) -> bytes:
    tags = b"".join(struct.pack("!HH", 0x8100, vid) for vid in vlans)
    return dst + src + tags + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1, ttl: int = 64,
         frag: int = 0, total: int | None = None) -> bytes:
    length = 20 + len(payload) if total is None else total
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, ident, frag, ttl, proto, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes, hlim: int = 64) -> bytes:
    return (struct.pack("!IHBB", 6 << 28, len(payload), next_header, hlim)
            + socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + payload)


def tcp(sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"",
        win: int = 502, options: bytes = b"", urg: int = 0) -> bytes:
    options += bytes(-len(options) % 4)
    offset = (20 + len(options)) // 4
    return (struct.pack("!HHIIHHHH", sport, dport, seq, ack, offset << 12 | flags, win, 0, urg)
            + options + payload)


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(icmp_type: int, code: int, rest: bytes) -> bytes:
    body = struct.pack("!BBH", icmp_type, code, 0) + rest
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def echo(ident: int, seq: int, data: bytes = bytes(56), request: bool = True) -> bytes:
    return icmp(8 if request else 0, 0, struct.pack("!HH", ident, seq) + data)


def icmp6(icmp_type: int, code: int, rest: bytes) -> bytes:
    return struct.pack("!BBH", icmp_type, code, 0) + rest


def arp(op: int, sha: bytes, spa: str, tha: bytes, tpa: str) -> bytes:
    return (struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + socket.inet_aton(spa) + tha
            + socket.inet_aton(tpa))


def tcp4(src: str, dst: str, *args: object, **kwargs: object) -> bytes:
    return ether(ipv4(src, dst, 6, tcp(*args, **kwargs)), 0x0800)  # type: ignore[arg-type]
