"""Each fault action on crafted frames (BPF_PROG_TEST_RUN), in XDP and in tc.

The frames come from tests/packets.py; tshark, with checksum validation on,
judges every frame the programs return. Byte-by-byte comparisons check that
nothing but the intended fields (and their checksums) changed.
"""
from __future__ import annotations

import dataclasses
import math
import struct
import subprocess
from pathlib import Path

import pytest

from netbpf.tools.fault.kernel import (
    TC_PROGRAM,
    TCP_FLAGS,
    XDP_PROGRAM,
    Action,
    Counts,
    Fault,
    Selection,
    open_object,
)

from ..packets import arp, ether, icmp, icmp6, ipv4, ipv6, tcp, v4_tcp, v4_udp, v6_tcp, v6_udp

HOOKS = ["xdp", "tc"]
PAYLOAD = bytes(range(7, 7 + 101))  # odd length: the last byte has no partner in its checksum word


def frames() -> dict[str, bytes]:
    hbh = bytes([6, 0, 5, 2, 0, 0, 1, 0])  # hop-by-hop options header, then TCP
    return {
        "v4-tcp": v4_tcp(40000, 5201, "A", PAYLOAD),
        "v4-tcp-psh": v4_tcp(40000, 5201, "PA", PAYLOAD),
        "v4-tcp-syn": v4_tcp(40000, 5201, "S"),
        "v4-tcp-options": ether(ipv4(tcp(1234, 80, "A", PAYLOAD, options=b"\x01\x01\x08\x0a" + bytes(8)), 6), 0x0800),
        "v4-ip-options": ether(ipv4(tcp(1111, 80, "A", PAYLOAD), 6, options=b"\x94\x04\x00\x00"), 0x0800),
        "v4-udp": v4_udp(40000, 53, PAYLOAD),
        "v4-udp-no-csum": ether(ipv4(struct.pack("!HHHH", 40000, 53, 8 + len(PAYLOAD), 0) + PAYLOAD, 17), 0x0800),
        "v4-icmp": ether(ipv4(icmp(8, payload=PAYLOAD), 1), 0x0800),
        "vlan-udp": v4_udp(5000, 53, PAYLOAD, vlans=(100,)),
        "qinq-tcp": v4_tcp(40000, 80, "A", PAYLOAD, vlans=(10, 100), outer_tpid=0x88A8),
        "v6-tcp": v6_tcp(40000, 5201, "A", PAYLOAD),
        "v6-udp": v6_udp(40000, 53, PAYLOAD),
        "v6-icmp": ether(ipv6(icmp6(128, rest=b"\x00\x01\x00\x01" + PAYLOAD), 58), 0x86DD),
        "v6-hbh-tcp": ether(ipv6(hbh + tcp(1000, 443, "A", PAYLOAD, src="fd00::1", dst="fd00::2"), 0), 0x86DD),
        "v4-frag-later": ether(ipv4(PAYLOAD[:96], 6, flags_frag=0x2000 | 20), 0x0800),
        "arp": ether(arp(1), 0x0806, dst=b"\xff" * 6),
    }


FRAMES = frames()


def run(fault: Fault, hook: str, packets: list[bytes], repeat: int = 1) -> tuple[list[bytes], Counts]:
    obj = open_object(fault, hook, tc_ingress=False)  # type: ignore[arg-type]
    try:
        obj.load()
        prog = obj.program(XDP_PROGRAM if hook == "xdp" else TC_PROGRAM)
        out = [prog.test_run(p, repeat=repeat).data_out for p in packets]
        return out, Counts.read(obj.map("counters"))
    finally:
        obj.close()


def verdicts(fault: Fault, hook: str, packets: list[bytes]) -> list[int]:
    obj = open_object(fault, hook, tc_ingress=False)  # type: ignore[arg-type]
    try:
        obj.load()
        prog = obj.program(XDP_PROGRAM if hook == "xdp" else TC_PROGRAM)
        return [prog.test_run(p).retval for p in packets]
    finally:
        obj.close()


