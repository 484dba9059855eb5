"""Compiled tcpdump expressions agree with libpcap's own interpreter, packet by packet.

Each expression is compiled by libpcap (pcap_compile, as tcpdump would), translated to
eBPF by netbpf, put into a real XDP program and run on every frame of the corpus with
BPF_PROG_TEST_RUN; pcap_offline_filter is the reference for the verdict, snap length
included.
"""
from __future__ import annotations

import itertools
import struct

import pytest

from netbpf.bpf import selftest
from netbpf.bpf.inject import set_code
from netbpf.errors import FilterError
from netbpf.packet import cbpf
from netbpf.packet.filter import compile_filter, hook_facts

from ..packets import corpus, ether, icmp6, ipv4, ipv6, tcp, udp

# All the primitives of pcap-filter(7) that compile for Ethernet, and combinations.
EXPRESSIONS = [
    "", "ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "igmp", "sctp", "esp", "ah", "pim",
    "vrrp", "ip proto 47", "ip proto 4", "ip6 proto 17", "ip proto \\tcp", "ip6 proto 58",
    "host 10.0.0.1", "src host 10.0.0.1", "dst host 10.0.0.2", "host 192.168.1.10 or host 10.0.0.9",
    "net 10.0.0.0/8", "src net 192.168.0.0/16", "dst net 10.0.0.0 mask 255.255.255.0",
    "net 10.0.0.0/24 and not net 10.0.0.128/25", "ip6 host fd00::1", "ip6 net fd00::/16",
    "dst host fd00::2", "src net 2001:db8::/32",
    "port 80", "src port 40000", "dst port 53", "tcp port 443", "udp port 53 or udp port 4789",
    "portrange 1-1024", "src portrange 1000-2000", "tcp dst portrange 8000-8100",
    "ether host 02:00:00:00:00:01", "ether src 02:00:00:00:00:01", "ether dst ff:ff:ff:ff:ff:ff",
    "ether broadcast", "ether multicast", "ip multicast", "ip6 multicast", "ether proto 0x0806",
    "ether proto \\ip6", "ether[12:2] = 0x86dd", "ether[0] & 1 = 1",
    "vlan", "vlan 100", "vlan and tcp", "vlan 100 and host 10.0.0.1", "vlan and vlan", "vlan 10 and vlan 100",
    "mpls", "pppoes", "llc", "stp", "iso", "atalk", "ipx", "netbeui", "decnet host 10.123", "l1", "geneve",
    "less 64", "greater 1000", "len >= 100", "len < 60 or len > 1500",
    "ip[8] < 10", "ip[0] & 0xf > 5", "ip[6:2] & 0x1fff != 0", "ip[6] & 0x20 != 0",
    "ip[2:2] > 576", "ip6[6] == 17", "ip[9] = 17 and ip[1] = 0",
    "tcp[tcpflags] & tcp-syn != 0", "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "tcp[tcpflags] & tcp-rst != 0", "tcp[tcpflags] == tcp-fin|tcp-ack", "tcp[13] & 8 != 0",
    "tcp[tcpflags] & (tcp-urg|tcp-ece|tcp-cwr) != 0",
    "tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
    "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
    "icmp[icmptype] == icmp-echo", "icmp[icmptype] == icmp-echoreply", "icmp[0] = 3 and icmp[1] = 3",
    "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply", "icmp6[icmp6type] == icmp6-echo",
    "udp[8:4] = 0x08000000", "udp[2:2] = 4789 and udp[11] = 101",
    "ip protochain 6", "ip6 protochain 6", "ip6 protochain 17",
    "not tcp", "not (port 22 or port 80)", "tcp or udp", "ip and not icmp", "host 10.0.0.1 and (tcp or icmp)",
    "src port 80 and dst portrange 1024-65535", "(tcp or udp) and len > 100 and not vlan",
    "ip[2:2] / 4 > 20", "ip[2:2] * 2 > 200", "ip[2:2] % 7 = 3", "ip[8] ^ 0xff < 200", "ip[8] - 1 > 10",
    "ip[0] & 0xf0 | 0x0f = 0x4f", "tcp[0:2] >> 8 = 0x9c", "ip[8] << 2 = 256", "-ip[8] < 0xffffffc1",
]


