#!/usr/bin/env python3
"""netbpf dump -r against tcpdump -r on the same 100,000-packet pcap file.

Two cases, each tool run in turn (A B A B ...), each run a whole process:
  - file:  ``-r F -w G 'tcp port 80'`` (filter a file into a file; outputs compared byte for byte);
  - lines: ``-r F 'tcp port 80' > /dev/null`` (tcpdump -nn for tcpdump).
CPU is the child's user + system time and peak RSS its own (wait4), its
children (tcpdump printing for netbpf) included; the table gives medians and
the ratio of medians. netbpf's figures include starting Python and its
imports, which tcpdump does not pay: with compiled bytecode, as an installed
package has it (PYTHONDONTWRITEBYTECODE is unset for the runs; the warm-up
writes the .pyc files). ``--netbpf CMD`` measures another netbpf (e.g. a
merged tree: ``--netbpf "env PYTHONPATH=/tmp/m/src .venv/bin/python -m netbpf"``).

    .venv/bin/python bench/dump_read.py [--packets 100000] [--repeat 5] [--netbpf CMD]
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from netbpf.packet import pcap
from tests.packets import ether, icmp, ipv4, v4_tcp, v4_udp, v6_tcp

NETBPF = [str(Path(sys.executable).parent / "netbpf"), "dump"]


def make_file(path: Path, packets: int) -> None:
    frames = [v4_tcp(40000, 80, "PA", bytes(300)), v4_udp(5000, 53, bytes(60)), v6_tcp(1, 443, "A", bytes(100)),
              ether(ipv4(icmp(8, payload=bytes(56)), 1), 0x0800), v4_tcp(2000, 8080, "A", bytes(1200))]
    with open(path, "wb") as f:
        f.write(pcap.pcap_file_header(262144))
        for n in range(packets):
            f.write(pcap.pcap_record(1_700_000_000_000_000_000 + n * 10_000, frames[n % len(frames)]))


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(argv: list[str]) -> tuple[float, int]:
    """(CPU seconds, peak resident set in KiB) of one whole process and the children it waited for."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped here
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--netbpf", help="the netbpf command to measure (default: this venv's)")
    args = parser.parse_args()
    netbpf = [*shlex.split(args.netbpf), "dump"] if args.netbpf else NETBPF
    with tempfile.TemporaryDirectory(prefix="netbpf-bench-") as tmp:
        src, ours, theirs = Path(tmp) / "f.pcap", Path(tmp) / "ours.pcap", Path(tmp) / "theirs.pcap"
        make_file(src, args.packets)
        cases = {
            "file (-r F -w G)": ([*netbpf, "-r", str(src), "-w", str(ours), "tcp port 80"],
                                 ["tcpdump", "-r", str(src), "-w", str(theirs), "tcp port 80"]),
            "lines (> /dev/null)": ([*netbpf, "-r", str(src), "tcp port 80"],
                                    ["tcpdump", "-nn", "-r", str(src), "tcp port 80"]),
        }
        print(f"{args.packets} packets, {src.stat().st_size / 1e6:.1f} MB; medians of {args.repeat} runs "
              f"(shared machine: compare the ratio)")
        print(f"{'case':22} {'netbpf cpu s':>12} {'tcpdump cpu s':>13} {'ratio':>6} "
              f"{'netbpf MiB':>10} {'tcpdump MiB':>11}")
        for name, (a, b) in cases.items():
            runs_a, runs_b = [], []
            run(a), run(b)  # warm-up
            for _ in range(args.repeat):
                runs_a.append(run(a))
                runs_b.append(run(b))
            ma, mb = (statistics.median(c for c, _ in r) for r in (runs_a, runs_b))
            ra, rb = (max(m for _, m in r) / 1024 for r in (runs_a, runs_b))
            print(f"{name:22} {ma:12.3f} {mb:13.3f} {ma / mb:6.2f} {ra:10.1f} {rb:11.1f}")
        same = filecmp.cmp(ours, theirs, shallow=False)
        print(f"-w outputs byte for byte identical: {same}")


if __name__ == "__main__":
    main()
