"""``netbpf dump -r`` reads files as tcpdump reads them: any link type, damage, -w.

Every check runs ``tcpdump -nn -r`` on the same file as the reference: the
same lines (tcpdump prints them for netbpf: the test is that netbpf hands it
the right packets, filtered by libpcap for the file's link type), the same
count of good packets before damage, the same exit status.
"""
from __future__ import annotations

import random
import resource
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from netbpf.packet import pcap

from ..packets import arp, ether, icmp6, ipv4, ipv6, tcp, udp, v4_tcp, v4_udp

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
NETBPF = [sys.executable, "-m", "netbpf.cli"]
DLT_NULL, DLT_EN10MB, DLT_RAW, DLT_LINUX_SLL, DLT_LINUX_SLL2 = 0, 1, 101, 113, 276


def l3_packets() -> list[tuple[int, bytes]]:
    """(ethertype, network-layer packet) of a few kinds."""
    return [(0x0800, ipv4(tcp(40000, 80, "S"), 6)), (0x0800, ipv4(udp(5353, 53, b"\x12\x34" + bytes(10)), 17)),
            (0x86DD, ipv6(tcp(1, 443, "SA", src="fd00::1", dst="fd00::2"), 6)),
            (0x86DD, ipv6(icmp6(128), 58)), (0x0800, ipv4(udp(1, 2, bytes(30)), 17, "192.168.1.1", "192.168.1.2"))]


def framed(linktype: int, ethertype: int, packet: bytes, outgoing: bool = False) -> bytes:
    if linktype == DLT_EN10MB:
        return ether(packet, ethertype)
    if linktype == DLT_RAW:
        return packet
    if linktype == DLT_NULL:  # host byte order AF_ value
        return struct.pack("<I", 2 if ethertype == 0x0800 else 10) + packet
    if linktype == DLT_LINUX_SLL:
        return struct.pack("!HHH8sH", 4 if outgoing else 0, 1, 6, bytes(8), ethertype) + packet
    if linktype == DLT_LINUX_SLL2:
        return struct.pack("!HHIHBB8s", ethertype, 0, 3, 1, 4 if outgoing else 0, 6, bytes(8)) + packet
    raise AssertionError(linktype)


def pcap_file(path: Path, linktype: int, frames: list[bytes]) -> Path:
    body = b"".join(pcap.pcap_record(1_700_000_000_000_000_000 + n * 1_000_000, f) for n, f in enumerate(frames))
    path.write_bytes(pcap.pcap_file_header(262144, linktype) + body)
    return path


def tcpdump(path: Path, *args: str) -> tuple[list[str], int]:
    run = subprocess.run(["tcpdump", "-nn", "-r", str(path), *args], capture_output=True, text=True)
    return run.stdout.splitlines(), run.returncode


def netbpf(path: Path, *args: str) -> tuple[list[str], str, int]:
    run = subprocess.run([*NETBPF, "dump", "-r", str(path), *args], capture_output=True, text=True)
    return run.stdout.splitlines(), run.stderr, run.returncode


@pytest.mark.parametrize("linktype", [DLT_EN10MB, DLT_RAW, DLT_NULL, DLT_LINUX_SLL, DLT_LINUX_SLL2])
@pytest.mark.parametrize("expression", ["", "ip6", "tcp", "udp port 53", "not host 192.168.1.1"])
def test_each_link_type_prints_and_filters_as_tcpdump(tmp_path: Path, linktype: int, expression: str) -> None:
    path = pcap_file(tmp_path / "f.pcap", linktype, [framed(linktype, e, p) for e, p in l3_packets()])
    want, status = tcpdump(path, *expression.split())
    got, err, code = netbpf(path, *expression.split())
    assert status == 0 and (want or expression), "tcpdump itself must read the file"
    assert (got, code) == (want, 0), err


