#!/usr/bin/env python3
"""``netbpf http`` under wrk, against ``tshark -Y http`` on the same traffic.

A lab with one backend (nginx answering "ok\\n", so the backend is never the
bottleneck); wrk in the client namespace, keep-alive, to the backend through
the gateway, which routes. The tracer watches the gateway's client-side
interface (c0). Each configuration runs ``--rounds`` times, each run between two
untraced ones (the machine's load drifts, so each ratio is taken against the
geometric mean of its two neighbours; the median of the rounds is printed, their
range in brackets, and the anchor row shows the same ratio of each untraced run
against its own neighbours: the noise any ratio of the run carries):

- the program with nothing to count (``--port 9``), on each hook: what the
  hook itself costs the traffic (the socket filter: a packet socket, so the
  kernel's tap clones every transmitted frame; tcx: no socket) and the
  program's floor per packet;
- ``netbpf http -i c0 --port 8080 --summary --json --hook socket|tc``: counted
  in the kernel: transactions traced (answered ones) / wrk's completed
  requests, requests/s vs the anchor, CPU seconds of netbpf per 100k traced
  transactions, and the program's own cost per packet (BPF_ENABLE_STATS);
- ``--summary --metrics :9464`` on the default hook, traced = the answered
  requests in one scrape of the metrics at the end;
- the same with ``--counting user``: every frame to Python, as before;
- the same with one JSON line per transaction (to a file);
- ``tshark -i c0 -f 'tcp port 8080' -Y http -T fields -e http.response.code``:
  HTTP responses it printed / wrk's, requests/s, CPU seconds (tshark and its
  dumpcap) per 100k transactions.

CPU is each tool's own (user + system, from wait4, children included), minus
what the same tool spends started and stopped with no traffic (start-up:
loading dissectors, compiling and loading BPF); and, without that subtraction's
noise, what the tool and its children used while wrk ran (/proc/PID/stat). Prints a markdown table.

    sudo .venv/bin/python bench/http_wrk.py [--duration 10] [--rounds 3] [--connections 16] [--kinds a,b]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from netbpf.bpf import _libbpf as L
from netbpf.bpf.info import close_quietly, fd_by_id, prog_ids, prog_info
from netbpf.lab import Lab
from netbpf.lab.servers import NginxBackend

TRAFFIC_CPU = ""  # with --spare-core: wrk, nginx and their softirqs on CPU 0, the tracer on CPU 1


def wrk(lab: Lab, url: str, duration: int, connections: int) -> tuple[float, int]:
    pin = ["taskset", "-c", TRAFFIC_CPU] if TRAFFIC_CPU else []
    out = lab.run(lab.client, *pin, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", url,
                  timeout=duration + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rate, done


class Tool:
    """A capture process whose CPU time is read with wait4 when it exits."""

    def __init__(self, argv: list[str], out: Path, stop_signal: int) -> None:
        if TRAFFIC_CPU:
            argv = ["taskset", "-c", "1", *argv]
        self.out = out
        self.stop_signal = stop_signal
        self.err = out.with_suffix(".err")
        self.proc = subprocess.Popen(argv, stdout=out.open("w"), stderr=self.err.open("w"))

    def wait_ready(self, marker: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.err.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.proc.args}: not ready: {self.err.read_text()[-500:]}")
            time.sleep(0.05)
        time.sleep(0.5)

    def stop(self, settle: float = 2.0, timeout: float = 120) -> float:
        """Stop once the output has stopped growing; CPU seconds used."""
        deadline = time.monotonic() + timeout
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.out.stat().st_size
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= settle:
                break
            time.sleep(0.2)
        self.proc.send_signal(self.stop_signal)
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_utime + usage.ru_stime


METRICS = "127.0.0.1:9464"  # in the gateway's namespace


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and every live descendant
    (tshark's dumpcap is a child that has not exited yet)."""
    tick = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parent[int(entry)], cpu[int(entry)] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return total