def tshark_fields(tmp_path: Path, packets: list[bytes], *fields: str) -> list[dict[str, str]]:
    path = tmp_path / "out.pcap"
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for p in packets:
            f.write(struct.pack("<IIII", 0, 0, len(p), len(p)) + p)
    argv = ["tshark", "-r", str(path), "-n", "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
            "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=\t"]
    for field in fields:
        argv += ["-e", field]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(out) == len(packets)
    return [dict(zip(fields, line.split("\t"), strict=True)) for line in out]


CHECKSUMS = ["ip.checksum.status", "tcp.checksum.status", "udp.checksum.status", "icmp.checksum.status",
             "icmpv6.checksum.status"]


def checksum_states(row: dict[str, str]) -> set[str]:
    """tshark's verdicts on the frame's checksums: 1 good, 0 bad (2 unverified and
    3 not present, e.g. in a later fragment, are left out)."""
    return {row[c] for c in CHECKSUMS if row[c] not in ("", "2", "3")}


def changed(a: bytes, b: bytes) -> list[int]:
    assert len(a) == len(b)
    return [i for i in range(len(a)) if a[i] != b[i]]


# -- actions -------------------------------------------------------------------------------

@pytest.mark.parametrize("hook", HOOKS)
def test_ttl_random_in_range_checksums_valid(hook: str, tmp_path: Path) -> None:
    names = [n for n in FRAMES if n != "arp"]
    packets = [FRAMES[n] for n in names] * 8
    out, counts = run(Fault(Action.TTL), hook, packets)
    rows = tshark_fields(tmp_path, out, "ip.ttl", "ipv6.hlim", *CHECKSUMS)
    ttls = [int(r["ip.ttl"].split(",")[0] or r["ipv6.hlim"]) for r in rows]
    assert all(1 <= t <= 64 for t in ttls) and len(set(ttls)) > 20
    for row in rows:
        assert checksum_states(row) <= {"1"}, row
    for before, after in zip(packets, out, strict=True):
        assert len(changed(before, after)) <= 3  # the TTL byte and the IP header checksum
    assert counts == Counts(seen=len(packets), matched=len(packets), hit=len(packets))
    _, counts = run(Fault(Action.TTL), hook, [FRAMES["arp"]])
    assert counts == Counts(seen=1, skipped=1)


@pytest.mark.parametrize("hook", HOOKS)
def test_tcp_flags_set_and_clear(hook: str, tmp_path: Path) -> None:
    tcp_frames = ["v4-tcp", "v4-tcp-psh", "v4-tcp-syn", "v4-tcp-options", "v4-ip-options", "qinq-tcp", "v6-tcp",
                  "v6-hbh-tcp"]
    packets = [FRAMES[n] for n in tcp_frames]
    out, counts = run(Fault(Action.TCP_FLAGS, set_flags=TCP_FLAGS["PSH"]), hook, packets)
    rows = tshark_fields(tmp_path, out, "tcp.flags", *CHECKSUMS)
    flags = [int(r["tcp.flags"], 16) for r in rows]
    # The seed's rule: segments with SYN/FIN/RST/PSH are left alone.
    assert flags == [0x18, 0x18, 0x02, 0x18, 0x18, 0x18, 0x18, 0x18]
    assert all(checksum_states(r) == {"1"} for r in rows)
    assert counts == Counts(seen=8, matched=6, skipped=2, hit=6)
    # --clear ACK --set URG,ECE, with the control segments included (--skip none).
    fault = Fault(Action.TCP_FLAGS, set_flags=0x60, clear_flags=0x10, skip_flags=0)
    out, counts = run(fault, hook, packets)
    rows = tshark_fields(tmp_path, out, "tcp.flags", *CHECKSUMS)
    assert [int(r["tcp.flags"], 16) for r in rows] == [0x60, 0x68, 0x62, 0x60, 0x60, 0x60, 0x60, 0x60]
    assert all(checksum_states(r) == {"1"} for r in rows)
    _, counts = run(fault, hook, [FRAMES[n] for n in ("v4-udp", "v4-frag-later", "arp")])
    assert counts == Counts(seen=3, skipped=3)


