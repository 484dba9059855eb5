"""The request/response load of ``netbpf accel bench``: a 1 KiB echo over one connection.

    python -m netbpf.tools.accel.loadgen echo --port P [--bind ADDR]
    python -m netbpf.tools.accel.loadgen rr --port P [--host ADDR] [--size N] [--seconds S]

``echo`` answers every ``size`` bytes it receives with the same bytes on the
first connection it accepts, then exits. ``rr`` sends ``size`` bytes, waits
for all of them to come back, and repeats for ``seconds``; it prints one JSON
object: round trips, round trips per second, p50 and p99 latency in µs. It
checks every answer, so a broken connection cannot pass for a fast one.
(Streams are measured with iperf3.)
"""
from __future__ import annotations

import argparse
import json
import socket
import sys
import time


def _recv_exactly(sock: socket.socket, view: memoryview) -> bool:
    got, size = 0, len(view)
    while got < size:
        n = sock.recv_into(view[got:])
        if not n:
            return False
        got += n
    return True


def echo(port: int, bind: str, size: int) -> int:
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.create_server((bind, port), family=family, dualstack_ipv6=bind == "::") as srv:
        print("listening", flush=True)
        conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(size)
    view = memoryview(buf)
    with conn:
        while _recv_exactly(conn, view):
            conn.sendall(view)
    return 0


def rr(host: str, port: int, size: int, seconds: float) -> int:
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    request = bytes(i % 251 for i in range(size))
    answer = bytearray(size)
    view = memoryview(answer)
    latencies: list[int] = []
    clock = time.perf_counter_ns
    start = clock()
    end = start + int(seconds * 1e9)
    now = start
    while now < end:
        sock.sendall(request)
        if not _recv_exactly(sock, view):
            print(json.dumps({"error": "connection closed"}), flush=True)
            return 1
        after = clock()
        latencies.append(after - now)
        now = after
    if answer != request:
        print(json.dumps({"error": "echo differs from request"}), flush=True)
        return 1
    sock.close()
    elapsed = (now - start) / 1e9
    latencies.sort()
    n = len(latencies)
    print(json.dumps({
        "round_trips": n, "seconds": round(elapsed, 3), "round_trips_per_s": n / elapsed,
        "p50_us": latencies[n // 2] / 1000, "p99_us": latencies[min(n - 1, n * 99 // 100)] / 1000,
    }), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netbpf.tools.accel.loadgen")
    sub = parser.add_subparsers(dest="mode", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--port", type=int, required=True)
    e.add_argument("--bind", default="127.0.0.1")
    e.add_argument("--size", type=int, default=1024)
    r = sub.add_parser("rr")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--size", type=int, default=1024)
    r.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.mode == "echo":
        return echo(args.port, args.bind, args.size)
    return rr(args.host, args.port, args.size, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
