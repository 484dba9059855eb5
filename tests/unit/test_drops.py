"""netbpf drops and tcp without a kernel: parsing, naming, formatting, filters."""
from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import struct

import pytest

from netbpf.errors import NetbpfError, UsageError
from netbpf.tools.drops import reasons
from netbpf.tools.drops.kallsyms import Kallsyms
from netbpf.tools.drops.kernel import _EVENT, DropFilter, decode, decode_key
from netbpf.tools.drops.report import DropFormatter
from netbpf.tools.tcp.cli import TcpFormatter, event_list
from netbpf.tools.tcp.kernel import _EVENT as TCP_EVENT
from netbpf.tools.tcp.kernel import Kind
from netbpf.tools.tcp.kernel import decode as tcp_decode
from netbpf.tracepoints.names import Clock, Names, endpoint, parse_protocol, protocol_name, tcp_flags

# A piece of a real tracefs format file (Linux 6.18), cut short.
FORMAT = '''name: kfree_skb
ID: 2310
format:
\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;
\tfield:enum skb_drop_reason reason;\toffset:36;\tsize:4;\tsigned:0;

print fmt: "skbaddr=%p rx_sk=%p protocol=%u location=%pS reason: %s", REC->skbaddr, REC->rx_sk, \
REC->protocol, REC->location, __print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, \
{ 4, "SOCKET_CLOSE" }, { 12, "NETFILTER_DROP" }, { 73, "TC_INGRESS" }, { 128, "MAX" })
'''

KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81a00000 T tcp_v4_rcv
ffffffff81a01000 t tcp_v4_fill_cb
ffffffff81a02000 D some_data
ffffffffc0100000 t nft_do_chain\t[nf_tables]
ffffffffc0101000 t nft_other\t[nf_tables]
"""


def test_reasons_from_the_tracepoint_format() -> None:
    r = reasons.from_format(FORMAT)
    assert r.source == "tracefs"
    assert r.name(3) == "NO_SOCKET" and r.value("no_socket") == 3
    assert r.value("SKB_DROP_REASON_TC_INGRESS") == 73
    assert r.not_drops == (0, 1)  # below the first listed value: NOT_DROPPED_YET, CONSUMED


def test_reasons_from_btf_enum_values() -> None:
    r = reasons.from_enum({"SKB_NOT_DROPPED_YET": 0, "SKB_CONSUMED": 1, "SKB_DROP_REASON_NOT_SPECIFIED": 2,
                           "SKB_DROP_REASON_NO_SOCKET": 3, "SKB_DROP_REASON_MAX": 9})
    assert r.not_drops == (0, 1)
    assert r.drop_names() == ["NOT_SPECIFIED", "NO_SOCKET", "MAX"]
    assert r.name(0x20005) == "SUBSYS2:5"  # subsystem reasons live in other enums
    assert r.name(77) == "REASON_77"


def test_unknown_reason_suggests_close_names() -> None:
    r = reasons.from_format(FORMAT)
    with pytest.raises(UsageError, match="did you mean NO_SOCKET"):
        r.value("NO_SOCKETS")
    with pytest.raises(UsageError, match="--list-reasons"):
        r.value("NOTHING_LIKE_IT")


def test_format_without_reasons_is_not_supported() -> None:
    from netbpf.errors import NotSupported

    with pytest.raises(NotSupported, match=r"5\.17"):
        reasons.from_format('print fmt: "skbaddr=%p protocol=%u location=%p", REC->skbaddr')


def test_kallsyms_symbolises_text_only_and_names_modules() -> None:
    k = Kallsyms(KALLSYMS.splitlines())
    assert k.usable and len(k) == 5  # the data symbol is not a place code runs
    assert k.symbolise(0xFFFFFFFF81A0001A) == "tcp_v4_rcv+0x1a"
    assert k.symbolise(0xFFFFFFFF81A02010) == "tcp_v4_fill_cb+0x1010"  # beyond a data symbol
    assert k.symbolise(0xFFFFFFFFC0100046) == "nft_do_chain+0x46 [nf_tables]"
    assert k.function(0xFFFFFFFFC0100046) == "nft_do_chain"
    assert k.symbolise(0x1000) == "0x1000"  # below every symbol
    assert k.symbolise(0) == "0x0"


BPF_KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81a00000 T tcp_v4_rcv
ffffffff82200000 T _etext
ffffffffc0001000 t bpf_dispatcher_xdp\t[bpf]
ffffffffc0200000 t bpf_prog_0123456789abcdef_rb_orig_pass\t[bpf]
ffffffffc0200800 t bpf_prog_fedcba9876543210_drop_icmp\t[bpf]
ffffffffc0300000 t nft_do_chain\t[nf_tables]
"""


