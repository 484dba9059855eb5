#!/usr/bin/env python3
"""Throughput of an iperf3 TCP flow through an interface with a netbpf fault
attached whose expression matches nothing, against the same flow with nothing
attached, in the same run.

Lab: client eth0 (10.0.1.2) <-veth-> c0 (10.0.1.1) gateway; iperf3 runs from
the client to a server in the gateway namespace. For each hook, rounds of
three runs in rotating order: nothing attached, a trivial program that passes
everything on the same hook (what the hook itself costs), and
`netbpf fault tcp-flags --set PSH --ratio 10 'tcp port 9'` (the tcpdump
expression runs on every packet and never matches). The ratio is
median(fault) / median(nothing). The machine is shared and noisy, so one more
run per hook measures what the program itself costs, which noise cannot fake:
the kernel's BPF run-time statistics (BPF_ENABLE_STATS, enabled only while
its fd is held) give nanoseconds per packet for the fault and for the
trivial program; times the packet rate, that is the share of a CPU the
fault takes beyond the hook's own cost.

    sudo .venv/bin/python bench/fault_throughput.py [--rounds 5] [--seconds 4]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from netbpf import netns  # noqa: E402
from netbpf.bpf import _libbpf as L  # noqa: E402
from netbpf.bpf import features  # noqa: E402
from netbpf.bpf.attach import tc, xdp  # noqa: E402
from netbpf.bpf.attach.base import Attachment  # noqa: E402
from netbpf.bpf.info import fd_by_id, prog_info  # noqa: E402
from netbpf.bpf.program import Program  # noqa: E402
from netbpf.lab import Lab  # noqa: E402

EXPRESSION = "tcp port 9"
HOOKS = [
    # (name, namespace role, interface, fault arguments, trivial program)
    ("tc egress (tcx)", "client", "eth0", ["--direction", "egress"], "tc-egress"),
    ("tc ingress (tcx)", "gateway", "c0", ["--hook", "tc"], "tc-ingress"),
    ("XDP ingress (veth native)", "gateway", "c0", ["--hook", "xdp", "--xdp-mode", "drv"], "xdp"),
    ("XDP ingress (generic, skb mode)", "gateway", "c0", ["--hook", "xdp", "--xdp-mode", "skb"], "xdp-skb"),
]


def iperf3(lab: Lab, seconds: float) -> float:
    # Sender on CPU 0, receiver on CPU 1 (-A): the flow's own noise, not the scheduler's.
    out = lab.run(lab.client, "iperf3", "-A", "0", "-c", lab.GATEWAY_IP, "-t", str(seconds), "-J",
                  timeout=seconds + 30).stdout
    return float(json.loads(out)["end"]["sum_received"]["bits_per_second"]) / 1e9


@contextlib.contextmanager
def trivial(lab: Lab, ns: str, dev: str, kind: str) -> Iterator[None]:
    """A program that lets everything through, on the hook the fault would use."""
    if kind.startswith("xdp"):
        prog = Program("bench_pass", fd=features.load_trivial(6, 37, verdict=2, name="bench_pass"), owns_fd=True)
    else:
        prog = Program("bench_pass", fd=features.load_trivial(3, 0, verdict=0xFFFFFFFF, name="bench_pass"),
                       owns_fd=True)

    def attach() -> Attachment:
        if kind.startswith("xdp"):
            return xdp.attach_xdp(prog, xdp.XdpOptions(dev, "skb" if kind == "xdp-skb" else "drv"))
        return tc.attach_tc(prog, tc.TcOptions(dev, "egress" if kind == "tc-egress" else "ingress", "tcx"))
    try:
        with netns.run_in(f"/run/netns/{ns}", attach):
            yield
    finally:
        prog.close()


def run_stats(pid: int, names: tuple[str, ...]) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of the program with one of these names that ``pid`` holds."""
    held = set()
    for fdinfo in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            text = fdinfo.read_text()
        except OSError:
            continue  # closed meanwhile
        for line in text.splitlines():
            if line.startswith("prog_id:"):
                held.add(int(line.split()[1]))
    for prog_id in held:
        fd = fd_by_id("prog", prog_id)
        try:
            info = prog_info(fd)
        finally:
            os.close(fd)
        if info.name.decode() in names:
            return int(info.run_time_ns), int(info.run_cnt)
    raise SystemExit(f"no program {names} held by pid {pid}")


