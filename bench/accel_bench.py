#!/usr/bin/env python3
"""Local TCP plain, with netbpf accel and with the seed's program, in the same run: the README's table.

Runs ``netbpf accel bench`` (see ``src/netbpf/tools/accel/bench.py``): in a
network namespace and child cgroups of its own, sockperf ping-pong at 64 B,
1 KiB and 16 KiB, iperf3 streams of 1 KiB and 64 KiB writes, and nginx serving
a 1 KiB file to wrk, each plain, with netbpf accel and with the seed's own
sockops + sk_msg program (``seed_accel.bpf.c``), the order rotating per round;
prints a markdown table of medians, the ratios with their per-round spread, the
share of bytes netbpf redirected, and says what was slower or behind the seed.

    sudo .venv/bin/python bench/accel_bench.py [--duration 2] [--rounds 3] [--cells pp1k,web]
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

if __name__ == "__main__":
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    sys.exit(subprocess.call([sys.executable, "-m", "netbpf", "accel", "bench", *sys.argv[1:]], env=env))
