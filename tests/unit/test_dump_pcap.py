"""pcap and pcapng as netbpf writes them are what tshark and tcpdump read; the ring's arithmetic holds."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from netbpf.packet import pcap
from netbpf.tools.dump.ring import BLOCK_HEADER, Geometry

from . import packets as P

T0 = 1_795_000_000_123_456_789  # ns


def frames() -> list[bytes]:
    return [P.ether(P.ipv4("10.0.1.2", "10.0.1.1", 1, P.echo(7, i, bytes(i * 10))), 0x0800)
            for i in range(1, 8)]


def tshark_fields(path: Path, *fields: str) -> list[list[str]]:
    argv = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=,"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split(",") for line in out.splitlines()]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize("nano", [False, True], ids=["micro", "nano"])
def test_tshark_reads_what_netbpf_writes(tmp_path: Path, fmt: str, nano: bool) -> None:
    path = tmp_path / f"x.{fmt}"
    with open(path, "wb") as f:
        if fmt == "pcap":
            f.write(pcap.pcap_file_header(100, nano=nano))
        else:
            f.write(pcap.pcapng_file_header(["c0"], 100, nano=nano))
        for i, frame in enumerate(frames()):
            record = pcap.pcap_record if fmt == "pcap" else pcap.pcapng_record
            f.write(record(T0 + i * 1000, frame[:100], len(frame), nano=nano))
    rows = tshark_fields(path, "frame.len", "frame.cap_len", "frame.time_epoch", "icmp.seq")
    assert [int(r[0]) for r in rows] == [len(f) for f in frames()]
    assert [int(r[1]) for r in rows] == [min(100, len(f)) for f in frames()]
    assert [int(r[3]) for r in rows] == list(range(1, 8))
    digits = 9 if nano else 6
    units = [(T0 + i * 1000) // 10**(9 - digits) for i in range(7)]
    expected = [f"{u // 10**digits}.{u % 10**digits:0{digits}d}" for u in units]
    assert [r[2][:len(e)] for r, e in zip(rows, expected, strict=True)] == expected
    if fmt == "pcapng":
        out = subprocess.run(["tshark", "-r", str(path), "-T", "json", "-c", "1"], capture_output=True,
                             text=True, check=True).stdout
        frame = json.loads(out)[0]["_source"]["layers"]["frame"]
        assert frame["frame.interface_id_tree"]["frame.interface_name"] == "c0"
    # and netbpf reads it back, time stamps to the precision written
    back = pcap.read(str(path))
    scale = 1 if nano else 1000
    assert [(p.ts_ns, p.orig_len) for p in back] == [((T0 + i * 1000) // scale * scale, len(f))
                                                     for i, f in enumerate(frames())]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_reads_pcapng_written_here(tmp_path: Path) -> None:
    path = tmp_path / "x.pcapng"
    path.write_bytes(pcap.pcapng_file_header(["eth0"], 262144)
                     + b"".join(pcap.pcapng_record(T0, f) for f in frames()))
    out = subprocess.run(["tcpdump", "-nn", "-r", str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.count("ICMP echo request") == 7


@pytest.mark.parametrize("pcapng", [False, True])
def test_walking_and_counting_spans(pcapng: bool) -> None:
    record = pcap.pcapng_record if pcapng else pcap.pcap_record
    span = b"".join(record(T0 + i, f, nano=True) for i, f in enumerate(frames()))
    walk = pcap.pcapng_records if pcapng else pcap.pcap_records
    got = [(ts, bytes(span[off:off + cap]), length) for ts, off, cap, length in walk(span, True)]
    assert got == [(T0 + i, f, len(f)) for i, f in enumerate(frames())]
    n, size = pcap.count_records(span, pcapng, 3)
    assert n == 3 and size == sum(len(record(0, f)) for f in frames()[:3])
    assert pcap.count_records(span, pcapng, 100) == (7, len(span))


@pytest.mark.parametrize("snap", [64, 1500, 65535, 262144])
@pytest.mark.parametrize("buffer_kib", [1, 4096, 65536])
def test_geometry_leaves_room_for_the_largest_record(snap: int, buffer_kib: int) -> None:
    g = Geometry(snap, buffer_kib << 10, cpus=4)
    # What the verifier checks: a record starting at fill_limit, at its largest, fits.
    assert BLOCK_HEADER + g.fill_limit + g.record_max <= g.block_size
    assert g.record_max >= snap + 28 + 3 + 4  # pcapng EPB: header, padding, trailer
    assert g.block_size % 4096 == 0 and g.fill_limit >= 3 * g.block_size // 4 - BLOCK_HEADER
    assert g.blocks_per_cpu >= 2 and g.blocks_per_cpu & (g.blocks_per_cpu - 1) == 0
    assert g.blocks_per_cpu * g.block_size >= min(buffer_kib << 10, 2 * g.block_size)