@pytest.mark.parametrize("hook", HOOKS)
def test_rst_keeps_the_segment_and_its_checksum_valid(hook: str, tmp_path: Path) -> None:
    packets = [FRAMES[n] for n in ("v4-tcp", "v4-tcp-psh", "v4-tcp-syn", "v6-tcp")]
    out, counts = run(Fault(Action.RST), hook, packets)
    rows = tshark_fields(tmp_path, out, "tcp.flags", "tcp.len", *CHECKSUMS)
    assert [int(r["tcp.flags"], 16) for r in rows] == [0x14, 0x14, 0x04, 0x14]  # RST (+ACK if it had one)
    assert [r["tcp.len"] for r in rows] == ["101", "101", "0", "101"]
    assert all(checksum_states(r) == {"1"} for r in rows)
    assert counts.hit == 4


CORRUPTIBLE = ["v4-tcp", "v4-tcp-options", "v4-ip-options", "v4-udp", "v4-icmp", "vlan-udp", "qinq-tcp", "v6-tcp",
               "v6-udp", "v6-icmp", "v6-hbh-tcp"]


@pytest.mark.parametrize("keep", [False, True], ids=["bad-checksum", "keep-checksum"])
@pytest.mark.parametrize("hook", HOOKS)
def test_corrupt_flips_payload_bytes_only(hook: str, keep: bool, tmp_path: Path) -> None:
    packets = [FRAMES[n] for n in CORRUPTIBLE] * 10
    out, counts = run(Fault(Action.CORRUPT, corrupt_bytes=5, keep_checksum=keep), hook, packets)
    rows = tshark_fields(tmp_path, out, *CHECKSUMS)
    payload_at = [len(p) - len(PAYLOAD) for p in packets]
    for before, after, start, row, name in zip(packets, out, payload_at, rows, CORRUPTIBLE * 10, strict=True):
        diff = changed(before, after)
        flipped = [i for i in diff if i >= start]
        assert len(flipped) == 5 and flipped == list(range(flipped[0], flipped[0] + 5)), (name, diff)
        assert flipped[-1] < len(before) - 1  # the odd last byte (no checksum partner) never flips
        assert len(diff) - len(flipped) <= 2  # plus the checksum field, nothing else
        l4_status = checksum_states({**row, "ip.checksum.status": ""})
        assert l4_status == ({"1"} if keep else {"0"}), (name, row)
    assert counts == Counts(seen=len(packets), matched=len(packets), hit=len(packets))


@pytest.mark.parametrize("hook", HOOKS)
def test_corrupt_udp_without_checksum(hook: str, tmp_path: Path) -> None:
    frame = FRAMES["v4-udp-no-csum"]
    kept, _ = run(Fault(Action.CORRUPT, keep_checksum=True), hook, [frame])
    bad, _ = run(Fault(Action.CORRUPT), hook, [frame])
    assert kept[0][40:42] == b"\0\0"  # still "no checksum": nothing to keep valid
    assert tshark_fields(tmp_path, bad, "udp.checksum.status")[0]["udp.checksum.status"] == "0"


@pytest.mark.parametrize("hook", HOOKS)
def test_drop(hook: str) -> None:
    drop, passed = (1, 2) if hook == "xdp" else (2, 0xFFFFFFFF)  # XDP_DROP/PASS, TC_ACT_SHOT/UNSPEC
    packets = [FRAMES["v4-tcp"], FRAMES["arp"]]
    assert verdicts(Fault(Action.DROP), hook, packets) == [drop, drop]
    assert verdicts(Fault(Action.DROP, expression="arp"), hook, packets) == [passed, drop]


# -- the expression and the selection ------------------------------------------------------

@pytest.mark.parametrize("hook", HOOKS)
def test_expression_chooses_the_packets(hook: str) -> None:
    packets = [FRAMES[n] for n in ("v4-tcp", "v4-udp", "v6-udp", "vlan-udp", "arp")]
    out, counts = run(Fault(Action.TTL, ttl=1, expression="udp port 53 and not vlan"), hook, packets)
    assert [o == p for o, p in zip(out, packets, strict=True)] == [True, False, False, True, True]
    assert counts == Counts(seen=5, matched=2, hit=2)


