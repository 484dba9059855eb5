#!/usr/bin/env python3
"""netbpf dump with and without attribution (--process), on the same UDP flood.

The lab and the flood are bench/dump_capture.py's: 64-byte UDP frames from
the client to the gateway's c0 (10.0.1.1:5678), captured at XDP on c0 by
``netbpf dump -w FILE.pcapng``, the capture pinned to CPU 1, the sender to
CPU 0. A process in the gateway holds a UDP socket on 10.0.1.1:5678, so
that every frame's socket lookup finds a socket with a known owner (the
costliest path: lookup, cookie, two map lookups, the owner written).

Per run, for each variant (alternating, repeated):
  - plain:     no attribution;
  - --process: every packet's owner, written as its pcapng comment by the
               capture program itself (no per-packet work in Python);
  - plain, same bytes: no attribution, the frames longer by what the comment
               adds to --process's records (measured in the same round), so
               that both write the same bytes per packet: what --process costs
               beyond its bytes (the capture process's cost is per byte
               written: the page cache's copy and pages);
  - with --lines, also lines to /dev/null without --process (tcpdump, a child
               process, prints them) and with it (netbpf's own printer, each
               packet in Python; the owner of a socket's packets is decoded and
               formatted once).
CPU is the capture process's own time (schedstat), as in dump_capture.py; for
lines, with its children's (tcpdump).
The capture program's own cost per packet is the kernel's run-time
statistics (BPF_ENABLE_STATS, on only while this runs): run_time_ns/run_cnt.
--size sets the frames' size (64, the default, is the worst case: the
comment's bytes against the smallest frame).

    sudo .venv/bin/python bench/dump_attribution.py [--packets 1000000] [--repeat 3] [--size 64] [--lines]
        [--flood auto|live|socket]
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import dump_capture as dc  # noqa: E402
from fault_throughput import run_stats  # noqa: E402

from netbpf.bpf import _libbpf as L  # noqa: E402
from netbpf.errors import NetbpfError  # noqa: E402
from netbpf.lab import Lab, stop_process  # noqa: E402
from netbpf.tools.dump import flood as floods  # noqa: E402

VARIANTS = {"plain": [], "--process": ["--process"]}
SAME_BYTES = "plain, same bytes"  # plain, frames as long as --process's records


LINES = {"lines": [], "lines --process": ["--process"]}


def tree_cpu_ns(pid: int) -> int:
    """CPU of a process and its descendants (lines without owners are printed by a tcpdump
    child, with owners by netbpf itself: both are counted)."""
    total = dc.cpu_ns(pid)
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                total += sum(tree_cpu_ns(int(child)) for child in f.read().split())
    except OSError:
        pass
    return total


def run(lab: Lab, packets: int, extra: list[str], out: Path | None) -> dict[str, float]:
    """One capture: to the file ``out``, or (None) lines to /dev/null."""
    argv = [sys.executable, "-m", "netbpf", "--netns", lab.gateway, "dump", "-i", "c0", "-Z", "root",
            *(["-w", str(out)] if out else []), *extra]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            preexec_fn=dc.pin(dc.CAPTURE_CPU), cwd=ROOT)
    assert proc.stderr is not None
    try:
        dc.wait_for(proc.stderr, b"capturing on")
        time.sleep(0.5)
        cpu_ns = dc.cpu_ns if out else tree_cpu_ns
        before = cpu_ns(proc.pid)
        stats_before = run_stats(proc.pid, ("netbpf_dump_xdp",))
        sent, seconds = dc.flood(lab, packets, False)
        time.sleep(2)
        used = cpu_ns(proc.pid) - before
        stats_after = run_stats(proc.pid, ("netbpf_dump_xdp",))
    finally:
        proc.send_signal(signal.SIGINT)
    err = proc.stderr.read().decode()
    proc.wait()
    m = re.search(r"(\d+) packets captured, (\d+) matched in kernel, (\d+) lost", err)
    if not m:
        raise dc.BenchError(f"netbpf dump ended without its summary: {err.strip()[-300:]!r}")
    runs = stats_after[1] - stats_before[1]
    captured = int(m.group(1))
    # The file's bytes per packet: what write() costs is per byte (the comment's bytes count).
    per_packet = out.stat().st_size / captured if out and captured else float("nan")
    return {"sent": sent, "seconds": seconds, "captured": captured, "lost": int(m.group(3)),
            "cpu": used / 1e9, "prog_ns": (stats_after[0] - stats_before[0]) / runs if runs else float("nan"),
            "bytes": per_packet}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--flood", choices=floods.CHOICES, default=os.environ.get(floods.ENV) or "auto")
    parser.add_argument("--size", type=int, default=64, help="frame size in bytes (64 to 1500)")
    parser.add_argument("--lines", action="store_true", help="also lines to /dev/null, without and with --process")
    args = parser.parse_args()
    try:
        return measure(args)
    except (NetbpfError, dc.BenchError) as e:
        print(f"dump_attribution: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)


def measure(args: argparse.Namespace) -> int:
    dc.GENERATOR = floods.choose(args.flood)
    if not 64 <= args.size <= 1500:
        raise dc.BenchError(f"--size {args.size}: 64 to 1500")
    make_frame = floods.udp_frame

    def frames_of(size: int) -> None:  # the flood's frames, made in dump_capture.flood
        floods.udp_frame = functools.partial(make_frame, size=size)
    frames_of(args.size)
    print(f"flood generator: {dc.GENERATOR} (--flood {args.flood})\n", flush=True)
    lab = dc.bench_lab("ba")
    holder = None
    stats_fd = -1
    try:
        holder = lab.popen(lab.gateway, sys.executable, "-c",
                           "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                           f"s.bind(('{lab.GATEWAY_IP}', 5678))\ntime.sleep(3600)")
        stats_fd = L.lib.bpf_enable_stats(0)  # BPF_STATS_RUN_TIME, off again when closed
        if stats_fd < 0:
            raise dc.BenchError(f"BPF_ENABLE_STATS failed: {-stats_fd}")
        rows: dict[str, list[dict[str, float]]] = {}
        same_sizes: list[int] = []
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeat):
                for name, extra in VARIANTS.items():
                    out = Path(tmp) / "x.pcapng"
                    rows.setdefault(name, []).append(run(lab, args.packets, extra, out))
                    out.unlink()
                # The comment's bytes (4-byte units; the pid's digits vary from run to run):
                gap = rows["--process"][-1]["bytes"] - rows["plain"][-1]["bytes"]
                added = round(gap / 4) * 4 if math.isfinite(gap) else 0  # nan: nothing captured
                if added > 0 and args.size + added <= 1500:
                    same_sizes.append(args.size + added)
                    frames_of(args.size + added)
                    out = Path(tmp) / "x.pcapng"
                    rows.setdefault(SAME_BYTES, []).append(run(lab, args.packets, [], out))
                    out.unlink()
                    frames_of(args.size)
                for name, extra in LINES.items() if args.lines else ():
                    rows.setdefault(name, []).append(run(lab, args.packets, extra, None))
        print(f"UDP {args.size}-byte frames from {dc.GENERATOR} to a bound UDP socket, {args.packets:,} per run, "
              f"median of {args.repeat}; XDP capture to a pcapng file in {tempfile.gettempdir()} "
              "(a shared machine: ratios within this run only)"
              + (f"; {SAME_BYTES}: frames of {'/'.join(map(str, sorted(set(same_sizes))))} bytes" if same_sizes else "")
              + "\n")
        print("| variant | offered pkt/s | captured | lost | capture CPU s | CPU µs per captured "
              "| program ns per packet | file bytes per packet |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        medians = {}
        for name, rs in rows.items():
            m = dc.median_run(rs)
            per = m["cpu"] / m["captured"] * 1e6 if m["captured"] else float("nan")
            medians[name] = (per, m["prog_ns"])
            print(f"| {name} | {m['sent'] / m['seconds']:,.0f} | {m['captured']:,.0f} | {m['lost']:,.0f} "
                  f"| {m['cpu']:.3f} | {per:.3f} | {m['prog_ns']:.0f} | {m['bytes']:.0f} |")
        print(f"\n--process / plain, CPU per captured packet: {medians['--process'][0] / medians['plain'][0]:.2f}x "
              "(target <= 1.2)")
        if SAME_BYTES in medians:
            print(f"--process / {SAME_BYTES} (what --process costs beyond the comment's bytes), CPU per "
                  f"captured packet: {medians['--process'][0] / medians[SAME_BYTES][0]:.2f}x")
        print(f"--process / plain, program ns per packet:    {medians['--process'][1] / medians['plain'][1]:.2f}x")
        total = {name: per * 1000 + prog for name, (per, prog) in medians.items()}  # ns: process + program
        print(f"--process / plain, capture CPU + program ns per packet: {total['--process']:.0f} / "
              f"{total['plain']:.0f} ns = {total['--process'] / total['plain']:.2f}x")
        if args.lines:
            print(f"lines --process / lines, CPU per captured packet: "
                  f"{medians['lines --process'][0] / medians['lines'][0]:.2f}x")
        return 0
    finally:
        if stats_fd >= 0:
            os.close(stats_fd)
        if holder is not None:
            stop_process(holder)
        lab.down()


if __name__ == "__main__":
    sys.exit(main())