def generated_expressions() -> list[str]:
    """pcap-filter(7)'s grammar, walked the way libpcap's own tests walk it (testprogs/TESTrun:
    each qualifier with each direction and each value form), with the corpus's own values so
    that most expressions match some frames and miss others."""
    out: list[str] = []
    for proto, direction in itertools.product(("", "tcp ", "udp ", "sctp "),
                                              ("", "src ", "dst ", "src or dst ", "src and dst ")):
        out += [f"{proto}{direction}port 80", f"{proto}{direction}port 53",
                f"{proto}{direction}portrange 50-90", f"{proto}{direction}portrange 2905"]
    for proto, direction in itertools.product(("", "ip ", "arp ", "rarp "), ("", "src ", "dst ", "src or dst ")):
        out += [f"{proto}{direction}host 10.0.0.1", f"{proto}{direction}net 10.0.0.0/24",
                f"{proto}{direction}net 10.0.0.0 mask 255.255.255.0", f"{proto}{direction}net 10"]
    for direction in ("", "src ", "dst ", "src and dst "):
        out += [f"ip6 {direction}host fd00::2", f"ip6 {direction}net fd00::/64", f"{direction}net 2001:db8::/32",
                f"ether {direction}host 02:00:00:00:00:01", f"ether {direction or 'dst '}02:00:00:00:00:02"]
    out += [f"llc {kind}" for kind in ("i", "s", "u", "rr", "rnr", "rej", "ui", "ua", "disc", "dm", "sabme",
                                        "test", "xid", "frmr")]
    out += ["clnp", "esis", "isis", "l2", "iih", "lsp", "snp", "csnp", "psnp", "mopdl", "moprc", "lat", "sca",
            "aarp", "carp", "igrp", "ip proto 88", "link proto 0x88b5", "ether proto 0x88a8", "mpls 100",
            "mpls and mpls", "geneve 12345", "geneve and geneve", "pppoed", "pppoes 1234", "vlan 4095",
            "broadcast", "multicast", "link broadcast", "link multicast", "decnet src 50.764",
            "ip6 protochain 17 and not ip6 protochain 6", "ip6 protochain 58", "ip protochain 47",
            "ip6 protochain 6 or ip protochain 6 or ip6 protochain 17"]
    # Arithmetic on packet values: shifts by a packet value (32 and more as well), division and
    # modulo by a packet value that may be 0, negative and huge offsets, loads past the end.
    values = ("ip[9]", "ip[8]", "ip[9] & 0xf", "tcp[13]", "udp[2:2] & 63", "ip[9] - 17", "ether[13]")
    for op in ("<<", ">>", "/", "%", "+", "-", "*", "&", "|", "^"):
        for right in values:
            out.append(f"ip[0] {op} ({right}) != 0")
    out += ["ip[0] << ip[9] = 0", "ip[1] << ip[9] != 0", "0xffffffff << (ip[9] + 14) = 0",
            "ip[2:2] >> (ip[9] * 3) > 0", "ether[ip[0] - 100] = 1", "ether[ip[9] * 200] = 0",
            "ether[len - 1] = 0", "ether[len - 2:2] = 0", "ether[len] = 0", "ether[len - 4:4] != 7",
            "ip[ip[9]] > 0", "ip6[40 + ip6[6]:1] >= 0", "tcp[(tcp[12] >> 2) + 20:4] = 0",
            "ether[65530:4] = 0", "ether[65535] = 0", "ip[2:2] / (ip[9] & 16) = 0", "ip[2:2] % (ip[8] - 64) = 0",
            "len / (ip[9] - 6) > 1", "-(ip[9]) < 0x7fffffff", "ip[0] << 31 != 0", "ether[0:4] >> 31 = 0"]
    return out


EXPRESSIONS = list(dict.fromkeys(EXPRESSIONS + generated_expressions()))  # distinct, in order


def extension_chain(headers: int, last: bytes, last_proto: int, ah: bool = False) -> bytes:
    """IPv6 with ``headers`` destination options (then AH, if asked) before ``last``.

    AH is only ever the last header before the payload: libpcap 1.10's protochain takes
    AH's length for the offset itself (it drops the base), and after AH with an extension
    header behind it can loop forever (tcpdump -r 'ip6 protochain 6' spins on such a packet).
    """
    payload, proto = last, last_proto
    if ah:
        payload, proto = bytes([proto, 1, 0, 0]) + bytes(8) + payload, 51  # AH: (1 + 2) * 4 bytes
    for _ in range(headers):
        payload, proto = bytes([proto, 0]) + bytes(6) + payload, 60  # destination options, 8 bytes
    return ether(ipv6(payload, proto), 0x86DD)


