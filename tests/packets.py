"""Frames built byte by byte for tests: Ethernet, VLAN, ARP, IPv4/IPv6, TCP/UDP/ICMP,
fragments, options, tunnels and truncated frames. Checksums are computed where a
receiver would check them; nothing here depends on netbpf's own parsers."""
from __future__ import annotations

import ipaddress
import struct

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
BROADCAST = b"\xff" * 6
IPV4_MCAST_MAC = bytes.fromhex("01005e000001")


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ether(payload: bytes, proto: int, src: bytes = MAC_A, dst: bytes = MAC_B,
          vlans: tuple[int, ...] = (), outer_tpid: int = 0x8100) -> bytes:
    tags = b""
    for n, vid in enumerate(vlans):
        tpid = outer_tpid if n == 0 and len(vlans) > 1 else 0x8100
        tags += struct.pack("!HH", tpid, vid)
    return dst + src + tags + struct.pack("!H", proto) + payload


def ipv4(payload: bytes, proto: int, src: str = "10.0.0.1", dst: str = "10.0.0.2", ttl: int = 64,
         ident: int = 1, flags_frag: int = 0, options: bytes = b"", tos: int = 0,
         total_len: int | None = None) -> bytes:
    ihl = 5 + len(options) // 4
    length = total_len if total_len is not None else ihl * 4 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, length, ident, flags_frag, ttl, proto, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed) + options
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6(payload: bytes, next_header: int, src: str = "fd00::1", dst: str = "fd00::2",
         hop_limit: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), next_header, hop_limit,
                       ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed) + payload


def _l4_pseudo(src: str, dst: str, proto: int, segment: bytes) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + struct.pack("!BBH", 0, proto, len(segment)) + segment
    return s.packed + d.packed + struct.pack("!IxxxB", len(segment), proto) + segment


def tcp(sport: int, dport: int, flags: str = "S", payload: bytes = b"", seq: int = 1000, ack: int = 0,
        window: int = 65535, src: str = "10.0.0.1", dst: str = "10.0.0.2", options: bytes = b"") -> bytes:
    bits = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
    value = sum(bits[f] for f in flags)
    offset = (20 + len(options)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset << 4, value, window, 0, 0) + options
    csum = checksum(_l4_pseudo(src, dst, 6, header + payload))
    return header[:16] + struct.pack("!H", csum) + header[18:] + payload


def udp(sport: int, dport: int, payload: bytes = b"", src: str = "10.0.0.1", dst: str = "10.0.0.2") -> bytes:
    header = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    csum = checksum(_l4_pseudo(src, dst, 17, header + payload)) or 0xFFFF
    return header[:6] + struct.pack("!H", csum) + payload


def icmp(icmp_type: int, code: int = 0, rest: bytes = b"\x00\x01\x00\x01", payload: bytes = b"") -> bytes:
    body = struct.pack("!BBH", icmp_type, code, 0) + rest + payload
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def icmp6(icmp_type: int, src: str = "fd00::1", dst: str = "fd00::2", code: int = 0,
          rest: bytes = b"\x00\x01\x00\x01") -> bytes:
    body = struct.pack("!BBH", icmp_type, code, 0) + rest
    csum = checksum(_l4_pseudo(src, dst, 58, body))
    return body[:2] + struct.pack("!H", csum) + body[4:]


def arp(op: int = 1, sender: str = "10.0.0.1", target: str = "10.0.0.2") -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, MAC_A, ipaddress.IPv4Address(sender).packed,
                       b"\0" * 6, ipaddress.IPv4Address(target).packed)


def v4_tcp(sport: int, dport: int, flags: str = "S", payload: bytes = b"", src: str = "10.0.0.1",
           dst: str = "10.0.0.2", **kw: object) -> bytes:
    return ether(ipv4(tcp(sport, dport, flags, payload, src=src, dst=dst), 6, src, dst), 0x0800, **kw)  # type: ignore[arg-type]