def with_fault(lab: Lab, ns: str, dev: str, args: list[str], run: Callable[[], float],
               stats: list[tuple[int, int]] | None = None) -> tuple[float, dict[str, object]]:
    proc = subprocess.Popen([sys.executable, "-m", "netbpf", "--netns", ns, "fault", "tcp-flags", "--set", "PSH",
                             "--ratio", "10", "-i", dev, *args, "--interval", "60", "--json", EXPRESSION],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stderr:  # type: ignore[union-attr]
        if "Ctrl-C to stop" in line:
            break
    else:
        raise SystemExit(f"netbpf fault did not start: {proc.stderr.read()}")  # type: ignore[union-attr]
    try:
        gbps = run()
        if stats is not None:
            stats.append(run_stats(proc.pid, ("netbpf_fault_tc", "netbpf_faultxdp")))
    finally:
        proc.send_signal(signal.SIGTERM)  # SIGINT may be ignored in a background job
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            for task in Path(f"/proc/{proc.pid}/task").iterdir():
                print(f"# stuck: task {task.name} {(task / 'wchan').read_text()} "
                      f"{(task / 'stack').read_text()}", file=sys.stderr)
            raise
    final = json.loads(out.splitlines()[-1])
    return gbps, final


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--hook", choices=["tc-egress", "tc-ingress", "xdp", "xdp-skb"], action="append",
                        help="measure only these hooks (default: all three)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (it builds network namespaces and loads BPF)")
    lab = Lab(f"fb{os.getpid() % 10000}", backends=0).up()
    try:
        lab.wait_reachable()
        server = lab.popen(lab.gateway, "iperf3", "-s", "-A", "1", "-B", lab.GATEWAY_IP,
                           stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        rows = []
        for name, role, dev, fault_args, kind in HOOKS:
            if args.hook and kind not in args.hook:
                continue
            ns = lab.client if role == "client" else lab.gateway
            results: dict[str, list[float]] = {"nothing": [], "trivial": [], "fault": []}
            seen = matched = 0
            for r in range(args.rounds):
                order = ["nothing", "trivial", "fault"]
                order = order[r % 3:] + order[:r % 3]
                for what in order:
                    if what == "nothing":
                        results[what].append(iperf3(lab, args.seconds))
                    elif what == "trivial":
                        with trivial(lab, ns, dev, kind):
                            results[what].append(iperf3(lab, args.seconds))
                    else:
                        gbps, final = with_fault(lab, ns, dev, fault_args, lambda: iperf3(lab, args.seconds))
                        results[what].append(gbps)
                        seen += int(final["seen"])  # type: ignore[call-overload]
                        matched += int(final["matched"])  # type: ignore[call-overload]
            med = {k: statistics.median(v) for k, v in results.items()}
            # Runs of one round are seconds apart: their ratio drifts less than medians do.
            med["paired"] = statistics.median(f / n for f, n in zip(results["fault"], results["nothing"],
                                                                     strict=True))
            # The programs' own cost, with the kernel's run-time statistics on.
            stats_fd = L.lib.bpf_enable_stats(0)  # BPF_STATS_RUN_TIME, off again when closed
            if stats_fd < 0:
                raise SystemExit(f"BPF_ENABLE_STATS failed: {-stats_fd}")
            try:
                fault_stats: list[tuple[int, int]] = []
                with_fault(lab, ns, dev, fault_args, lambda: iperf3(lab, args.seconds), fault_stats)
                with trivial(lab, ns, dev, kind):
                    iperf3(lab, args.seconds)
                    trivial_stats = run_stats(os.getpid(), ("bench_pass",))
            finally:
                os.close(stats_fd)
            print(f"# {name}: run_time_ns/run_cnt fault {fault_stats[0]}, trivial {trivial_stats}", file=sys.stderr)
            cost = {"fault": fault_stats[0][0] / max(1, fault_stats[0][1]),
                    "trivial": trivial_stats[0] / max(1, trivial_stats[1])}
            # CPU time the fault program takes at the rate the flow ran: what it would cost a
            # CPU-bound flow, whatever the noise does to the medians.
            pps = seen / (args.rounds * args.seconds)
            cost["share"] = pps * (cost["fault"] - cost["trivial"]) / 1e9
            rows.append((name, f"{role} {dev}", med, seen, matched, cost))
            print(f"# {name}: " + ", ".join(f"{k} {[round(x, 2) for x in v]}" for k, v in results.items()),
                  file=sys.stderr, flush=True)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    finally:
        lab.down()
    print(f"iperf3 TCP, 1 stream (sender CPU 0, receiver CPU 1), {args.seconds:g} s x {args.rounds} rounds "
          "per setting, median Gbit/s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"fault: tcp-flags --set PSH --ratio 10 '{EXPRESSION}' (matches nothing)\n")
    print("| hook | interface | nothing | trivial pass program | fault | fault / nothing "
          "| fault / nothing, per round | fault / trivial "
          "| packets through the fault | matched | ns per packet: fault / trivial "
          "| CPU in the fault beyond the hook's own cost |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, where, med, seen, matched, cost in rows:
        print(f"| {name} | {where} | {med['nothing']:.2f} | {med['trivial']:.2f} | {med['fault']:.2f} | "
              f"{med['fault'] / med['nothing']:.3f} | {med['paired']:.3f} | {med['fault'] / med['trivial']:.3f} "
              f"| {seen:,} | {matched} "
              f"| {cost['fault']:.0f} / {cost['trivial']:.0f} | {100 * cost['share']:.2f}% of a CPU |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
