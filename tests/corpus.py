"""A mixed capture of 30+ protocols, built with scapy, for comparing lines with tcpdump's.

Every frame is an Ethernet frame with fixed fields (addresses, ids, ports, time
stamps), so the file is the same on every run. Addresses are in ranges no test
namespace owns (10.99.0.0/16, fd99::/64): replayed into a namespace, nothing
answers them. ``frames()`` gives (protocol name, frame); the names are what a
test reports when a line differs.
"""
from __future__ import annotations

from pathlib import Path

MAC_SRC = "02:99:00:00:00:01"
MAC_DST = "02:99:00:00:00:02"
A4, B4 = "10.99.0.1", "10.99.0.2"
A6, B6 = "fd99::1", "fd99::2"
T0 = 1_700_000_000  # time stamps of the file: one frame every millisecond from here


def frames() -> list[tuple[str, bytes]]:
    from scapy.all import (
        AH,
        ARP,
        BOOTP,
        DHCP,
        DNS,
        DNSQR,
        ESP,
        GRE,
        ICMP,
        IP,
        LLC,
        NTP,
        SNMP,
        STP,
        TCP,
        UDP,
        VXLAN,
        Dot1Q,
        Ether,
        ICMPv6EchoRequest,
        ICMPv6ND_NS,
        ICMPv6ND_RA,
        ICMPv6NDOptPrefixInfo,
        ICMPv6NDOptSrcLLAddr,
        IPv6,
        Raw,
        SNMPget,
        SNMPvarbind,
    )
    from scapy.contrib.geneve import GENEVE
    from scapy.contrib.igmp import IGMP
    from scapy.contrib.lldp import (
        LLDPDUChassisID,
        LLDPDUEndOfLLDPDU,
        LLDPDUPortID,
        LLDPDUTimeToLive,
    )
    from scapy.contrib.mpls import MPLS
    from scapy.contrib.ospf import OSPF_Hdr, OSPF_Hello
    from scapy.layers.ppp import PPPoED
    from scapy.layers.sctp import SCTP, SCTPChunkInit
    from scapy.layers.vrrp import VRRP

    eth = Ether(src=MAC_SRC, dst=MAC_DST)
    ip4 = IP(src=A4, dst=B4, id=4242, ttl=64)
    ip6 = IPv6(src=A6, dst=B6, hlim=64)
    syn_options = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None), ("WScale", 7)]
    mptcp_capable = (30, bytes.fromhex("0081") + bytes.fromhex("0102030405060708"))  # MP_CAPABLE v1, key
    tfo_cookie = (34, bytes.fromhex("a1b2c3d4e5f60708"))  # TCP Fast Open cookie
    inner = Ether(src="02:99:00:00:01:01", dst="02:99:00:00:01:02") / IP(src="192.168.99.1", dst="192.168.99.2",
                                                                         id=7) / ICMP(id=5, seq=1)
    dccp_request = bytes.fromhex("9c400050" "05000000" "00000001" "00000002") + bytes.fromhex("0000002a")
    pim_hello = bytes.fromhex("2000" "0000" "0001" "0002" "0069")  # version 2, hello, holdtime 105
    lldp = (LLDPDUChassisID(subtype=4, id="02:99:00:00:00:01") / LLDPDUPortID(subtype=5, id="eth0")
            / LLDPDUTimeToLive(ttl=120) / LLDPDUEndOfLLDPDU())
    out: list[tuple[str, bytes]] = [
        ("arp", Ether(src=MAC_SRC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=MAC_SRC, psrc=A4, pdst=B4)),
        ("arp reply", eth / ARP(op=2, hwsrc=MAC_SRC, psrc=A4, hwdst=MAC_DST, pdst=B4)),
        ("icmp echo", eth / ip4 / ICMP(type=8, id=77, seq=1) / Raw(b"x" * 32)),
        ("icmp unreachable", eth / ip4 / ICMP(type=3, code=3) / IP(src=B4, dst=A4, id=1) / UDP(sport=5, dport=6)),
        ("icmp6 echo", eth / ip6 / ICMPv6EchoRequest(id=9, seq=2, data=b"y" * 16)),
        ("icmp6 neighbor solicitation",
         Ether(src=MAC_SRC, dst="33:33:ff:00:00:02") / IPv6(src=A6, dst="ff02::1:ff00:2", hlim=255)
         / ICMPv6ND_NS(tgt=B6) / ICMPv6NDOptSrcLLAddr(lladdr=MAC_SRC)),
        ("icmp6 router advertisement",
         Ether(src=MAC_SRC, dst="33:33:00:00:00:01") / IPv6(src="fe80::99:1", dst="ff02::1", hlim=255)
         / ICMPv6ND_RA(routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(lladdr=MAC_SRC)
         / ICMPv6NDOptPrefixInfo(prefix="fd99::", prefixlen=64)),
        ("tcp syn mss sack ts ws", eth / ip4 / TCP(sport=40000, dport=80, flags="S", seq=1000, window=64240,
                                                  options=syn_options)),
        ("tcp sack", eth / ip4 / TCP(sport=80, dport=40000, flags="A", seq=5000, ack=1001, window=512,
                                     options=[("NOP", None), ("NOP", None), ("SAck", (2000, 3000))])),
        ("tcp mptcp", eth / ip4 / TCP(sport=40001, dport=80, flags="S", seq=7, window=64240,
                                      options=[("MSS", 1460), mptcp_capable])),
        ("tcp fast open", eth / ip4 / TCP(sport=40002, dport=80, flags="S", seq=9, window=64240,
                                          options=[("MSS", 1460), tfo_cookie]) / Raw(b"GET / HTTP/1.1\r\n\r\n")),
        ("tcp6 http", eth / ip6 / TCP(sport=40003, dport=80, flags="PA", seq=11, ack=12, window=500)
         / Raw(b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n")),
        ("udp", eth / ip4 / UDP(sport=12345, dport=9999) / Raw(b"z" * 20)),
        ("dns", eth / ip4 / UDP(sport=53000, dport=53) / DNS(id=0x1234, rd=1, qd=DNSQR(qname="example.com",
                                                                                      qtype="AAAA"))),
        ("dhcp", Ether(src=MAC_SRC, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255", id=1)
         / UDP(sport=68, dport=67) / BOOTP(chaddr=bytes.fromhex("029900000001"), xid=0x11223344)
         / DHCP(options=[("message-type", "discover"), ("hostname", "corpus"), "end"])),
        ("ntp", eth / ip4 / UDP(sport=123, dport=123) / NTP(version=4, mode=3, ref=0, orig=3_900_000_000.5, recv=0,
                                                                  sent=3_900_000_000.75)),
        ("snmp", eth / ip4 / UDP(sport=50000, dport=161) / SNMP(community="public", PDU=SNMPget(
            id=3, varbindlist=[SNMPvarbind(oid="1.3.6.1.2.1.1.1.0")]))),
        ("syslog", eth / ip4 / UDP(sport=514, dport=514) / Raw(b"<34>Oct 11 22:14:15 host su: test message")),
        ("rip", eth / ip4 / UDP(sport=520, dport=520) / Raw(bytes.fromhex("0102000000020000" "0a630000" + "00" * 8
                                                                           + "00000001"))),
        ("vxlan", eth / ip4 / UDP(sport=33333, dport=4789) / VXLAN(vni=42) / inner),
        ("geneve", eth / ip4 / UDP(sport=49153, dport=6081) / GENEVE(vni=43, proto=0x6558) / inner),
        ("gre", eth / ip4 / GRE() / IP(src="192.168.98.1", dst="192.168.98.2", id=3) / ICMP(id=6, seq=1)),
        ("ipip", eth / IP(src=A4, dst=B4, id=5, proto=4) / IP(src="192.168.97.1", dst="192.168.97.2", id=4)
         / UDP(sport=1, dport=2)),
        ("esp", eth / IP(src=A4, dst=B4, id=6, proto=50) / ESP(spi=0x100, seq=1) / Raw(b"\x00" * 24)),
        ("ah", eth / IP(src=A4, dst=B4, id=7, proto=51) / AH(spi=0x200, seq=2, nh=1, icv=b"\x00" * 12)
         / ICMP(id=8, seq=1)),
        ("sctp", eth / ip4 / SCTP(sport=5000, dport=5001, tag=0) / SCTPChunkInit(init_tag=0x55, a_rwnd=65535,
                                                                                  n_out_streams=10,
                                                                                  n_in_streams=10, init_tsn=1)),
        ("dccp", eth / IP(src=A4, dst=B4, id=8, proto=33) / Raw(dccp_request)),
        ("igmp", Ether(src=MAC_SRC, dst="01:00:5e:01:02:03") / IP(src=A4, dst="239.1.2.3", id=9, ttl=1)
         / IGMP(type=0x16, gaddr="239.1.2.3")),
        ("pim", Ether(src=MAC_SRC, dst="01:00:5e:00:00:0d") / IP(src=A4, dst="224.0.0.13", id=10, ttl=1, proto=103)
         / Raw(pim_hello)),
        ("ospf", Ether(src=MAC_SRC, dst="01:00:5e:00:00:05") / IP(src=A4, dst="224.0.0.5", id=11, ttl=1)
         / OSPF_Hdr(src="10.99.0.1", area="0.0.0.0") / OSPF_Hello(mask="255.255.255.0")),
        ("vrrp", Ether(src="00:00:5e:00:01:07", dst="01:00:5e:00:00:12") / IP(src=A4, dst="224.0.0.18", id=12,
                                                                               ttl=255)
         / VRRP(vrid=7, priority=100, addrlist=["10.99.0.254"])),
        ("stp", Ether(src=MAC_SRC, dst="01:80:c2:00:00:00") / LLC() / STP()),
        ("lldp", Ether(src=MAC_SRC, dst="01:80:c2:00:00:0e", type=0x88CC) / lldp),
        ("802.1q", Ether(src=MAC_SRC, dst=MAC_DST) / Dot1Q(vlan=100, prio=3) / ip4 / ICMP(id=12, seq=3)),
        ("mpls", Ether(src=MAC_SRC, dst=MAC_DST, type=0x8847) / MPLS(label=1000, s=1, ttl=63) / ip4
         / UDP(sport=7, dport=9)),
        ("pppoe", Ether(src=MAC_SRC, dst="ff:ff:ff:ff:ff:ff") / PPPoED(code=0x09) / Raw(bytes.fromhex("01010000"))),
    ]
    return [(name, bytes(frame)) for name, frame in out]


# What tcpdump -nn says of each frame when it knows the protocol: a corpus where tcpdump
# fell back to "UDP, length N" would compare nothing.
SAID = {
    "arp": "ARP, Request who-has", "arp reply": "ARP, Reply", "icmp echo": "ICMP echo request",
    "icmp unreachable": "udp port 6 unreachable", "icmp6 echo": "ICMP6, echo request",
    "icmp6 neighbor solicitation": "neighbor solicitation", "icmp6 router advertisement": "router advertisement",
    "tcp syn mss sack ts ws": "options [mss 1460,sackOK,TS val 1000 ecr 0,nop,wscale 7]",
    "tcp sack": "sack 1 {", "tcp mptcp": "mptcp", "tcp fast open": "tfo", "tcp6 http": "HTTP: GET /index.html",
    "udp": "UDP, length 20", "dns": "AAAA? example.com.", "dhcp": "BOOTP/DHCP, Request", "ntp": "NTPv4, Client",
    "snmp": "GetRequest", "syslog": "SYSLOG", "rip": "RIPv2", "vxlan": "VXLAN", "geneve": "Geneve",
    "gre": "GREv0", "ipip": "192.168.97.1.1 > 192.168.97.2.2", "esp": "ESP(spi=0x00000100", "ah": "AH(spi=",
    "sctp": "sctp", "dccp": "DCCP-Request", "igmp": "igmp v2 report", "pim": "PIMv2, Hello", "ospf": "OSPFv2, Hello",
    "vrrp": "VRRPv2, Advertisement", "stp": "STP 802.1d", "lldp": "LLDP", "802.1q": "ICMP echo request, id 12",
    "mpls": "MPLS (label 1000", "pppoe": "PPPoE PADI",
}


def write_pcap(path: Path) -> list[str]:
    """The corpus as a pcap file (one frame a millisecond); the protocol names, in order."""
    from netbpf.packet import pcap

    corpus = frames()
    with open(path, "wb") as f:
        f.write(pcap.pcap_file_header(262144))
        for n, (_, frame) in enumerate(corpus):
            f.write(pcap.pcap_record((T0 * 1000 + n) * 1_000_000, frame))
    return [name for name, _ in corpus]


def write_pcapng(path: Path) -> None:
    """The same packets as pcapng: netbpf reads these itself and pipes them to tcpdump."""
    from netbpf.packet import pcap

    with open(path, "wb") as f:
        f.write(pcap.pcapng_file_header(["corpus0"], 262144, 1, False))
        for n, (_, frame) in enumerate(frames()):
            f.write(pcap.pcapng_record((T0 * 1000 + n) * 1_000_000, frame, len(frame), False, 0))