def _fault(selection: Selection, expression: str = "") -> Fault:
    return Fault(Action.TTL, ttl=9, expression=expression, selection=selection)


def _hits(fault: Fault, hook: str, packets: list[bytes]) -> list[bool]:
    out, _ = run(fault, hook, packets)
    return [o != p for o, p in zip(out, packets, strict=True)]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_nth_and_limit_are_exact(hook: str) -> None:
    packets = [v4_udp(1000 + i, 53, b"x") for i in range(100)]
    hits = _hits(_fault(Selection("every", every=7)), hook, packets)
    assert [i for i, h in enumerate(hits) if h] == list(range(6, 100, 7))
    hits = _hits(_fault(Selection("every", every=7, limit=5)), hook, packets)
    assert [i for i, h in enumerate(hits) if h] == [6, 13, 20, 27, 34]
    _, counts = run(_fault(Selection(limit=13)), hook, [packets[0]], repeat=1000)
    assert counts.hit == 13 and counts.matched == 1000


@pytest.mark.parametrize("hook", HOOKS)
def test_first_per_flow_is_per_connection_both_ways(hook: str) -> None:
    packets = []
    for port in range(2000, 2010):  # 10 connections, packets of both directions interleaved
        for i in range(4):
            if i % 2:
                packets.append(v4_tcp(80, port, "A", b"x", src="10.0.0.2", dst="10.0.0.1"))
            else:
                packets.append(v4_tcp(port, 80, "A", b"x"))
    packets += [v6_tcp(port, 80, "A", b"x") for port in range(2000, 2003)]
    packets.append(v4_udp(2000, 80, b"x"))  # same ports, another protocol: another connection
    hits = _hits(_fault(Selection("first-per-flow")), hook, packets)
    assert [i for i, h in enumerate(hits) if h] == [*range(0, 40, 4), 40, 41, 42, 43]
    # The LRU remembers 1 flow: the second connection pushes the first out.
    hits = _hits(_fault(Selection("first-per-flow", flows=1)), hook, packets[:8] + packets[:1])
    assert hits == [True, False, False, False, True, False, False, False, True]


@pytest.mark.parametrize("hook", HOOKS)
def test_probability_within_sigmas(hook: str) -> None:
    n, p = 200_000, 0.25  # 4.5 sigma is +-0.0044: a correct tool fails once in 150,000 runs
    _, counts = run(_fault(Selection("sample", probability=p)), hook, [FRAMES["v4-udp"]], repeat=n)
    assert abs(counts.hit / n - p) <= 4.5 * math.sqrt(p * (1 - p) / n), counts
    _, counts = run(_fault(Selection("sample", probability=0.0)), hook, [FRAMES["v4-udp"]], repeat=500)
    assert counts.hit == 0 and counts.matched == 500
    _, counts = run(_fault(Selection("sample", probability=1.0)), hook, [FRAMES["v4-udp"]], repeat=500)
    assert counts.hit == 500


def test_every_configuration_loads() -> None:
    """The verifier accepts each action with each selection, on each hook (the
    const volatile globals prune different branches in each)."""
    selections = [Selection(), Selection("sample", probability=0.1, limit=5), Selection("every", every=3),
                  Selection("first-per-flow", limit=3)]
    faults = [Fault(Action.TTL), Fault(Action.TCP_FLAGS, set_flags=8), Fault(Action.DROP),
              Fault(Action.CORRUPT, corrupt_bytes=64), Fault(Action.CORRUPT, keep_checksum=True),
              Fault(Action.DUPLICATE), Fault(Action.RST)]
    for fault in faults:
        for hook in HOOKS:
            if hook == "xdp" and fault.action == Action.DUPLICATE:
                continue
            for selection in selections:
                obj = open_object(dataclasses.replace(fault, selection=selection, expression="tcp or udp"),
                                  hook)  # type: ignore[arg-type]
                try:
                    obj.load()
                finally:
                    obj.close()