@pytest.mark.parametrize("flags", [["-e"], ["-v"], ["-vv", "-e"], ["-X"], ["-A"], ["-q"], ["-t"], ["-tttt"]])
def test_tcpdump_flags_mean_what_they_mean_in_tcpdump(tmp_path: Path, flags: list[str]) -> None:
    frames = [ether(p, e) for e, p in l3_packets()] + [ether(arp(1), 0x0806)]
    path = pcap_file(tmp_path / "f.pcap", DLT_EN10MB, frames)
    want, _ = tcpdump(path, *flags)
    got, err, code = netbpf(path, *flags)
    assert (got, code) == (want, 0), err


def test_a_cooked_capture_by_tcpdump_itself(tmp_path: Path) -> None:
    """Linux cooked v2, outgoing packets included: filters compiled for SLL2 (inbound/outbound too)."""
    frames = [framed(DLT_LINUX_SLL2, e, p, outgoing=n % 2 == 1) for n, (e, p) in enumerate(l3_packets())]
    path = pcap_file(tmp_path / "sll2.pcap", DLT_LINUX_SLL2, frames)
    for expression in ("outbound", "inbound and ip", "ip6 and outbound"):
        want, _ = tcpdump(path, *expression.split())
        got, err, code = netbpf(path, *expression.split())
        assert (got, code) == (want, 0), err
        assert want


def pcapng_file(path: Path, interfaces: list[tuple[int, str]], packets: list[tuple[int, bytes]]) -> Path:
    out = pcap.pcapng_file_header([], 0)
    for linktype, name in interfaces:
        out += pcap.pcapng_interface(name, 262144, linktype)
    for n, (iface, frame) in enumerate(packets):
        out += pcap.pcapng_record(1_700_000_000_000_000_000 + n * 1_000_000, frame, interface=iface)
    path.write_bytes(out)
    return path


def test_pcapng_with_interfaces_of_several_link_types(tmp_path: Path) -> None:
    """tcpdump (libpcap 1.10) refuses such a file; netbpf reads it, each packet as its interface's
    type. The reference: the same packets split into one pcap file per link type."""
    kinds = [(DLT_EN10MB, "eth0"), (DLT_RAW, "tun0"), (DLT_LINUX_SLL2, "any")]
    packets = [(n % 3, framed(kinds[n % 3][0], e, p)) for n, (e, p) in enumerate(l3_packets() * 3)]
    path = pcapng_file(tmp_path / "mixed.pcapng", kinds, packets)
    for expression in ("", "tcp or icmp6"):
        got, err, code = netbpf(path, *expression.split())
        want: list[str] = []
        for n, (iface, frame) in enumerate(packets):  # one file per packet keeps the order
            one = tmp_path / f"one{n}.pcap"
            one.write_bytes(pcap.pcap_file_header(262144, kinds[iface][0])
                            + pcap.pcap_record(1_700_000_000_000_000_000 + n * 1_000_000, frame))
            want += tcpdump(one, *expression.split())[0]
        assert (got, code) == (want, 0), err
        assert len(want) >= 6


def test_read_with_write_filters_a_file_into_a_file(tmp_path: Path) -> None:
    frames = [ether(p, e) for e, p in l3_packets()] * 4
    src = pcap_file(tmp_path / "in.pcap", DLT_EN10MB, frames)
    for out in ("out.pcap", "out.pcapng"):
        got, err, code = netbpf(src, "-w", str(tmp_path / out), "tcp")
        assert (got, code) == ([], 0), err
        assert tcpdump(tmp_path / out)[0] == tcpdump(src, "tcp")[0] != []


# -- damage ---------------------------------------------------------------------------------

def good_file(tmp_path: Path) -> Path:
    frames = [v4_tcp(40000 + n, 80, "S") if n % 2 else v4_udp(5000, 53, bytes(n)) for n in range(12)]
    return pcap_file(tmp_path / "good.pcap", DLT_EN10MB, frames)


