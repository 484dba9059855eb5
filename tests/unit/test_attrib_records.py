"""The owner a capture record carries (binary, for lines and JSON) becomes JSON fields and text."""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from netbpf.attrib import procfs, sockdiag
from netbpf.attrib.tracker import (
    FOUND,
    NO_SOCKET,
    OWNER,
    TIME_WAIT,
    UNKNOWN_OWNER,
    AttribRecord,
    Owners,
    label,
)
from netbpf.packet import pcap
from netbpf.packet.tcpdump import TcpdumpPrinter
from netbpf.tools.dump.attribution import (
    OwnerJsonSink,
    epb_records,
    owner_option,
)

from .packets import ether, ipv4, udp

ID = "ab" * 32


def udp4(sport: int, dport: int, payload: bytes) -> bytes:
    return ether(ipv4("10.0.0.1", "10.0.0.2", 17, udp(sport, dport, payload)), 0x0800)
CGROUP = f"/system.slice/docker-{ID}.scope"


def owners() -> Owners:
    names = procfs.CgroupNames(Path("/nonexistent"))
    names.remember(4242, CGROUP)
    names._walked = time.monotonic() + 3600  # never walk: the test's names only
    return Owners(names)


def kernel_epb(ts_us: int, frame: bytes, rec: AttribRecord | None) -> bytes:
    """An Enhanced Packet Block as dump.bpf.c writes it (with or without the owner option)."""
    return pcap.pcapng_record(ts_us * 1000, frame, options=b"" if rec is None else owner_option(bytes(rec)))


def records() -> tuple[bytes, list[bytes]]:
    frames = [udp4(sport=1000 + i, dport=53, payload=b"x" * i) for i in range(4)]
    recs = [
        AttribRecord(cookie=7, status=OWNER, pid=123, tid=124, origin=1, cgroup_id=4242, comm=b"curl"),
        AttribRecord(status=NO_SOCKET),
        AttribRecord(cookie=9, status=UNKNOWN_OWNER),
        AttribRecord(status=TIME_WAIT),
    ]
    span = b"".join(kernel_epb(1_700_000_000_000_000 + i, f, r) for i, (f, r) in enumerate(zip(frames, recs, strict=True)))
    return span, frames


COMMENTS = [f"pid 123 comm curl cgroup {CGROUP} container docker:{ID[:12]}", "no local socket",
            "local socket, owner unknown", "local socket in TIME-WAIT, closed by its process"]


def test_walk_finds_each_owner_option() -> None:
    span, frames = records()
    found = epb_records(span, nano=False)
    assert [caplen for _, _, _, caplen, _, _ in found] == [len(f) for f in frames]
    assert all(owner > 0 for *_, owner in found)
    plain = kernel_epb(5, frames[0], None)
    assert epb_records(plain, nano=False)[0][-1] == -1


def test_json_fields(capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    span, _ = records()
    sink = OwnerJsonSink(TcpdumpPrinter(), sys.stdout, owners(), None, {"hook": "tc-egress"})
    sink.write(memoryview(span))
    sink.flush()
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["pid"] == 123 and lines[0]["comm"] == "curl" and lines[0]["cgroup"] == CGROUP
    assert lines[0]["container"] == ID and lines[0]["container_runtime"] == "docker"
    assert [line["owner"] for line in lines] == ["known", *COMMENTS[1:]]
    assert all(line["pid"] is None for line in lines[1:])


def test_removed_cgroup_and_shared_socket_say_so() -> None:
    rec = AttribRecord(cookie=1, status=OWNER, pid=5, tid=3, origin=FOUND, cgroup_id=99, comm=b"nginx")
    text = owners().owner(bytes(rec)).comment()
    assert text == ("pid 5 comm nginx cgroup id 99 (removed) "
                    "(socket open in 3 processes at start: lowest pid shown)")


def test_labels_name_path_and_container() -> None:
    assert label(CGROUP) == f"{CGROUP} container docker:{ID[:12]}"
    assert label("/user.slice") == "/user.slice"


def test_sockdiag_message_parse() -> None:
    """inet_diag_msg: cookie at 44 (two u32, low first), inode at 68."""
    msg = bytearray(72)
    struct.pack_into("=II", msg, 44, 0x89ABCDEF, 0x01234567)
    struct.pack_into("=I", msg, 68, 31337)
    s = sockdiag.parse(bytes(msg), 2, 6)
    assert (s.cookie, s.inode) == (0x0123456789ABCDEF, 31337)