def test_kallsyms_names_bpf_frames_by_their_program_and_nothing_outside() -> None:
    from netbpf.tools.drops.kallsyms import Extent

    extents = [Extent(0xFFFFFFFFC0200000, 0xFFFFFFFFC0200100, "ignored: kallsyms has a name"),
               Extent(0xFFFFFFFFC0200800, 0xFFFFFFFFC0200900, "x"),
               Extent(0xFFFFFFFFC0280000, 0xFFFFFFFFC0280040, "bpf_prog_00000000000000aa_late")]
    k = Kallsyms(BPF_KALLSYMS.splitlines(), lambda: extents)
    assert k.symbolise(0xFFFFFFFFC0200010) == "bpf_prog_0123456789abcdef_rb_orig_pass+0x10"
    # past the end of rb_orig_pass (the issue's +0xb19) and before the next image: unknown
    assert k.symbolise(0xFFFFFFFFC0200B19) == "0xffffffffc0200b19"
    assert k.symbolise(0xFFFFFFFFC02008FF) == "bpf_prog_fedcba9876543210_drop_icmp+0xff"
    assert k.symbolise(0xFFFFFFFFC0200900) == "0xffffffffc0200900"
    # a program kallsyms did not list when read: named from the kernel's extents
    assert k.symbolise(0xFFFFFFFFC0280008) == "bpf_prog_00000000000000aa_late+0x8"
    # trampolines and dispatchers: a page at most
    assert k.symbolise(0xFFFFFFFFC0001010) == "bpf_dispatcher_xdp+0x10 [bpf]"
    assert k.symbolise(0xFFFFFFFFC0003000) == "0xffffffffc0003000"
    # vmlinux text ends at _etext; a module's last symbol without /proc/modules: unknown
    assert k.symbolise(0xFFFFFFFF81A00099) == "tcp_v4_rcv+0x99"
    assert k.symbolise(0xFFFFFFFF82300000) == "0xffffffff82300000"
    assert k.symbolise(0xFFFFFFFFC0300046) == "0xffffffffc0300046"
    k2 = Kallsyms(BPF_KALLSYMS.splitlines(), modules={"[nf_tables]": (0xFFFFFFFFC0300000, 0xFFFFFFFFC0310000)})
    assert k2.symbolise(0xFFFFFFFFC0300046) == "nft_do_chain+0x46 [nf_tables]"
    # no extents known at all (not root): a program frame is never given a neighbour's name
    assert Kallsyms(BPF_KALLSYMS.splitlines()).symbolise(0xFFFFFFFFC0200B19) == "0xffffffffc0200b19"


def test_kallsyms_hidden_by_kptr_restrict() -> None:
    assert not Kallsyms(["0000000000000000 T _stext", "0000000000000000 T tcp_v4_rcv"]).usable


@pytest.mark.parametrize("bits,text", [(0x02, "S"), (0x12, "S."), (0x18, "P."), (0x11, "F."), (0x04, "R"),
                                       (0x10, "."), (0xC2, "SEW"), (0, "")])
def test_tcp_flags_read_as_tcpdump_prints_them(bits: int, text: str) -> None:
    assert tcp_flags(bits) == text


