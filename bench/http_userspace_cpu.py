#!/usr/bin/env python3
"""CPU per transaction of ``netbpf http``'s user-space path (TCP reassembly + HTTP
pairing), no kernel, no root: what the pairing proofs and the sniffing cost.

Segments of keep-alive connections (GET, 100-byte answer, one segment each) are
built and decoded first; only HttpTracer.feed_segment is timed (process CPU,
garbage collector off, best of ``--rounds``). Compare two trees by running it
with each on PYTHONPATH, alternately, in the same minutes (the machine is shared):

    PYTHONPATH=src .venv/bin/python bench/http_userspace_cpu.py
    PYTHONPATH=/tmp/other/src .venv/bin/python bench/http_userspace_cpu.py
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))  # tests.http_frames (after PYTHONPATH)

from netbpf.packet.decap import decode_ip
from netbpf.tools.http.tracer import HttpTracer
from tests.http_frames import TcpFlow

REQUEST = b"GET /x HTTP/1.1\r\nHost: gw\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200, help="per connection")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    segments = []
    for c in range(args.connections):
        flow = TcpFlow(("10.0.1.2", 30000 + c), ("10.0.11.2", 8080)).handshake()
        for _ in range(args.requests):
            flow.send(0, REQUEST).send(1, RESPONSE)
        segments += [decode_ip(flow.render(p), 0, 0, i * 1e-6) for i, p in enumerate(flow.packets)]
    gc.disable()
    best, count = float("inf"), 0
    for _ in range(args.rounds):
        done: list[object] = []
        tracer = HttpTracer({8080}, done.append)
        start = time.process_time()
        for seg in segments:
            tracer.feed_segment(seg)
        best = min(best, time.process_time() - start)
        count = len(done)
    import netbpf

    print(f"{netbpf.__file__}: {count} transactions, {best / count * 1e6:.2f} µs CPU per transaction "
          f"(best of {args.rounds})")


if __name__ == "__main__":
    main()
