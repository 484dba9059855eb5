"""One line per packet, as ``tcpdump -nn`` prints it (no -e, no -v), and the same as fields.

Covered: Ethernet (VLAN tags are skipped, as tcpdump does without -e), ARP,
IPv4 (fragments), IPv6 (hop-by-hop, destination options, routing, fragment
headers), ICMP, ICMPv6 (echo, errors, neighbour discovery, MLD), TCP (flags,
relative sequence numbers per conversation as tcpdump computes them, ack,
window, options, payload length), UDP, and VXLAN with its inner frame.
tcpdump decodes many application protocols after that; here a line ends
with the transport fields ("length N").

    printer = TcpdumpPrinter()
    text, fields = printer.describe(frame, wire_len)   # fields: for --json
"""
from __future__ import annotations

import ipaddress
import struct
import time
from typing import Any

ETH_P_IP, ETH_P_ARP, ETH_P_IPV6 = 0x0800, 0x0806, 0x86DD
VLAN_TYPES = {0x8100, 0x88A8, 0x9100, 0x9200}
VXLAN_PORTS = {4789, 8472}
TCP_FLAGS = ((0x01, "F"), (0x02, "S"), (0x04, "R"), (0x08, "P"), (0x10, "."), (0x20, "U"),
             (0x40, "E"), (0x80, "W"), (0x100, "e"))
TCP_OPTIONS = {0: "eol", 1: "nop", 2: "mss", 3: "wscale", 4: "sackOK", 5: "sack", 6: "echo",
               7: "echoreply", 8: "TS", 11: "cc", 12: "ccnew", 13: "ccecho", 19: "md5", 20: "scps",
               28: "uto", 29: "tcp-ao", 30: "mptcp", 34: "tfo", 254: "exp"}
ETHERTYPES = {0x0800: "IPv4", 0x0806: "ARP", 0x86DD: "IPv6", 0x8100: "802.1Q", 0x88A8: "802.1Q-QinQ",
              0x8035: "Reverse ARP", 0x88CC: "LLDP", 0x8847: "MPLS unicast", 0x8848: "MPLS multicast",
              0x8863: "PPPoE D", 0x8864: "PPPoE S", 0x88E5: "MACsec", 0x9000: "Loopback"}