# (deepest: as many 8-byte headers as the longest frame holds, with 20 bytes behind them)
DEEPEST = (4096 - 256 - 320 - 14 - 40 - 20) // 8
# The longest frame an XDP program sees whole (PAGE_SIZE - XDP_PACKET_HEADROOM - skb_shared_info
# on x86-64); BPF_PROG_TEST_RUN puts the rest of a longer one in fragments the filter cannot read.
XDP_LARGEST = 4096 - 256 - 320


def more_frames() -> dict[str, bytes]:
    """Frames the shared corpus lacks: protocol numbers of 32 and more (a shift by ip[9]),
    deep extension header chains, frames of the largest size XDP takes."""
    c: dict[str, bytes] = {}
    for name, proto in (("ospf", 89), ("pim", 103), ("proto-32", 32), ("proto-31", 31), ("proto-255", 255),
                        ("vrrp", 112), ("carp-ish", 112)):
        c[f"ip-{name}"] = ether(ipv4(bytes(24), proto), 0x0800)
    for n in (1, 15, 16, 17, 40, 100):
        c[f"v6-chain-{n}-tcp"] = extension_chain(n, tcp(1, 80, src="fd00::1", dst="fd00::2"), 6)
        c[f"v6-chain-{n}-udp-ah"] = extension_chain(n, udp(1, 53, b"", "fd00::1", "fd00::2"), 17, ah=True)
    c["v6-chain-deepest-tcp"] = extension_chain(DEEPEST, tcp(1, 80, src="fd00::1", dst="fd00::2"), 6)
    c["v6-chain-deepest-none"] = extension_chain(DEEPEST, bytes(20), 59)
    c["v4-ah-tcp"] = ether(ipv4(bytes([6, 1, 0, 0]) + bytes(8) + tcp(5, 80), 51), 0x0800)
    c["largest-udp"] = ether(ipv4(udp(7, 53, bytes(XDP_LARGEST - 42)), 17), 0x0800)
    c["largest-v6-tcp"] = ether(ipv6(tcp(80, 7, "A", bytes(XDP_LARGEST - 74), src="fd00::1", dst="fd00::2"), 6),
                                0x86DD)
    c["largest-ether"] = ether(bytes(XDP_LARGEST - 14), 0x88B5)
    c["geneve"] = ether(ipv4(udp(1, 6081, struct.pack("!HHI", 0, 0x6558, 12345 << 8)
                                 + ether(bytes(46), 0x0800)), 17), 0x0800)
    c["mpls"] = ether(struct.pack("!I", (100 << 12) | 0x100 | 64) + ipv4(udp(1, 2), 17), 0x8847)
    c["pppoes"] = ether(struct.pack("!BBHH", 0x11, 0, 1234, 22) + b"\x00\x21" + ipv4(udp(1, 2), 17), 0x8864)
    c["icmp6-ns-big"] = ether(ipv6(icmp6(135, rest=bytes(600)), 58), 0x86DD)
    return c


CORPUS = {**corpus(), **more_frames()}
DEPTH = {name: int(name.split("-")[2]) if name.split("-")[2].isdigit() else DEEPEST
         for name in CORPUS if name.startswith("v6-chain-")}


@pytest.fixture(scope="module")
def loaded() -> dict[str, object]:
    return {}


def run_filter(expression: str, frames: dict[str, bytes] | None = None,
               ancillary: dict[int, int] | None = None) -> dict[str, tuple[int, int]]:
    """{frame name: (eBPF verdict, libpcap verdict)} for the whole corpus."""
    compiled = compile_filter(expression, ancillary=ancillary)
    obj = selftest.open_object()
    try:
        for prog in obj.programs.values():
            prog.set_autoload(prog.name == "netbpf_st_filt")
        harness = obj.program("netbpf_st_filt")
        set_code(harness, compiled.ebpf)
        obj.load()
        results = {}
        for name, frame in (CORPUS if frames is None else frames).items():
            obj.map("filter_result").update(0, b"\xee\xee\xee\xee")
            assert harness.test_run(frame).retval == 2  # XDP_PASS
            got = int.from_bytes(obj.map("filter_result").lookup(0), "little")
            results[name] = (got, compiled.matches(frame))
        return results
    finally:
        obj.close()