def damaged(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_damaged_files_read_as_tcpdump_reads_them(tmp_path: Path) -> None:
    good = good_file(tmp_path).read_bytes()
    first = 24 + 16 + 42 + 0  # the file header and the first record (UDP, no payload)
    cases = {
        "cut-mid-file-header": good[:13],
        "cut-mid-record-header": good[:first + 7],
        "cut-mid-record": good[:first + 30],
        "cut-at-the-end": good[:-1],
        "garbage": bytes(random.Random(1).randbytes(500)),
        "huge-caplen": good[:first] + struct.pack("<IIII", 1, 0, 10_000_000, 60) + good[first + 16:],
        "empty": b"",
    }
    for name, data in cases.items():
        path = damaged(tmp_path, name + ".pcap", data)
        want, status = tcpdump(path)
        got, err, code = netbpf(path)
        assert (got, code) == (want, status), f"{name}: {err}"
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, f"{name}: {err}"
        assert status == 1


def test_a_pcapng_packet_on_an_unknown_interface_stops_the_reading(tmp_path: Path) -> None:
    frames = [(0, ether(p, e)) for e, p in l3_packets()]
    frames.insert(3, (5, ether(*reversed(l3_packets()[0]))))  # interface 5: no description
    path = pcapng_file(tmp_path / "bad-if.pcapng", [(DLT_EN10MB, "eth0")], frames)
    want, status = tcpdump(path)
    got, err, code = netbpf(path)
    assert (got, code) == (want, status) and len(got) == 3 and status == 1, err
    assert "interface 5" in err


def test_random_damage_never_gives_a_traceback(tmp_path: Path) -> None:
    """Property: whatever the damage, every good packet first and one line, never a traceback."""
    good = good_file(tmp_path).read_bytes()
    ng = pcapng_file(tmp_path / "g.pcapng", [(DLT_EN10MB, "e"), (DLT_RAW, "r")],
                     [(n % 2, framed(DLT_EN10MB if n % 2 == 0 else DLT_RAW, e, p))
                      for n, (e, p) in enumerate(l3_packets() * 2)]).read_bytes()
    rng = random.Random(20261206)
    for n in range(300):
        base = bytearray(good if n % 2 else ng)
        for _ in range(rng.randint(1, 6)):
            action = rng.choice(("flip", "cut", "insert", "zero"))
            at = rng.randrange(len(base))
            if action == "flip":
                base[at] ^= 1 << rng.randrange(8)
            elif action == "cut":
                del base[at:]
                if not base:
                    break
            elif action == "insert":
                base[at:at] = rng.randbytes(rng.randint(1, 20))
            else:
                base[at:at + 4] = bytes(4)
        reader = None
        try:
            import io

            reader = pcap.Reader(io.BytesIO(bytes(base)))
            packets = list(reader)
        except pcap.PcapFormatError:
            continue
        assert all(isinstance(p.data, bytes) for p in packets)
        assert isinstance(reader.stopped, str)
    # and the command line, on a few of them
    for n in range(20):
        data = bytearray(good)
        data[rng.randrange(24, len(data))] ^= 0xFF
        del data[rng.randrange(24, len(data)):]
        got, err, code = netbpf(damaged(tmp_path, f"r{n}.pcap", bytes(data)))
        want, status = tcpdump(tmp_path / f"r{n}.pcap")
        assert "Traceback" not in err
        assert (got, code) == (want, status), err


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Streaming: a file 40 times longer costs (almost) no more memory to read and filter."""
    frame = pcap.pcap_record(1_000_000_000, v4_tcp(1, 80, "A", bytes(1400)))
    small, big = tmp_path / "small.pcap", tmp_path / "big.pcap"
    header = pcap.pcap_file_header(262144)
    small.write_bytes(header + frame * 1000)
    with open(big, "wb") as f:
        f.write(header)
        for _ in range(40):
            f.write(frame * 1000)  # 58 MB

    def peak_kib(path: Path) -> int:
        code = ("import resource, sys; from netbpf.cli import main; "
                f"rc = main(['dump', '-r', {str(path)!r}, '-w', '/dev/null', 'tcp']); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return int(run.stdout.split()[-1])

    assert big.stat().st_size > 50_000_000
    assert peak_kib(big) < peak_kib(small) + 16 * 1024
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0
