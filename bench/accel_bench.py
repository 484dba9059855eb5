#!/usr/bin/env python3
"""Local TCP with and without netbpf accel, in the same run: the README's table.

Runs ``netbpf accel bench`` (see ``src/netbpf/tools/accel/bench.py``): in a
network namespace and child cgroups of its own, iperf3 streams with 64 KiB and
1 KiB writes and a 1 KiB request/response echo, without acceleration and with
it (also with the seed's behaviour: every message redirected, no limit on
unread data), rounds alternating; prints a markdown table of medians and the
ratios against the run without acceleration, and says what was slower.

    sudo .venv/bin/python bench/accel_bench.py [--seconds 3] [--rounds 5]
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