def test_the_corpus_is_large_enough() -> None:
    assert len(set(EXPRESSIONS)) >= 300 and len(CORPUS) >= 75
    assert len({compile_filter(e).ebpf for e in EXPRESSIONS}) >= 250  # distinct programs, not spellings


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_ebpf_agrees_with_libpcap(expression: str) -> None:
    results = run_filter(expression)
    # The one stated difference: a chain longer than protochain's pass limit is kept.
    passes = cbpf.max_passes(len(cbpf.loop_heads(compile_filter(expression).classic.insns)))
    beyond = {name for name in results if name.startswith("v6-chain-") and DEPTH[name] > passes}
    disagree = {name: r for name, r in results.items()
                if r[0] != (262144 if name in beyond else r[1])}
    assert not disagree, f"{expression!r}: (ebpf, libpcap) differ on {disagree}"


def test_the_corpus_tells_expressions_apart() -> None:
    """Guard against a vacuous corpus: most expressions match some frames and miss others."""
    mixed = 0
    for expression in EXPRESSIONS[1:40]:
        verdicts = {bool(v[1]) for v in run_filter(expression).values()}
        mixed += verdicts == {True, False}
    assert mixed >= 35


def test_snaplen_is_the_verdict() -> None:
    results = run_filter("tcp")
    assert results["tcp-syn"] == (262144, 262144)
    assert results["udp-dns"] == (0, 0)


def test_bad_expression_carries_libpcap_message() -> None:
    with pytest.raises(FilterError, match="syntax error"):
        compile_filter("tcp port")
    with pytest.raises(FilterError, match="expression rejects all packets"):
        compile_filter("ip6 and tcp[tcpflags] & tcp-syn != 0")


def test_linux_only_extensions_are_refused_clearly() -> None:
    with pytest.raises(FilterError, match="not known at this hook"):
        compile_filter("inbound")


def test_a_shift_by_32_or_more_leaves_zero_as_in_libpcap() -> None:
    results = run_filter("ip[0] << ip[9] != 0")
    high = [name for name in ("ip-ospf", "ip-pim", "ip-proto-32", "esp", "gre") if name in results]
    assert len(high) == 5 and all(results[name] == (0, 0) for name in high)
    assert results["ip-proto-31"][1] == results["ip-proto-31"][0] != 0


def test_a_chain_beyond_the_pass_limit_is_kept_not_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cbpf, "MAX_LOOPS", 8)
    frames = {"within": extension_chain(7, bytes(20), 59), "beyond": extension_chain(9, bytes(20), 59),
              "beyond-tcp": extension_chain(20, tcp(1, 80, src="fd00::1", dst="fd00::2"), 6)}
    results = run_filter("ip6 protochain 6", frames)
    assert results["within"] == (0, 0)
    assert results["beyond"] == (262144, 0)  # kept: one packet too many, never one too few
    assert results["beyond-tcp"] == (262144, 262144)


@pytest.mark.parametrize("hook,inbound,outbound", [("tc-ingress", 262144, 0), ("tc-egress", 0, 262144)])
def test_direction_is_the_hooks_own_at_tc(hook: str, inbound: int, outbound: int) -> None:
    frames = {"tcp": CORPUS["tcp-syn"], "arp": CORPUS["arp-request"]}
    for expression, want in (("inbound", inbound), ("outbound", outbound)):
        results = run_filter(expression, frames, hook_facts(hook, 7))
        assert {r[0] for r in results.values()} == {want}
    assert {r[0] for r in run_filter("ifindex 7", frames, hook_facts(hook, 7)).values()} == {262144}
    assert {r[0] for r in run_filter("ifindex 8", frames, hook_facts(hook, 7)).values()} == {0}


def test_direction_is_refused_at_xdp_in_one_line() -> None:
    with pytest.raises(FilterError, match="direction is not known at this hook"):
        compile_filter("inbound and tcp", ancillary=hook_facts("xdp", 7))
