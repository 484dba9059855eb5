#!/usr/bin/env python3
"""What each redirected message costs in BPF: netbpf's sk_msg program vs the seed's.

The kernel's own accounting (BPF_ENABLE_STATS: run_cnt and run_time_ns of each
program, held on only while this script holds the fd) around sockperf
ping-pong at 64 B, 1 KiB and 16 KiB, in a sandbox of its own, through netbpf
accel (default options) and through the seed's program. Prints ns per run of
each sk_msg program; the run time includes bpf_msg_redirect_hash itself.

    sudo .venv/bin/python bench/accel_prog_cost.py [--rounds 3] [--seconds 1]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from netbpf.bpf import fs
from netbpf.tools.accel import accel, clients
from netbpf.tools.accel.sandbox import Sandbox
from netbpf.tools.accel.seed import SeedAccel

SYS_BPF = 321 if os.uname().machine == "x86_64" else 280  # x86_64, else arm64
BPF_ENABLE_STATS, BPF_STATS_RUN_TIME = 32, 0


def enable_stats() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 4)(BPF_STATS_RUN_TIME, 0, 0, 0)
    fd = int(libc.syscall(SYS_BPF, BPF_ENABLE_STATS, attr, ctypes.sizeof(attr)))
    if fd < 0:
        sys.exit(f"accel_prog_cost: BPF_ENABLE_STATS: {os.strerror(ctypes.get_errno())}")
    return fd


def run_stats(prog_id: int) -> tuple[int, int]:
    info = json.loads(subprocess.run(["bpftool", "-j", "prog", "show", "id", str(prog_id)],
                                     capture_output=True, text=True, check=True).stdout)
    return int(info.get("run_cnt", 0)), int(info.get("run_time_ns", 0))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    tag = f"c{os.getpid()}"
    box = Sandbox(tag, ("netbpf", "seed")).up()
    pin = fs.PIN_ROOT / f"accel-bench-{tag}"
    try:
        accel.enable(accel.Options(cgroup=box.cgroups["netbpf"]), pin)
        with SeedAccel(box.cgroups["seed"]) as seed:
            assert seed.obj is not None
            ids = {"netbpf (netbpf_acc_msg)": accel.read_status(pin).programs["netbpf_acc_msg"],
                   "seed (netbpf_seed_msg)": seed.obj.program("netbpf_seed_msg").id}
            fd = enable_stats()
            try:
                port = 40000
                for _ in range(args.rounds):
                    for mode in ("netbpf", "seed"):
                        for size in (64, 1024, 16384):
                            port += 1
                            clients.ping_pong(box, mode, port, size, args.seconds)
                stats = {name: run_stats(pid) for name, pid in ids.items()}
            finally:
                os.close(fd)
    finally:
        box.down()
        accel.disable(pin)
    print("| sk_msg program | runs | ns per run |")
    print("|---|---:|---:|")
    for name, (runs, ns) in stats.items():
        print(f"| {name} | {runs:,} | {ns / runs:.0f} |" if runs else f"| {name} | 0 | - |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