IPPROTO_NAMES = {0: "HBH", 1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPv6",
                 43: "Routing", 44: "frag", 47: "GRE", 50: "ESP", 51: "AH", 58: "ICMPv6",
                 59: "none", 60: "DSTOPT", 89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP"}
ICMP_TYPES = {0: "echo reply", 4: "source quench", 8: "echo request", 10: "router solicitation",
              13: "time stamp request", 14: "time stamp reply", 15: "information request",
              16: "information reply", 17: "address mask request"}
ICMP_UNREACH = {0: "net {} unreachable", 1: "host {} unreachable",
                5: "{} unreachable - source route failed", 6: "net {} unreachable - unknown",
                7: "host {} unreachable - unknown", 8: "{} unreachable - source host isolated",
                9: "net {} unreachable - admin prohibited", 10: "host {} unreachable - admin prohibited",
                11: "net {} unreachable - tos prohibited", 12: "host {} unreachable - tos prohibited",
                13: "host {} unreachable - admin prohibited filter",
                14: "host {} unreachable - host precedence violation",
                15: "host {} unreachable - precedence cutoff"}
ICMP6_TYPES = {1: "destination unreachable", 2: "packet too big", 3: "time exceeded in-transit",
               4: "parameter problem", 128: "echo request", 129: "echo reply",
               130: "multicast listener query", 131: "multicast listener report",
               132: "multicast listener done", 133: "router solicitation",
               134: "router advertisement", 135: "neighbor solicitation",
               136: "neighbor advertisement", 137: "redirect", 138: "router renumbering",
               141: "inverse neighbor solicitation", 142: "inverse neighbor advertisement",
               143: "multicast listener report v2", 144: "ha discovery request",
               145: "ha discovery reply", 146: "mobile router solicitation",
               147: "mobile router advertisement", 139: "node information query",
               140: "node information reply", 200: "mtrace message", 201: "mtrace response",
               155: "RPL", 160: "extended echo request", 161: "extended echo reply"}
ICMP6_UNREACH = {0: "unreachable route", 1: " unreachable prohibited", 2: "beyond scope",
                 3: "unreachable address", 4: "unreachable port"}
IPV6_EXTENSIONS = {0, 43, 44, 60}


def mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def ip4(b: bytes) -> str:
    return f"{b[0]}.{b[1]}.{b[2]}.{b[3]}"


def ip6(b: bytes) -> str:
    return str(ipaddress.IPv6Address(bytes(b)))


class Truncated(Exception):
    """The capture ends inside a header: tcpdump says [|proto]."""

    def __init__(self, proto: str) -> None:
        super().__init__(proto)
        self.proto = proto


def format_time(ts_ns: int, nano: bool = False) -> str:
    """tcpdump's default time stamp: local time of day."""
    sec, frac = divmod(ts_ns, 1_000_000_000)
    clock = time.strftime("%H:%M:%S", time.localtime(sec))
    return f"{clock}.{frac:09d}" if nano else f"{clock}.{frac // 1000:06d}"


class TcpdumpPrinter:
    """Stateful (tcpdump's relative TCP sequence numbers depend on earlier packets)."""

    def __init__(self, absolute_seq: bool = False, nano: bool = False) -> None:
        self._proto = "ether"  # the header being read, for " [|proto]" when the capture ends in it
        self.absolute_seq = absolute_seq
        self.nano = nano
        self._tcp: dict[tuple[bytes, bytes, int], tuple[int, int]] = {}

    def line(self, ts_ns: int, frame: bytes | memoryview, wire_len: int | None = None) -> str:
        text, _ = self.describe(frame, wire_len)
        return f"{format_time(ts_ns, self.nano)} {text}"

    def describe(self, frame: bytes | memoryview, wire_len: int | None = None) -> tuple[str, dict[str, Any]]:
        """The text after the time stamp, and the decoded fields."""
        frame = bytes(frame)
        fields: dict[str, Any] = {"len": len(frame) if wire_len is None else wire_len,
                                  "caplen": len(frame)}
        out: list[str] = []
        self._proto = "ether"
        try:
            self._ether(frame, fields["len"], out, fields)
        except Truncated as t:
            out.append(f" [|{t.proto}]")
        except (struct.error, IndexError, ValueError):  # a field beyond the captured bytes
            out.append(f" [|{self._proto}]")
        return "".join(out), fields

    # -- link layer ---------------------------------------------------------------------------
    def _ether(self, f: bytes, wire_len: int, out: list[str], fields: dict[str, Any]) -> None:
        if len(f) < 14:
            raise Truncated("ether")
        dst, src = f[0:6], f[6:12]
        fields["src_mac"], fields["dst_mac"] = mac(src), mac(dst)
        etype = struct.unpack_from("!H", f, 12)[0]
        pos = 14
        vlans = []
        while etype in VLAN_TYPES:
            if len(f) < pos + 4:
                raise Truncated("vlan")
            tci, etype = struct.unpack_from("!HH", f, pos)
            vlans.append(tci & 0x0FFF)
            pos += 4
        if vlans:
            fields["vlan"] = vlans
        fields["ethertype"] = etype
        length = wire_len - pos
        if etype <= 1500:  # an 802.3 length, then LLC
            out.append(f"{mac(src)} > {mac(dst)}, 802.3, length {etype}: LLC")
            fields["proto"] = "llc"
            return
        if etype == ETH_P_IP:
            self._ip(f, pos, length, out, fields)
        elif etype == ETH_P_IPV6:
            self._ip6(f, pos, length, out, fields)
        elif etype == ETH_P_ARP:
            self._arp(f, pos, length, out, fields)
        else:
            name = ETHERTYPES.get(etype, "Unknown")
            out.append(f"{mac(src)} > {mac(dst)}, ethertype {name} (0x{etype:04x}), length {wire_len}: ")
            fields["proto"] = f"ethertype 0x{etype:04x}"

    def _arp(self, f: bytes, pos: int, length: int, out: list[str], fields: dict[str, Any]) -> None:
        fields["proto"] = self._proto = "arp"
        if len(f) < pos + 8:
            raise Truncated("arp")
        hrd, pro, hln, pln, op = struct.unpack_from("!HHBBH", f, pos)
        if len(f) < pos + 8 + 2 * hln + 2 * pln:
            raise Truncated("arp")
        out.append("ARP, ")
        sha = f[pos + 8:pos + 8 + hln]
        spa = f[pos + 8 + hln:pos + 8 + hln + pln]
        tha = f[pos + 8 + hln + pln:pos + 8 + 2 * hln + pln]
        tpa = f[pos + 8 + 2 * hln + pln:pos + 8 + 2 * hln + 2 * pln]
        if pro != ETH_P_IP or pln != 4 or hln == 0:
            hw = "Ethernet" if hrd == 1 else f"Unknown Hardware ({hrd})"
            proto = ETHERTYPES.get(pro, f"Unknown Protocol (0x{pro:04x})")
            out.append(f"{hw} (len {hln}), {proto} (len {pln}), length {length}")
            return
        fields.update(op=op, sender_ip=ip4(spa), target_ip=ip4(tpa), sender_mac=mac(sha))
        if op == 1:
            known = f" ({mac(tha)})" if any(tha) else ""
            out.append(f"Request who-has {ip4(tpa)}{known} tell {ip4(spa)}")
        elif op == 2:
            out.append(f"Reply {ip4(spa)} is-at {mac(sha)}")
        elif op == 3:
            out.append(f"Reverse Request who-is {mac(tha)} tell {mac(sha)}")
        elif op == 4:
            out.append(f"Reverse Reply {mac(tha)} at {ip4(tpa)}")
        else:
            out.append(f"Unknown ({op}) ")
        out.append(f", length {length}")

    # -- IP --------------------------------------------------------------------------------------
    def _ip(self, f: bytes, pos: int, length: int, out: list[str], fields: dict[str, Any]) -> None:
        out.append("IP ")
        self._proto = "ip"
        if len(f) < pos + 20:
            raise Truncated("ip")
        vhl, _tos, total, ident, off, ttl, proto = struct.unpack_from("!BBHHHBB", f, pos)
        hlen = (vhl & 0x0F) * 4
        src, dst = ip4(f[pos + 12:pos + 16]), ip4(f[pos + 16:pos + 20])
        fields.update(ip_version=4, src=src, dst=dst, ttl=ttl, ip_proto=proto, ip_id=ident)
        if total == 0:  # TSO: the kernel leaves it 0 for super-packets
            total = length
        total = min(total, length)
        frag_offset = (off & 0x1FFF) * 8
        if off & 0x3FFF:
            fields["fragment"] = {"offset": frag_offset, "more": bool(off & 0x2000)}
        if frag_offset:
            out.append(f"{src} > {dst}: ip-proto-{proto}")
            fields["proto"] = "ip-fragment"
            return
        if proto not in (6, 17, 33, 132):
            out.append(f"{src} > {dst}: ")
        self._transport(f, pos + hlen, total - hlen, proto, src, dst, 4, out, fields)

    def _ip6(self, f: bytes, pos: int, length: int, out: list[str], fields: dict[str, Any]) -> None:
        self._proto = "ip6"
        if len(f) < pos + 40:
            raise Truncated("ip6")
        out.append("IP6 ")
        payload_len, nh, hlim = struct.unpack_from("!HBB", f, pos + 4)
        src, dst = ip6(f[pos + 8:pos + 24]), ip6(f[pos + 24:pos + 40])
        fields.update(ip_version=6, src=src, dst=dst, ttl=hlim, ip_proto=nh)
        remaining = payload_len if payload_len else length - 40
        cur = pos + 40
        if nh not in (6, 17, 33, 132):
            out.append(f"{src} > {dst}: ")
        while nh in IPV6_EXTENSIONS:
            if len(f) < cur + 8:
                raise Truncated(IPPROTO_NAMES[nh].lower())
            next_nh, ext_len = f[cur], f[cur + 1]
            if nh == 44:  # fragment header: fixed 8 bytes
                offlg = struct.unpack_from("!H", f, cur + 2)[0]
                offset = offlg & 0xFFF8
                out.append(f"frag ({offset}|{remaining - 8})")
                fields["fragment"] = {"offset": offset, "more": bool(offlg & 1)}
                if offset:
                    fields["proto"] = "ip6-fragment"
                    return
                out.append(" ")
                size = 8
            else:
                size = (ext_len + 1) * 8
                out.append(f"{IPPROTO_NAMES[nh]} ")
            cur += size
            remaining -= size
            nh = next_nh
            fields["ip_proto"] = nh
        self._transport(f, cur, remaining, nh, src, dst, 6, out, fields)

    # -- transport -------------------------------------------------------------------------------
    def _transport(self, f: bytes, pos: int, length: int, proto: int, src: str, dst: str, version: int,
                   out: list[str], fields: dict[str, Any]) -> None:
        if proto == 6:
            self._tcp_print(f, pos, length, src, dst, version, out, fields)
        elif proto == 17:
            self._udp(f, pos, length, src, dst, out, fields)
        elif proto == 1 and version == 4:
            self._icmp(f, pos, length, out, fields)
        elif proto == 58:
            self._icmp6(f, pos, length, out, fields)
        else:  # tcpdump has printers for many more; -nn names none of them
            fields["proto"] = IPPROTO_NAMES.get(proto, f"ip-proto-{proto}").lower()
            out.append(f" ip-proto-{proto} {length}")

    def _udp(self, f: bytes, pos: int, length: int, src: str, dst: str, out: list[str],
             fields: dict[str, Any]) -> None:
        fields["proto"] = self._proto = "udp"
        if len(f) < pos + 4:
            out.append(f"{src} > {dst}: ")
            raise Truncated("udp")
        sport, dport, ulen = struct.unpack_from("!HHH", f, pos)
        fields.update(sport=sport, dport=dport)
        out.append(f"{src}.{sport} > {dst}.{dport}: ")
        if (sport in VXLAN_PORTS or dport in VXLAN_PORTS) and len(f) >= pos + 16:
            flags = f[pos + 8]
            vni = int.from_bytes(f[pos + 12:pos + 15], "big")
            names = "I" if flags & 0x08 else ""
            out.append(f"VXLAN, flags [{names or '.'}] (0x{flags:02x}), vni {vni}\n")
            fields["vxlan"] = {"vni": vni}
            inner: list[str] = []
            inner_fields: dict[str, Any] = {}
            inner_frame = f[pos + 16:]
            try:
                self._ether(inner_frame, length - 16, inner, inner_fields)
            except Truncated as t:
                inner.append(f" [|{t.proto}]")
            out.extend(inner)
            fields["inner"] = inner_fields
            return
        payload = ulen - 8
        fields["length"] = payload
        if ulen > length:
            out.append(f"UDP, bad length {ulen} > {length}")
        else:
            out.append(f"UDP, length {payload}")

    def _tcp_print(self, f: bytes, pos: int, length: int, src: str, dst: str, version: int,
                   out: list[str], fields: dict[str, Any]) -> None:
        fields["proto"] = self._proto = "tcp"
        if len(f) < pos + 4:
            out.append(f"{src} > {dst}:")
            raise Truncated("tcp")
        sport, dport = struct.unpack_from("!HH", f, pos)
        fields.update(sport=sport, dport=dport)
        out.append(f"{src}.{sport} > {dst}.{dport}: ")
        if len(f) < pos + 20:
            raise Truncated("tcp")
        seq, ack, off_flags, win, _sum, urp = struct.unpack_from("!IIHHHH", f, pos + 4)
        hlen = (off_flags >> 12) * 4
        flags = off_flags & 0x1FF
        if hlen < 20:
            out.append(f" tcp {length - hlen} [bad hdr length {hlen} - too short, < 20]")
            return
        names = "".join(name for bit, name in TCP_FLAGS if flags & bit) or "none"
        out.append(f"Flags [{names}]")
        fields["flags"] = names
        thseq = thack = 0
        rev = False
        if not self.absolute_seq and flags & 0x10:
            src_b, dst_b = _addr_bytes(src, version), _addr_bytes(dst, version)
            rev = sport > dport or (sport == dport and src_b > dst_b)
            key = (dst_b, src_b, dport << 16 | sport) if rev else (src_b, dst_b, sport << 16 | dport)
            known = self._tcp.get(key)
            if known is None or flags & 0x02:
                base = (ack - 1) & 0xFFFFFFFF, seq
                known = (base[0], base[1]) if rev else (seq, (ack - 1) & 0xFFFFFFFF)
                self._tcp[key] = known
            else:
                if rev:
                    seq, ack = (seq - known[1]) & 0xFFFFFFFF, (ack - known[0]) & 0xFFFFFFFF
                else:
                    seq, ack = (seq - known[0]) & 0xFFFFFFFF, (ack - known[1]) & 0xFFFFFFFF
            thseq, thack = known
        fields.update(seq=seq, ack=ack if flags & 0x10 else None, win=win)
        if hlen > length:
            out.append(f" [bad hdr length {hlen} - too long, > {length}]")
            return
        payload = length - hlen
        if payload > 0 or flags & 0x07:
            out.append(f", seq {seq}")
            if payload > 0:
                out.append(f":{(seq + payload) & 0xFFFFFFFF}")
        if flags & 0x10:
            out.append(f", ack {ack}")
        out.append(f", win {win}")
        if flags & 0x20:
            out.append(f", urg {urp}")
        if hlen > 20:
            out.append(", options [")
            if len(f) < pos + hlen:
                raise Truncated("tcp")
            out.append(_tcp_options(f[pos + 20:pos + hlen], rev, thseq, thack))
            out.append("]")
        out.append(f", length {payload}")
        fields["length"] = payload

    def _icmp_type(self, f: bytes, pos: int, proto: str, fields: dict[str, Any]) -> tuple[int, int]:
        """The type and code of an ICMP or ICMPv6 header, which both begin with them."""
        fields["proto"] = self._proto = proto
        if len(f) < pos + 4:
            raise Truncated(proto)
        return f[pos], f[pos + 1]

    def _icmp(self, f: bytes, pos: int, length: int, out: list[str], fields: dict[str, Any]) -> None:
        icmp_type, code = self._icmp_type(f, pos, "icmp", fields)
        if len(f) < pos + (28 if icmp_type in (3, 5, 11) else 8):  # errors quote the IP header
            raise Truncated("icmp")
        fields.update(icmp_type=icmp_type, icmp_code=code)
        if icmp_type in (0, 8):
            ident, seq = struct.unpack_from("!HH", f, pos + 4)
            text = f"echo {'request' if icmp_type == 8 else 'reply'}, id {ident}, seq {seq}"
            fields.update(id=ident, seq=seq)
        elif icmp_type == 3:
            inner = pos + 8
            odst = ip4(f[inner + 16:inner + 20])
            if code == 2:
                text = f"{odst} protocol {f[inner + 9]} unreachable"
            elif code == 3:
                ohl = (f[inner] & 0x0F) * 4
                oproto = f[inner + 9]
                oport = struct.unpack_from("!H", f, inner + ohl + 2)[0]
                if oproto in (6, 17):
                    text = f"{odst} {'tcp' if oproto == 6 else 'udp'} port {oport} unreachable"
                else:
                    text = f"{odst} protocol {oproto} port {oport} unreachable"
            elif code == 4:
                mtu = struct.unpack_from("!H", f, pos + 6)[0]
                text = f"{odst} unreachable - need to frag" + (f" (mtu {mtu})" if mtu else "")
            elif code in ICMP_UNREACH:
                text = ICMP_UNREACH[code].format(odst)
            else:
                text = f"{odst} unreachable - #{code}"
        elif icmp_type == 5:
            gw, odst = ip4(f[pos + 4:pos + 8]), ip4(f[pos + 24:pos + 28])
            kinds = {0: "redirect {} to net {}", 1: "redirect {} to host {}",
                     2: "redirect-tos {} to net {}", 3: "redirect-tos {} to host {}"}
            text = kinds.get(code, f"redirect-#{code} {{}} to {{}}").format(odst, gw)
        elif icmp_type == 11:
            text = {0: "time exceeded in-transit", 1: "ip reassembly time exceeded"}.get(
                code, f"time exceeded-#{code}")
        elif icmp_type == 12:
            text = f"parameter problem - code {code}" if code else f"parameter problem - octet {f[pos + 4]}"
        elif icmp_type == 18:
            text = f"address mask is 0x{struct.unpack_from('!I', f, pos + 4)[0]:08x}"
        elif icmp_type == 13:
            ident, seq = struct.unpack_from("!HH", f, pos + 4)
            text = f"time stamp query id {ident} seq {seq}"
        else:
            text = ICMP_TYPES.get(icmp_type, f"type-#{icmp_type}")
        out.append(f"ICMP {text}, length {length}")
        fields["length"] = length

    def _icmp6(self, f: bytes, pos: int, length: int, out: list[str], fields: dict[str, Any]) -> None:
        icmp_type, code = self._icmp_type(f, pos, "icmp6", fields)
        fields.update(icmp_type=icmp_type, icmp_code=code)
        out.append(f"ICMP6, {ICMP6_TYPES.get(icmp_type, f'unknown icmp6 type ({icmp_type})')}")
        if icmp_type == 1:
            out.append(f", {ICMP6_UNREACH.get(code, f'unknown unreach code ({code})')}")
            inner = pos + 8
            if code in (0, 1, 3):
                out.append(f" {ip6(f[inner + 24:inner + 40])}")
            elif code == 2:
                out.append(f" {ip6(f[inner + 24:inner + 40])}, source address {ip6(f[inner + 8:inner + 24])}")
            elif code == 4:
                oproto = f[inner + 6]
                odst = ip6(f[inner + 24:inner + 40])
                oport = struct.unpack_from("!H", f, inner + 40 + 2)[0]
                if oproto in (6, 17):
                    out.append(f", {odst} {'tcp' if oproto == 6 else 'udp'} port {oport}")
                else:
                    out.append(f", {odst} protocol {oproto} port {oport} unreachable")
        elif icmp_type == 2:
            out.append(f", mtu {struct.unpack_from('!I', f, pos + 4)[0]}")
        elif icmp_type == 3:
            if code == 0:
                out.append(f" for {ip6(f[pos + 8 + 24:pos + 8 + 40])}")
            elif code == 1:
                out.append(" (reassembly)")
            else:
                out.append(f", unknown code ({code})")
        elif icmp_type in (128, 129):
            ident, seq = struct.unpack_from("!HH", f, pos + 4)
            out.append(f", id {ident}, seq {seq}")
            fields.update(id=ident, seq=seq)
        elif icmp_type == 130 and length > 24:
            out.append(" v2")
        elif icmp_type == 135:
            out.append(f", who has {ip6(f[pos + 8:pos + 24])}")
        elif icmp_type == 136:
            out.append(f", tgt is {ip6(f[pos + 8:pos + 24])}")
        elif icmp_type == 137:
            out.append(f", {ip6(f[pos + 24:pos + 40])} to {ip6(f[pos + 8:pos + 24])}")
        elif icmp_type == 143:
            out.append(f", {struct.unpack_from('!H', f, pos + 6)[0]} group record(s)")
        out.append(f", length {length}")
        fields["length"] = length


def _addr_bytes(text: str, version: int) -> bytes:
    return ipaddress.ip_address(text).packed


def _tcp_options(opts: bytes, rev: bool, thseq: int, thack: int) -> str:
    parts: list[str] = []
    i = 0
    while i < len(opts):
        kind = opts[i]
        name = TCP_OPTIONS.get(kind, f"unknown-{kind}")
        if kind in (0, 1):
            parts.append(name)
            i += 1
            if kind == 0:
                break
            continue
        if i + 1 >= len(opts):
            parts.append("[bad opt]")
            break
        size = opts[i + 1]
        if size < 2 or i + size > len(opts):
            parts.append(f"{name}[bad opt]")
            break
        data = opts[i + 2:i + size]
        if kind == 2 and len(data) == 2:
            parts.append(f"mss {struct.unpack('!H', data)[0]}")
        elif kind == 3 and len(data) == 1:
            parts.append(f"wscale {data[0]}")
        elif kind == 4:
            parts.append("sackOK")
        elif kind == 5:
            if len(data) % 8:
                parts.append("sack invalid sack")
            else:
                edges = []
                for j in range(0, len(data), 8):
                    s, e = struct.unpack_from("!II", data, j)
                    base = thseq if rev else thack
                    edges.append(f"{{{(s - base) & 0xFFFFFFFF}:{(e - base) & 0xFFFFFFFF}}}")
                parts.append(f"sack {len(data) // 8} " + "".join(edges))
        elif kind == 8 and len(data) == 8:
            val, ecr = struct.unpack("!II", data)
            parts.append(f"TS val {val} ecr {ecr}")
        elif kind in (6, 7, 11, 12, 13) and len(data) == 4:
            parts.append(f"{name} {struct.unpack('!I', data)[0]}")
        else:
            parts.append(name + (" 0x" + data.hex() if data else ""))
        i += size
    return ",".join(parts)