def test_names_of_protocols_and_endpoints() -> None:
    assert protocol_name(4, 17) == "udp" and protocol_name(6, 58) == "icmp6"
    assert protocol_name(0, 0, 0x0806) == "arp" and protocol_name(0, 0, 0x1234) == "0x1234"
    assert protocol_name(4, 250) == "250" and protocol_name(0, 0, 0) == ""
    assert endpoint(socket.inet_aton("10.0.1.2"), 80) == "10.0.1.2:80"
    assert endpoint(socket.inet_pton(socket.AF_INET6, "fd00:1::2"), 443) == "[fd00:1::2]:443"
    assert endpoint(b"", 0) == ""
    assert parse_protocol("TCP") == 6 and parse_protocol("icmpv6") == 58 and parse_protocol("47") == 47
    with pytest.raises(UsageError):
        parse_protocol("tcpx")
    with pytest.raises(UsageError):
        parse_protocol("300")


def test_clock_text_and_epoch_agree() -> None:
    import time

    c = Clock()
    ts = 123 * 10**9 - c.offset_ns % 10**9 + 456_789_999  # a wall time of S.456789999
    epoch = c.epoch(ts)
    assert c.text(ts) == time.strftime("%H:%M:%S", time.localtime(int(epoch))) + ".456789"


def test_filter_rodata() -> None:
    f = DropFilter(netns=7, ifindex=2, reasons=(3, 73, 200), protocol=17,
                   network=ipaddress.ip_network("fd00:1::/64"), port=53)
    v = f.rodata()
    mask = struct.unpack("<8Q", v["reason_mask"])  # type: ignore[arg-type]
    assert mask[0] == 1 << 3 and mask[1] == 1 << (73 - 64) and mask[3] == 1 << (200 - 192)
    assert (v["filter_netns"], v["filter_ifindex"], v["filter_reasons"]) == (7, 2, 1)
    assert (v["filter_proto"], v["proto_value"], v["filter_port"], v["port_value"]) == (1, 17, 1, 53)
    assert (v["filter_family"], v["filter_prefix"]) == (6, 64)
    assert v["filter_addr"] == ipaddress.ip_address("fd00:1::").packed
    v4 = DropFilter(network=ipaddress.ip_network("10.0.1.0/24")).rodata()
    assert v4["filter_addr"] == bytes([10, 0, 1, 0]) + bytes(12) and v4["filter_prefix"] == 24
    assert "filter_reasons" not in DropFilter().rodata()


def event(**kw: object) -> bytes:
    values = dict(ts=5_000_000_000, location=0xFFFFFFFF81A00099, reason=3, netns=0, ifindex=0, len=9,
                  eth=0x800, family=4, l4=17, sport=40000, dport=9, flags=0, hook=1, stack_bytes=0, ip_len=29,
                  saddr=bytes([10, 0, 1, 2]), daddr=bytes([10, 0, 1, 1]), sk_cookie=0, sk_side=0)
    values.update(kw)
    return _EVENT.pack(*(values[k] if not isinstance(values[k], bytes) else values[k].ljust(16, b"\0")
                         for k in values))


@pytest.fixture
def formatter() -> DropFormatter:
    r = reasons.from_format(FORMAT)
    return DropFormatter(r, Kallsyms(KALLSYMS.splitlines()), Names())


def test_decode_event() -> None:
    d = decode(event())
    assert (d.reason, d.length, d.ip_len, d.saddr, d.daddr, d.sport, d.dport) == (
        3, 9, 29, bytes([10, 0, 1, 2]), bytes([10, 0, 1, 1]), 40000, 9)
    assert decode(event(family=0)).saddr == b""
    stack = struct.pack("<3Q", 1, 2, 3)
    assert decode(event(stack_bytes=24) + stack).stack == (1, 2, 3)


