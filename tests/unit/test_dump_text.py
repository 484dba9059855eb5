"""netbpf's packet lines against ``tcpdump -nn -r`` on the same file, line by line.

The files: real traffic captured by tcpdump in the lab (ARP, ICMP and ICMPv6
with neighbour discovery, IPv4 and IPv6 fragments, VLAN and QinQ frames, an
unknown ethertype, HTTP over TCP, TCP resets, UDP and port unreachables;
VXLAN with MLD reports), and frames built here for the rarer fields (SACK,
urgent pointer, ECN flags, ICMP errors, truncated captures).
Where tcpdump goes on to decode an application protocol (HTTP, DNS), the
fields before it must be identical.
"""
from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from netbpf.packet import pcap
from netbpf.packet.tcpdump import TcpdumpPrinter

from . import packets as P

DATA = Path(__file__).resolve().parent.parent / "data"
pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")


def tcpdump_lines(path: Path, *extra: str) -> list[str]:
    out = subprocess.run(["tcpdump", "-nn", *extra, "-r", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if not line.startswith("\t")]  # hex dumps


def our_lines(path: Path, absolute: bool = False) -> list[str]:
    printer = TcpdumpPrinter(absolute_seq=absolute)
    lines: list[str] = []
    for packet in pcap.read(str(path)):
        lines.extend(printer.line(packet.ts_ns, packet.data, packet.orig_len).split("\n"))
    return lines


_UDP_TAIL = re.compile(r"UDP, length \d+$")


def same_fields(ours: str, theirs: str) -> bool:
    """Equal, or tcpdump printed the same and then decoded the application on top."""
    if ours == theirs:
        return True
    if theirs.startswith(ours + ": "):  # TCP payload decoded (HTTP...)
        return True
    if ours.endswith(": "):  # unknown ethertype: tcpdump follows with a hex dump
        return theirs == ours.rstrip()
    if _UDP_TAIL.search(ours):  # tcpdump names the application instead of "UDP, length N"
        return theirs.startswith(_UDP_TAIL.sub("", ours)) and theirs != _UDP_TAIL.sub("", ours)
    return False


def compare(path: Path, *extra: str, absolute: bool = False) -> int:
    ours, theirs = our_lines(path, absolute), tcpdump_lines(path, *extra)
    assert len(ours) == len(theirs), (ours, theirs)
    exact = 0
    for mine, reference in zip(ours, theirs, strict=True):
        assert same_fields(mine, reference), f"\n netbpf: {mine}\ntcpdump: {reference}"
        exact += mine == reference
    return exact


def test_mixed_lab_traffic_reads_as_tcpdump_reads_it() -> None:
    path = DATA / "dump_mixed.pcap"
    exact = compare(path)
    assert exact >= 40  # most lines are identical as a whole, not just by prefix
    text = "\n".join(our_lines(path))
    for expected in ("ARP, Request who-has", "ICMP6, neighbor solicitation", "frag (1448|1448)",
                     "ip-proto-1", "Flags [S.]", "Flags [R.]", "udp port 33333 unreachable",
                     "IP 10.0.100.2 > 10.0.100.1: ICMP echo request, id 77, seq 2",  # QinQ
                     "ethertype Unknown (0x88b5)"):
        assert expected in text


def test_absolute_sequence_numbers_as_tcpdump_S() -> None:
    compare(DATA / "dump_mixed.pcap", "-S", absolute=True)


def test_vxlan_and_its_inner_frames() -> None:
    compare(DATA / "dump_vxlan.pcap")
    assert any("VXLAN, flags [I] (0x08), vni 101" in line for line in our_lines(DATA / "dump_vxlan.pcap"))


def synthetic_frames() -> list[bytes]:
    a, b = "10.0.1.2", "10.0.1.1"
    sack = struct.pack("!BB", 1, 1) + struct.pack("!BBII", 5, 10, 2000 + 1001, 2000 + 2001)
    ts = struct.pack("!BBBBII", 1, 1, 8, 10, 12345, 678)
    inner_udp = P.ipv4(b, a, 17, P.udp(4000, 53, b"q" * 4))
    inner_tcp = P.ipv4(a, b, 6, P.tcp(40000, 5555, 1, 2, 0x18))[:28]
    v6a, v6b = "fd00:1::2", "fd00:1::1"
    dst_opts = bytes([58, 0, 1, 4, 0, 0, 0, 0])  # next: ICMPv6, PadN
    return [
        P.tcp4(a, b, 40000, 5555, 1000, 0, 0x02, options=struct.pack("!BBH", 2, 4, 1460)),
        P.tcp4(b, a, 5555, 40000, 2000, 1001, 0x12),
        P.tcp4(a, b, 40000, 5555, 1001, 2001, 0x10),
        P.tcp4(a, b, 40000, 5555, 1001, 2001, 0x18, payload=b"x" * 100, options=ts),
        P.tcp4(b, a, 5555, 40000, 2001, 1101, 0x10, options=sack),  # SACK, relative edges
        P.tcp4(a, b, 40000, 5555, 1101, 2001, 0x38, payload=b"u" * 10, urg=5),  # URG
        P.tcp4(a, b, 40001, 81, 7, 0, 0xC2),  # SYN with ECE+CWR
        P.tcp4(a, b, 40002, 82, 7, 9, 0x00),  # no flags at all
        P.tcp4(a, b, 40002, 82, 7, 9, 0x04, options=bytes([99, 4, 1, 2])),  # unknown option
        P.ether(P.ipv4(b, a, 1, P.icmp(11, 0, bytes(4) + inner_udp)), 0x0800),  # time exceeded
        P.ether(P.ipv4(b, a, 1, P.icmp(3, 4, struct.pack("!HH", 0, 1400) + inner_tcp)), 0x0800),
        P.ether(P.ipv4(b, a, 1, P.icmp(3, 1, bytes(4) + inner_tcp)), 0x0800),  # host unreachable
        P.ether(P.ipv4(b, a, 1, P.icmp(5, 1, socket.inet_aton("10.0.1.254") + inner_tcp)), 0x0800),
        P.ether(P.ipv4(b, a, 1, P.icmp(13, 0, struct.pack("!HH", 5, 6) + bytes(12))), 0x0800),
        P.ether(P.ipv4(a, b, 253, b"\0" * 8), 0x0800),  # experimental protocol
        P.ether(P.arp(2, P.SERVER_MAC, b, P.CLIENT_MAC, a), 0x0806),
        P.ether(P.arp(1, P.CLIENT_MAC, a, P.SERVER_MAC, b), 0x0806),  # target MAC known
        P.ether(P.ipv6(v6a, v6b, 60, dst_opts + P.icmp6(128, 0, struct.pack("!HH", 9, 1))), 0x86DD),
        P.ether(P.ipv6(v6b, v6a, 58, P.icmp6(2, 0, struct.pack("!I", 1280) + bytes(48))), 0x86DD),
        P.ether(P.ipv6(v6b, v6a, 58, P.icmp6(3, 0, bytes(4) + P.ipv6(v6a, "fd00:2::1", 17, b""))), 0x86DD),
        P.ether(P.ipv6(v6b, v6a, 58, P.icmp6(1, 3, bytes(4) + P.ipv6(v6a, "fd00:2::1", 17, b""))), 0x86DD),
        P.ether(P.ipv6(v6a, v6b, 6, P.tcp(5000, 443, 1, 0, 0x02)), 0x86DD),
        P.ether(P.ipv6(v6a, v6b, 17, P.udp(5000, 5001, b"z" * 7)), 0x86DD),
        P.ether(P.ipv4(a, b, 17, P.udp(5000, 5001, b"z" * 7)), 0x0800, vlans=(10,)),
    ]


def write_pcap(path: Path, frames: list[bytes], snaplen: int = 262144) -> None:
    with open(path, "wb") as f:
        f.write(pcap.pcap_file_header(snaplen))
        for i, frame in enumerate(frames):
            f.write(pcap.pcap_record(1_700_000_000_000_000_000 + i * 1_000_000, frame[:snaplen], len(frame)))


def test_rarer_fields_read_as_tcpdump_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.pcap"
    write_pcap(path, synthetic_frames())
    exact = compare(path)
    assert exact == len(synthetic_frames())
    text = "\n".join(our_lines(path))
    assert "sack 1 {2001:3001}" in text and "urg 5" in text and "Flags [SEW]" in text


def test_truncated_captures_say_where_they_stop(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pcap"
    frames = [f for f in synthetic_frames() if len(f) > 60]
    for snaplen in (16, 40, 54, 60):
        write_pcap(path, frames, snaplen=snaplen)
        ours, theirs = our_lines(path), tcpdump_lines(path)
        assert len(ours) == len(theirs)
        agree = sum(same_fields(o, t) for o, t in zip(ours, theirs, strict=True))
        # The address part is always right; where the capture stops inside a
        # header, tcpdump and netbpf both say so (" [|proto]"), in their words.
        for o, t in zip(ours, theirs, strict=True):
            assert o.split(": ")[0] == t.split(": ")[0] or "[|" in o
        assert agree >= len(frames) // 2, (snaplen, list(zip(ours, theirs, strict=True)))