def netbpf_argv(lab: Lab, kind: str) -> list[str]:
    port = "9" if kind.endswith("-filter") else "8080"  # port 9: the program leaves at the port test
    argv = [sys.executable, "-m", "netbpf", "--netns", lab.gateway, "http", "-i", "c0", "--port", port,
            "--json", "-B", "65536"]
    if kind == "netbpf-json":
        return argv
    if kind in ("netbpf-kernel", "netbpf-filter"):
        return [*argv, "--summary", "--hook", "socket"]
    if kind in ("netbpf-tc", "netbpf-tc-filter"):
        return [*argv, "--summary", "--hook", "tc"]
    if kind == "netbpf-metrics":  # the default hook
        return [*argv, "--summary", "--metrics", METRICS]
    return [*argv, "--summary", "--counting", "user"]


def scraped_answered(lab: Lab) -> int:
    """Answered requests in the Prometheus metrics (status classes 1xx..5xx), as a scraper sees them."""
    text = subprocess.run(["ip", "netns", "exec", lab.gateway, "curl", "-sf", f"http://{METRICS}/metrics"],
                          capture_output=True, text=True, timeout=30, check=True).stdout
    return sum(int(float(m.group(1))) for m in
               re.finditer(r'^netbpf_http_requests_total\{[^}]*status="[1-5]xx"[^}]*\} (\S+)$', text, re.M))


def http_programs() -> set[int]:
    ids = set()
    for i in prog_ids():
        try:
            fd = fd_by_id("prog", i)
        except Exception:  # gone meanwhile (another user's program)
            continue
        try:
            if prog_info(fd).name in (b"netbpf_http", b"netbpf_http_tc"):
                ids.add(i)
        finally:
            close_quietly(fd)
    return ids


def run_stats(ids: set[int]) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of the programs, with BPF_ENABLE_STATS on."""
    total = [0, 0]
    for i in ids:
        try:
            fd = fd_by_id("prog", i)
        except Exception:  # gone meanwhile (another user's program)
            continue
        try:
            info = prog_info(fd)
            total[0] += info.run_time_ns
            total[1] += info.run_cnt
        finally:
            close_quietly(fd)
    return total[0], total[1]


def tshark_argv(lab: Lab) -> list[str]:
    return ["ip", "netns", "exec", lab.gateway, "tshark", "-i", "c0", "-n", "-l", "-f", "tcp port 8080",
            "-Y", "http", "-T", "fields", "-e", "http.response.code"]


def traced_netbpf(out: Path, json_lines: bool) -> int:
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    if json_lines:
        return sum(1 for t in lines if t.get("status") and not t.get("error"))
    # Answered transactions, by status class: the same keys on both paths.
    return sum(r[c] for r in lines if r.get("type") == "backend" for c in ("1xx", "2xx", "3xx", "4xx", "5xx"))


def traced_tshark(out: Path) -> int:
    return sum(1 for line in out.read_text().splitlines() if line.strip())


def run_tool(kind: str, lab: Lab, url: str, duration: int, connections: int, work: Path,
             idle: bool = False) -> dict[str, float]:
    out = work / f"{kind}-{time.monotonic_ns()}.out"
    before = http_programs()
    if kind == "tshark":
        tool = Tool(tshark_argv(lab), out, signal.SIGINT)
        tool.wait_ready("Capturing on")
    else:
        tool = Tool(netbpf_argv(lab, kind), out, signal.SIGTERM)
        tool.wait_ready("tracing HTTP")
    ours = http_programs() - before
    if idle:
        time.sleep(2)
        return {"cpu": tool.stop(settle=0.5)}
    start, cpu_before = run_stats(ours), tree_cpu(tool.proc.pid)
    rate, done = wrk(lab, url, duration, connections)
    end, cpu_during = run_stats(ours), tree_cpu(tool.proc.pid) - cpu_before
    scraped = 0
    if kind == "netbpf-metrics":
        time.sleep(1)  # the last responses of wrk's connections
        scraped = scraped_answered(lab)
    cpu = tool.stop()
    traced = (traced_tshark(out) if kind == "tshark" else scraped if kind == "netbpf-metrics"
              else traced_netbpf(out, kind == "netbpf-json"))
    runs = end[1] - start[1]
    return {"rate": rate, "done": done, "traced": traced, "cpu": cpu, "cpu_during": cpu_during,
            "ns_per_packet": (end[0] - start[0]) / runs if runs else float("nan"),
            "exit": tool.err.read_text().strip().splitlines()[-1] if kind.startswith("netbpf") else ""}


def vs_neighbours(row: dict[str, float], anchors: list[dict[str, float]]) -> float:
    """A traced run's rate against the untraced runs just before and just after it
    (their geometric mean): a drift of the machine's load between them cancels."""
    before = anchors[int(row["anchor_index"])]["rate"]
    after = anchors[int(row["anchor_index"]) + 1]["rate"]
    return float(row["rate"] / math.sqrt(before * after))


