"""Compiled tcpdump expressions agree with libpcap's own interpreter, packet by packet.

Each expression is compiled by libpcap (pcap_compile, as tcpdump would), translated to
eBPF by netbpf, put into a real XDP program and run on every frame of the corpus with
BPF_PROG_TEST_RUN; pcap_offline_filter is the reference for the verdict, snap length
included.
"""
from __future__ import annotations

import pytest

from netbpf.bpf import FilterError, selftest
from netbpf.bpf.inject import set_code
from netbpf.packet.filter import compile_filter

from ..packets import corpus

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

CORPUS = corpus()


@pytest.fixture(scope="module")
def loaded() -> dict[str, object]:
    return {}


def run_filter(expression: str) -> dict[str, tuple[int, int]]:
    """{frame name: (eBPF verdict, libpcap verdict)} for the whole corpus."""
    compiled = compile_filter(expression)
    obj = selftest.open_object()
    try:
        for prog in obj.programs.values():
            prog.set_autoload(prog.name == "netbpf_st_filt")
        harness = obj.program("netbpf_st_filt")
        set_code(harness, compiled.ebpf)
        obj.load()
        results = {}
        for name, frame in CORPUS.items():
            obj.map("filter_result").update(0, b"\xee\xee\xee\xee")
            assert harness.test_run(frame).retval == 2  # XDP_PASS
            got = int.from_bytes(obj.map("filter_result").lookup(0), "little")
            results[name] = (got, compiled.matches(frame))
        return results
    finally:
        obj.close()


def test_the_corpus_is_large_enough() -> None:
    assert len(EXPRESSIONS) >= 60 and len(CORPUS) >= 40


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_ebpf_agrees_with_libpcap(expression: str) -> None:
    results = run_filter(expression)
    disagree = {name: r for name, r in results.items() if r[0] != r[1]}
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
    with pytest.raises(FilterError, match="not supported in XDP/tc"):
        compile_filter("inbound")
