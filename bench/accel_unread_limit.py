#!/usr/bin/env python3
"""How much of a flat-out 64 KiB iperf3 stream stays redirected, by unread limit.

A redirect has no flow control: when the reader is slower than the writer (a
loaded machine, a descheduled reader) the unread data at the reader grows until
``--max-queued`` moves the writer to TCP for good. This runs the same stream,
in a sandbox of its own, plain and with netbpf accel at several limits (the
default, larger ones, none), rounds rotating, and prints medians: Gbit/s, its
ratio to plain in the same run, the share of bytes redirected and the most a
reader left unread.

    sudo .venv/bin/python bench/accel_unread_limit.py [--seconds 2] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from netbpf.bpf import fs
from netbpf.tools.accel import accel, clients
from netbpf.tools.accel.sandbox import Sandbox

MIB = 1 << 20


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--length", default="64K")
    args = parser.parse_args()
    default = accel.tcp_max_buffered()
    limits = {"default": None, "4x": 4 * default, "16x": 16 * default, "none": 0}
    tag = f"u{os.getpid()}"
    box = Sandbox(tag, ("plain", *limits)).up()
    pins = {name: fs.PIN_ROOT / f"accel-bench-{tag}-{name}" for name in limits}
    rate: dict[str, list[float]] = {}
    share: dict[str, list[float]] = {}
    unread: dict[str, list[int]] = {}
    port = 30000
    try:
        for name, limit in limits.items():
            accel.enable(accel.Options(cgroup=box.cgroups[name], max_queued=limit), pins[name])
        modes = ["plain", *limits]
        for r in range(args.rounds):
            for mode in modes[r % len(modes):] + modes[:r % len(modes)]:
                port += 1
                before = accel.read_status(pins[mode]).counters if mode in pins else {}
                gbits = clients.stream(box, mode, port, args.length, args.seconds)
                rate.setdefault(mode, []).append(gbits)
                line = f"round {r + 1}: {mode}: {gbits:.2f} Gbit/s"
                if mode in pins:
                    after = accel.read_status(pins[mode]).counters
                    red = after["bytes_redirected"] - before["bytes_redirected"]
                    tcp = after["bytes_tcp"] - before["bytes_tcp"]
                    share.setdefault(mode, []).append(red / (red + tcp) if red + tcp else 0.0)
                    unread.setdefault(mode, []).append(after["max_unread_bytes"])
                    line += f", {share[mode][-1]:.0%} redirected"
                print(line, file=sys.stderr, flush=True)
    finally:
        box.down()
        for pin in pins.values():
            accel.disable(pin)
    plain = statistics.median(rate["plain"])
    print("| unread limit | Gbit/s | vs plain | bytes redirected | most left unread |")
    print("|---|---:|---:|---:|---:|")
    print(f"| plain TCP | {plain:.2f} | 1.00× | - | - |")
    for name, limit in limits.items():
        shown = ("default, " if limit is None else "") + (
            "none (`--max-queued 0`)" if limit == 0 else f"{(limit or default) / MIB:.0f} MiB")
        g = statistics.median(rate[name])
        print(f"| {shown} | {g:.2f} | {g / plain:.2f}× | {statistics.median(share[name]):.0%} | "
              f"{max(unread[name]) / MIB:.0f} MiB |")
    print(f"\nMedians of {args.rounds} rounds of {args.seconds:g} s, iperf3 -l {args.length}, modes rotating.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