def spread(values: list[float]) -> str:
    """The median and, in brackets, the range of the rounds."""
    return f"{statistics.median(values):.2f} [{min(values):.2f}–{max(values):.2f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--spare-core", action="store_true",
                        help="wrk and nginx on CPU 0, the tracer on CPU 1: a gateway with a core to spare")
    parser.add_argument("--kinds", help="only these configurations (comma-separated: netbpf-filter, "
                        "netbpf-tc-filter, netbpf-kernel, netbpf-tc, netbpf-metrics, netbpf, netbpf-json, tshark); "
                        "the anchor always runs")
    args = parser.parse_args()
    global TRAFFIC_CPU
    TRAFFIC_CPU = "0" if args.spare_core else ""
    if os.geteuid() != 0:
        sys.exit("bench/http_wrk.py: run as root (namespaces, BPF)")
    lab = Lab(f"nbh{os.getpid() % 100}", backends=1).up()  # two runs at once do not collide
    backend = NginxBackend(lab, 1)
    kinds = ["none", "netbpf-filter", "netbpf-tc-filter", "netbpf-kernel", "netbpf-tc", "netbpf-metrics",
             "netbpf", "netbpf-json", "tshark"]
    if args.kinds:
        kinds = ["none", *(k for k in args.kinds.split(",") if k != "none")]
    results: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    try:
        lab.wait_reachable()
        backend.start()
        if TRAFFIC_CPU:
            for ns in lab.namespaces:
                for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                          check=True).stdout.split():
                    os.sched_setaffinity(int(pid), {int(TRAFFIC_CPU)})
        url = f"http://{lab.backends[0].ip}:8080/"
        wrk(lab, url, 2, args.connections)  # warm up
        # The kernel's run-time statistics of BPF programs, on for the whole run (every
        # configuration pays the same two clock reads per program run).
        stats_fd = L.lib.bpf_enable_stats(0)  # BPF_STATS_RUN_TIME, off again when closed
        if stats_fd < 0:
            raise SystemExit(f"BPF_ENABLE_STATS failed: {-stats_fd}")
        with tempfile.TemporaryDirectory(prefix="netbpf-bench-") as d:
            work = Path(d)
            idle = {k: statistics.median(run_tool(k, lab, url, 0, 0, work, idle=True)["cpu"] for _ in range(2))
                    for k in kinds[1:]}
            for r in range(args.rounds):
                for kind in kinds[1:]:
                    # An untraced run right before each traced one: the machine's load drifts
                    # within a round, so each ratio is taken against its neighbour.
                    rate, done = wrk(lab, url, args.duration, args.connections)
                    results["none"].append({"rate": rate, "done": done})
                    results[kind].append(run_tool(kind, lab, url, args.duration, args.connections, work))
                    results[kind][-1]["anchor"] = rate
                    results[kind][-1]["anchor_index"] = len(results["none"]) - 1
                    print(f"round {r + 1} {kind}: {results[kind][-1]} (untraced just before: {rate:.0f})",
                          file=sys.stderr, flush=True)
            rate, done = wrk(lab, url, args.duration, args.connections)  # the last traced run's "after"
            results["none"].append({"rate": rate, "done": done})
        os.close(stats_fd)
    finally:
        backend.stop()
        lab.down()

    labels = {"none": "no tracer (anchor)",
              "netbpf-filter": "socket filter, nothing to count (`--port 9 --summary --hook socket`)",
              "netbpf-tc-filter": "tcx program, nothing to count (`--port 9 --summary --hook tc`)",
              "netbpf-kernel": "`netbpf http --summary --hook socket` (counted in the kernel)",
              "netbpf-tc": "`netbpf http --summary --hook tc` (counted in the kernel)",
              "netbpf-metrics": "`netbpf http --summary --metrics :9464` (default hook; scraped once at the end)",
              "netbpf": "`netbpf http --summary --counting user`",
              "netbpf-json": "`netbpf http --json` (a line per transaction)", "tshark": "`tshark -Y http`"}
    where = ("wrk, nginx and their softirqs pinned to CPU 0, the tracer to CPU 1" if TRAFFIC_CPU
             else "everything shares both CPUs")
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s, keep-alive, 3-byte responses, {where}; "
          f"median of {args.rounds} rounds; CPU net of start-up (idle run: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in idle.items()) + ")\n")
    print("| tracer | wrk req/s | vs the untraced runs just before and after: median [range] | completed | traced | traced/completed | CPU s | "
          "CPU s per 100k transactions | CPU s per 100k, wrk's run only | BPF ns/packet |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    per100k = {}
    for kind in kinds:
        rows = results[kind]
        rate = statistics.median(x["rate"] for x in rows)
        done = statistics.median(x["done"] for x in rows)
        bpf = (f"{statistics.median(x['ns_per_packet'] for x in rows):.0f}"
               if kind.startswith("netbpf") else "-")
        if kind == "none":
            # Untraced against untraced, neighbour to neighbour: the noise any ratio here carries.
            noise = [b["rate"] / math.sqrt(a["rate"] * c["rate"]) for a, b, c in zip(rows, rows[1:], rows[2:], strict=False)]
            print(f"| {labels[kind]} | {rate:,.0f} | 1.00 (itself vs its neighbours: "
                  f"{spread(noise) if noise else '-'}) | {done:,.0f} | - | - | - | - | - | - |")
            continue
        if kind.endswith("-filter"):
            cpu = statistics.median(x["cpu"] - idle[kind] for x in rows)
            vs = spread([vs_neighbours(x, results["none"]) for x in rows])
            print(f"| {labels[kind]} | {rate:,.0f} | {vs} | {done:,.0f} | - | - | {cpu:.2f} | - | - "
                  f"| {bpf} |")
            continue
        traced = statistics.median(x["traced"] for x in rows)
        ratio = statistics.median(x["traced"] / x["done"] for x in rows)
        cpu = statistics.median(x["cpu"] - idle[kind] for x in rows)
        per100k[kind] = statistics.median((x["cpu"] - idle[kind]) / max(1, x["traced"]) * 1e5 for x in rows)
        during = statistics.median(x["cpu_during"] / max(1, x["traced"]) * 1e5 for x in rows)
        vs = spread([vs_neighbours(x, results["none"]) for x in rows])
        print(f"| {labels[kind]} | {rate:,.0f} | {vs} | {done:,.0f} | {traced:,.0f} | "
              f"{ratio:.2%} | {cpu:.2f} | {per100k[kind]:.2f} | {during:.3f} | {bpf} |")
    if "tshark" in per100k:
        print("\nCPU per transaction, netbpf / tshark: " + ", ".join(
            f"{k} {v / per100k['tshark']:.3f}" for k, v in per100k.items() if k != "tshark"))
    print("\nexit lines of the last round:")
    for kind in kinds:
        if kind.startswith("netbpf"):
            print(f"- {kind}: {results[kind][-1]['exit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
