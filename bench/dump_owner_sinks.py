#!/usr/bin/env python3
"""netbpf dump's lines and JSON in Python, without and with each packet's owner.

What `netbpf dump --process` (lines) and `--process --json` add in user space
per packet: the capture program writes the owner record after each packet,
and Python decodes it and writes the owner beside the packet. The same
pcapng records (a 64-byte UDP frame, one socket's owner) go through the sink
without owners (TextSink/JsonSink, netbpf's own printer) and with them
(OwnerTextSink/OwnerJsonSink), output discarded; CPU time (process_time),
alternating, median of --repeat. No root, no kernel: only the Python side.

    .venv/bin/python bench/dump_owner_sinks.py [--packets 50000] [--repeat 5]
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from netbpf.attrib import procfs
from netbpf.attrib.tracker import CREATED, OWNER, AttribRecord, Owners
from netbpf.packet import pcap
from netbpf.packet.tcpdump import TcpdumpPrinter
from netbpf.tools.dump.attribution import OwnerJsonSink, OwnerTextSink, owner_option
from netbpf.tools.dump.flood import udp_frame
from netbpf.tools.dump.sinks import JsonSink, TextSink

CGROUP = "/system.slice/docker-" + "ab" * 32 + ".scope"


class Discard(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


def epb(ts_ns: int, frame: bytes, owner: AttribRecord | None) -> bytes:
    """An Enhanced Packet Block as the capture program writes it (nanosecond units)."""
    return pcap.pcapng_record(ts_ns, frame, nano=True, options=b"" if owner is None else owner_option(bytes(owner)))


def owners() -> Owners:
    names = procfs.CgroupNames(Path("/nonexistent"))
    names.remember(1, CGROUP)
    return Owners(names)


def one(kind: str, with_owner: bool, span: memoryview) -> float:
    printer = TcpdumpPrinter()
    sink: TextSink | JsonSink | OwnerTextSink | OwnerJsonSink
    context = {"ifname": "c0", "hook": "xdp"}
    if with_owner:
        sink = (OwnerTextSink(printer, Discard(), owners(), None) if kind == "lines"
                else OwnerJsonSink(printer, Discard(), owners(), None, context))
    else:
        sink = (TextSink(printer, Discard(), True, True, None) if kind == "lines"
                else JsonSink(printer, Discard(), True, True, None, context))
    start = time.process_time()
    sink.write(span)
    sink.flush()
    return time.process_time() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    frame = udp_frame(bytes(6), bytes(6), "10.0.1.2", "10.0.1.1", 1234, 5678)
    owner = AttribRecord(cookie=77, status=OWNER, pid=4242, tid=4242, origin=CREATED, cgroup_id=1, comm=b"python")
    plain = memoryview(b"".join(epb(10**18 + i * 1000, frame, None) for i in range(args.packets)))
    owned = memoryview(b"".join(epb(10**18 + i * 1000, frame, owner) for i in range(args.packets)))
    print(f"{args.packets:,} records of a 64-byte UDP frame, one socket's owner; CPU µs per packet, "
          f"median of {args.repeat} (a shared machine: ratios within this run only)\n")
    print("| output | without owners | with owners | ratio |")
    print("|---|---:|---:|---:|")
    for kind in ("lines", "json"):
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeat):
            for with_owner in (False, True):
                runs[with_owner].append(one(kind, with_owner, owned if with_owner else plain))
        without, with_ = (statistics.median(runs[w]) / args.packets * 1e6 for w in (False, True))
        print(f"| {kind} | {without:.2f} | {with_:.2f} | {with_ / without:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