@pytest.mark.parametrize("raw", [
    event(),
    event(family=6, l4=6, flags=0x12, saddr=socket.inet_pton(socket.AF_INET6, "fd00:1::2"),
          daddr=socket.inet_pton(socket.AF_INET6, "fd00:1::1")),
    event(l4=1, sport=3, dport=3),
    event(family=0, l4=0, eth=0x806, ip_len=0),
    event(reason=73, location=0xFFFFFFFFC0100046),
])
def test_fast_paths_say_what_the_columns_say(formatter: DropFormatter, raw: bytes) -> None:
    """text() and json_line() build lines from cached pieces: they must equal the rows."""
    for _ in range(2):  # the second time from the caches
        assert formatter.text(raw) == formatter.table.text(formatter.row(decode(raw)))
        assert json.loads(formatter.json_line(raw)) == formatter.json_object(raw)


def test_text_line_reads_like_the_help(formatter: DropFormatter) -> None:
    line = formatter.text(event(l4=6, flags=0x02, sport=59428, dport=81, ip_len=60))
    assert line.split()[1:] == ["NO_SOCKET", "tcp_v4_rcv+0x99", "-", "-", "tcp", "60",
                                "10.0.1.2:59428", ">", "10.0.1.1:81", "[S]"]
    obj = formatter.json_object(event(l4=1, sport=8, dport=0))
    assert (obj["protocol"], obj["icmp_type"], obj["icmp_code"], obj["sport"]) == ("icmp", 8, 0, None)


def test_stack_lines(formatter: DropFormatter) -> None:
    raw = event(stack_bytes=16) + struct.pack("<2Q", 0xFFFFFFFF81A00010, 0xFFFFFFFFC0100001)
    lines = formatter.text(raw).splitlines()
    assert [ln.strip() for ln in lines[1:]] == ["tcp_v4_rcv+0x10", "nft_do_chain+0x1 [nf_tables]"]
    assert json.loads(formatter.json_line(raw))["stack"] == ["tcp_v4_rcv+0x10", "nft_do_chain+0x1 [nf_tables]"]


def test_summary_keys_short_and_long() -> None:
    where = struct.pack("<QIIIi", 0xFFFFFFFF81A00099, 3, 7, 2, -1)
    k = decode_key(where)  # the summary without flows: only the first bytes
    assert (k.reason, k.netns, k.ifindex, k.stack_id, k.family, k.saddr) == (3, 7, 2, -1, 0, b"")
    flow = where + struct.pack("<BBHHH", 4, 17, 40000, 9, 0) + bytes([10, 0, 1, 2]).ljust(16, b"\0") \
        + bytes([10, 0, 1, 1]).ljust(16, b"\0")
    k = decode_key(flow)
    assert (k.family, k.l4_proto, k.sport, k.dport, k.saddr, k.daddr) == (
        4, 17, 40000, 9, bytes([10, 0, 1, 2]), bytes([10, 0, 1, 1]))


def test_summary_row_with_flow(formatter: DropFormatter) -> None:
    flow = struct.pack("<QIIIi", 0xFFFFFFFF81A00099, 3, 0, 0, -1) + struct.pack("<BBHHH", 4, 6, 5, 81, 0) \
        + bytes([10, 0, 1, 2]).ljust(16, b"\0") + bytes([10, 0, 1, 1]).ljust(16, b"\0")
    row = formatter.summary_row(decode_key(flow), 10, 600, 2.0)
    assert (row["count"], row["reason"], row["protocol"], row["flow"], row["dport"]) == (
        10, "NO_SOCKET", "tcp", "10.0.1.2:5 > 10.0.1.1:81", 81)


def tcp_event(**kw: object) -> bytes:
    values = dict(ts=1, skaddr=0xFFFF888000001000, duration=2_500_000, rx=1015, tx=75, netns=0, pid=42,
                  kind=int(Kind.CLOSE), family=4, old=4, new=7, lport=37924, rport=80, reason=0, segs=0,
                  err=0, total_retrans=1, srtt=120, laddr=bytes([10, 0, 1, 2]), raddr=bytes([10, 0, 11, 2]),
                  comm=b"curl", cgroup_id=0)
    values.update(kw)
    return TCP_EVENT.pack(*(v.ljust(16, b"\0") if isinstance(v, bytes) else v for v in values.values()))