def v4_udp(sport: int, dport: int, payload: bytes = b"", src: str = "10.0.0.1", dst: str = "10.0.0.2",
           **kw: object) -> bytes:
    return ether(ipv4(udp(sport, dport, payload, src, dst), 17, src, dst), 0x0800, **kw)  # type: ignore[arg-type]


def v6_tcp(sport: int, dport: int, flags: str = "S", payload: bytes = b"", src: str = "fd00::1",
           dst: str = "fd00::2") -> bytes:
    return ether(ipv6(tcp(sport, dport, flags, payload, src=src, dst=dst), 6, src, dst), 0x86DD)


def v6_udp(sport: int, dport: int, payload: bytes = b"", src: str = "fd00::1", dst: str = "fd00::2") -> bytes:
    return ether(ipv6(udp(sport, dport, payload, src, dst), 17, src, dst), 0x86DD)


def vxlan(inner: bytes, vni: int = 101, src: str = "172.16.1.1", dst: str = "172.16.1.2") -> bytes:
    return v4_udp(40000, 4789, struct.pack("!II", 0x08000000, vni << 8) + inner, src, dst)


def corpus() -> dict[str, bytes]:
    """A named set of frames that exercises every pcap-filter primitive for Ethernet."""
    c: dict[str, bytes] = {}
    c["tcp-syn"] = v4_tcp(40000, 80, "S")
    c["tcp-synack"] = v4_tcp(80, 40000, "SA", src="10.0.0.2", dst="10.0.0.1")
    c["tcp-http-get"] = v4_tcp(40000, 80, "PA", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    c["tcp-fin"] = v4_tcp(40000, 80, "FA")
    c["tcp-rst"] = v4_tcp(443, 51000, "R", src="192.168.1.10", dst="10.0.0.9")
    c["tcp-https-data"] = v4_tcp(51000, 443, "A", b"\x17\x03\x03" + bytes(200), src="10.0.0.9",
                                 dst="192.168.1.10")
    c["tcp-urg-ece-cwr"] = v4_tcp(2000, 3000, "UEC", b"x")
    c["tcp-big"] = v4_tcp(40000, 8080, "A", bytes(1400))
    c["tcp-options"] = ether(ipv4(tcp(1234, 22, "S", options=b"\x02\x04\x05\xb4\x01\x03\x03\x07"), 6), 0x0800)
    c["udp-dns"] = v4_udp(53000, 53, b"\x12\x34" + bytes(30))
    c["udp-dns-reply"] = v4_udp(53, 53000, bytes(60), src="10.0.0.2", dst="10.0.0.1")
    c["udp-highport"] = v4_udp(33434, 65000, bytes(10), src="172.16.5.5", dst="172.16.9.9")
    c["udp-broadcast"] = ether(ipv4(udp(68, 67, bytes(240), "0.0.0.0", "255.255.255.255"), 17, "0.0.0.0",
                                    "255.255.255.255"), 0x0800, dst=BROADCAST)
    c["udp-multicast"] = ether(ipv4(udp(5353, 5353, bytes(20), "10.0.0.1", "224.0.0.251"), 17, "10.0.0.1",
                                    "224.0.0.251", ttl=1), 0x0800, dst=IPV4_MCAST_MAC)
    c["icmp-echo"] = ether(ipv4(icmp(8, payload=bytes(56)), 1), 0x0800)
    c["icmp-reply"] = ether(ipv4(icmp(0, payload=bytes(56)), 1, "10.0.0.2", "10.0.0.1", ttl=3), 0x0800)
    c["icmp-unreach"] = ether(ipv4(icmp(3, 3, b"\0\0\0\0", ipv4(udp(1, 2), 17)[:28]), 1), 0x0800)
    c["ip-options"] = ether(ipv4(tcp(1111, 80, "S"), 6, options=b"\x94\x04\x00\x00"), 0x0800)
    c["frag-first"] = ether(ipv4(udp(5000, 53, bytes(100))[:48], 17, flags_frag=0x2000, total_len=68), 0x0800)
    c["frag-middle"] = ether(ipv4(bytes(40), 17, flags_frag=0x2000 | 6), 0x0800)
    c["frag-last"] = ether(ipv4(bytes(40), 6, flags_frag=11), 0x0800)
    c["ipip"] = ether(ipv4(ipv4(tcp(40000, 80, "S"), 6, "192.168.10.2", "192.168.20.3"), 4,
                           "172.16.1.1", "172.16.2.1"), 0x0800)
    c["igmp"] = ether(ipv4(bytes([0x16, 0, 0, 0]) + bytes(4), 2, dst="224.0.0.22", ttl=1), 0x0800,
                      dst=IPV4_MCAST_MAC)
    c["sctp"] = ether(ipv4(struct.pack("!HHII", 2905, 2905, 0, 0) + bytes(16), 132), 0x0800)
    c["esp"] = ether(ipv4(bytes(32), 50), 0x0800)
    c["gre"] = ether(ipv4(struct.pack("!HH", 0, 0x0800) + ipv4(udp(1, 2), 17), 47), 0x0800)
    c["vxlan"] = vxlan(v4_tcp(40000, 80, "S", src="10.244.1.5", dst="10.244.2.7"))
    c["arp-request"] = ether(arp(1), 0x0806, dst=BROADCAST)
    c["arp-reply"] = ether(arp(2, "10.0.0.2", "10.0.0.1"), 0x0806)
    c["rarp"] = ether(arp(3), 0x8035, dst=BROADCAST)
    c["vlan-tcp"] = v4_tcp(40000, 80, "S", vlans=(100,))
    c["vlan-udp"] = v4_udp(5000, 53, bytes(20), vlans=(200,))
    c["vlan-arp"] = ether(arp(1), 0x0806, dst=BROADCAST, vlans=(100,))
    c["qinq-tcp"] = v4_tcp(40000, 80, "PA", b"hi", vlans=(10, 100), outer_tpid=0x88A8)
    c["v6-tcp-syn"] = v6_tcp(40000, 80, "S")
    c["v6-tcp-data"] = v6_tcp(80, 40000, "PA", bytes(100), src="fd00::2", dst="fd00::1")
    c["v6-udp"] = v6_udp(5000, 53, bytes(30))
    c["v6-icmp-echo"] = ether(ipv6(icmp6(128), 58), 0x86DD)
    c["v6-icmp-ns"] = ether(ipv6(icmp6(135, dst="ff02::1:ff00:2", rest=bytes(20)), 58, dst="ff02::1:ff00:2",
                                 hop_limit=255), 0x86DD, dst=bytes.fromhex("3333ff000002"))
    c["v6-hopbyhop-tcp"] = ether(ipv6(bytes([6, 0, 5, 2, 0, 0, 1, 0]) + tcp(1000, 443, "S",
                                      src="fd00::1", dst="fd00::2"), 0), 0x86DD)
    c["v6-frag"] = ether(ipv6(bytes([17, 0, 0, 1, 0, 0, 0, 7]) + udp(1, 53, bytes(8), "fd00::1", "fd00::2"),
                              44), 0x86DD)
    c["v6-in-v4"] = ether(ipv4(ipv6(udp(1, 2, b"", "2001:db8::1", "2001:db8::2"), 17, "2001:db8::1",
                                    "2001:db8::2"), 41), 0x0800)
    c["llc-stp"] = (bytes.fromhex("0180c2000000") + MAC_A + struct.pack("!H", 38)  # 802.3 length
                    + bytes([0x42, 0x42, 0x03]) + bytes(35))
    c["trunc-ip-header"] = v4_tcp(40000, 80, "S")[:14 + 12]
    c["trunc-tcp-header"] = v4_tcp(40000, 80, "S")[:14 + 20 + 8]
    c["trunc-after-ports"] = v4_tcp(40000, 80, "S")[:14 + 20 + 4]
    c["trunc-v6"] = v6_tcp(40000, 80, "S")[:14 + 30]
    c["trunc-vlan"] = v4_tcp(40000, 80, "S", vlans=(100,))[:20]
    c["ether-only"] = ether(b"", 0x88B5)
    c["jumbo-udp"] = v4_udp(9000, 9001, bytes(3000))
    return c