def test_tcp_events_read_as_documented() -> None:
    f = TcpFormatter(Names())
    close = f.row(tcp_decode(tcp_event()))
    assert (close["event"], close["pid"], close["comm"], close["local"], close["remote"]) == (
        "CLOSE", 42, "curl", "10.0.1.2:37924", "10.0.11.2:80")
    assert close["detail"] == "tx 75 B rx 1015 B 2.5 ms retrans 1"
    assert close["container"] is None  # no cgroup id: no container, never a guess
    state = f.json_object(tcp_event(kind=int(Kind.STATE), old=2, new=1))
    assert (state["event"], state["oldstate"], state["state"]) == ("state", "SYN_SENT", "ESTABLISHED")
    rtx = f.row(tcp_decode(tcp_event(kind=int(Kind.RETRANS), new=1, segs=2, total_retrans=3)))
    assert rtx["pid"] is None and rtx["detail"] == "ESTABLISHED segs 2 (total 3) srtt 0.1 ms"
    rst = f.json_object(tcp_event(kind=int(Kind.RESET_SENT), skaddr=0, reason=1))
    assert rst["has_socket"] is False and rst["state"] is None


def test_namespace_names() -> None:
    import os

    from netbpf.tracepoints.scope import netns_inode, network, port

    here = os.stat("/proc/thread-self/ns/net").st_ino
    assert netns_inode("all") == 0 and netns_inode(".") == here and netns_inode("4026531840") == 4026531840
    assert netns_inode("/proc/self/ns/net") == os.stat("/proc/self/ns/net").st_ino
    with pytest.raises(NetbpfError, match="no such network namespace: nosuch"):
        netns_inode("nosuch")
    assert str(network("10.0.1.7/24")) == "10.0.1.0/24" and port("443") == 443
    for bad in ("0", "65536", "http"):
        with pytest.raises(argparse.ArgumentTypeError):
            port(bad)


def test_event_lists() -> None:
    assert event_list("retrans") == {Kind.RETRANS, Kind.SYNACK_RETRANS}
    assert event_list("all") == set(Kind)
    assert event_list("reset,life") == {Kind.RESET_SENT, Kind.RESET_RECEIVED, Kind.CLOSE}
    with pytest.raises(argparse.ArgumentTypeError, match="unknown event"):
        event_list("retrans,bogus")


def test_help_names_what_drops_cannot_see() -> None:
    from netbpf.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["drops"].format_help()
    assert "netbpf dump" in text and "XDP" in text and "NOT_SPECIFIED" in text
    assert "tcplife" in sub.choices["tcp"].format_help()


def test_kallsyms_notes_a_program_loaded_after_it_was_read() -> None:
    """The tracer's own program is loaded after the table is read, and once privileges
    are dropped (-Z) neither kallsyms nor the programs can be read again: note_programs,
    called as root in between, is what names the top frame of every --stack."""
    from netbpf.tools.drops.kallsyms import Extent

    loaded: list[Extent] = []
    k = Kallsyms(BPF_KALLSYMS.splitlines(), lambda: list(loaded),
                 reload=lambda: ["0000000000000000 T _stext"])  # what -Z's user reads
    frame = 0xFFFFFFFFC0280B8A
    loaded.append(Extent(0xFFFFFFFFC0280000, 0xFFFFFFFFC0281000, "bpf_prog_9b205d7fc126b73f_netbpf_drop_btf"))
    k.note_programs()
    loaded.clear()  # after -Z: nothing can be opened by id
    assert k.symbolise(frame) == "bpf_prog_9b205d7fc126b73f_netbpf_drop_btf+0xb8a"
    late = Kallsyms(BPF_KALLSYMS.splitlines(), lambda: [], reload=lambda: ["0000000000000000 T _stext"])
    assert late.symbolise(frame) == "0xffffffffc0280b8a"  # without it: raw, as seen live
