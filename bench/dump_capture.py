#!/usr/bin/env python3
"""netbpf dump against tcpdump: the same UDP flood on the same veth, both writing to /dev/null.

Lab: a client and a gateway namespace joined by a veth pair. The gateway's
c0 runs a trivial XDP program (XDP_PASS, standing for "the program already
there": netbpf captures in front of it, tcpdump behind it). The client
floods c0 with 64-byte UDP frames as fast as one CPU can send them, pinned
to CPU 0; the capturing process is pinned to CPU 1. The generator is
netbpf/tools/dump/flood.py's choice (printed first): BPF_PROG_TEST_RUN live
frames (xdp-live) where the kernel allows them, else an AF_PACKET socket
(af_packet); ``--flood socket`` (or NETBPF_FLOOD=socket) forces the latter.

For each tool, run (the same number of frames, alternating tools, repeated):
  - all:  no filter, everything captured;
  - 1%:   "udp port 7777", which 1 frame in 100 matches.
CPU is the capturing process's own time (user + system, from
/proc/PID/task/*/schedstat, in ns) between the start of the flood and the
end of the drain; the kernel's per-packet work happens on the sender's CPU
for both tools. captured/lost are what each tool reports (tcpdump: "packets
captured", "dropped by kernel"; netbpf: its exit line).

    sudo .venv/bin/python bench/dump_capture.py [--packets 4000000] [--repeat 3] [--flood auto|live|socket]

The first error ends the run with one line on stderr and exit status 1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from netbpf import netns  # noqa: E402
from netbpf.bpf import features  # noqa: E402
from netbpf.bpf.attach import xdp  # noqa: E402
from netbpf.bpf.program import Program  # noqa: E402
from netbpf.errors import NetbpfError  # noqa: E402
from netbpf.lab import Lab  # noqa: E402
from netbpf.tools.dump import flood as floods  # noqa: E402

SENDER_CPU, CAPTURE_CPU = 0, 1
FILTER = "udp port 7777"
GENERATOR = floods.LIVE  # set by main() from --flood


class BenchError(Exception):
    """The run cannot go on: one line, exit 1."""


def cpu_ns(pid: int) -> int:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            continue
    return total


def pin(cpu: int):  # type: ignore[no-untyped-def]
    return lambda: os.sched_setaffinity(0, {cpu})


def flood(lab: Lab, packets: int, one_percent: bool) -> tuple[int, float]:
    """Send from the client (a child process on SENDER_CPU); returns (sent, seconds)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        # The child must never return into the caller's stack (it would run its
        # finally clauses: take the lab down); it reports a result or an error.
        try:
            os.close(r)
            os.sched_setaffinity(0, {SENDER_CPU})
            netns.enter(lab.client)
            mac = bytes.fromhex(json.loads(subprocess.run(
                ["ip", "-n", lab.gateway, "-j", "link", "show", "c0"], capture_output=True, text=True,
                check=True).stdout)[0]["address"].replace(":", ""))
            src = bytes.fromhex("020000000002")
            other = floods.udp_frame(src, mac, lab.CLIENT_IP, lab.GATEWAY_IP, 1234, 5678)
            match = floods.udp_frame(src, mac, lab.CLIENT_IP, lab.GATEWAY_IP, 1234, 7777)
            frames = [(other, 9900), (match, 100)] if one_percent else [(other, 10_000)]
            with floods.open_flood("eth0", GENERATOR) as f:
                result = f.run(frames, packets, batch=10_000)
            message = {"sent": result.sent, "seconds": result.seconds}
        except BaseException as e:  # every failure is reported, none escapes the child
            message = {"error": str(e) or type(e).__name__}
        os.write(w, json.dumps(message).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    reply = json.loads(data) if data else {"error": "the sender died without a word"}
    if "error" in reply:
        raise BenchError(f"flood ({GENERATOR}): {reply['error']}")
    return int(reply["sent"]), float(reply["seconds"])


def wait_for(stream, needle: bytes, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if needle in line:
            return
        if not line:
            break
    raise BenchError(f"capture did not start (waiting for {needle!r})")


def flood_measured(proc: subprocess.Popen[bytes], needle: bytes, lab: Lab, packets: int,
                   one_percent: bool) -> tuple[int, float, float]:
    """Once the capture ``proc`` says ``needle``, one flood: packets sent, its seconds, and
    the capture's CPU seconds until 2 s after it (tcpdump hands over a block after at
    most 1 s; netbpf gets the same wait)."""
    assert proc.stderr is not None
    wait_for(proc.stderr, needle)
    time.sleep(0.5)
    before = cpu_ns(proc.pid)
    sent, seconds = flood(lab, packets, one_percent)
    time.sleep(2)
    return sent, seconds, (cpu_ns(proc.pid) - before) / 1e9


def interrupted(proc: subprocess.Popen[bytes]) -> str:
    """What the capture wrote on stderr, once ended by SIGINT (both print their counts then)."""
    assert proc.stderr is not None
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read().decode()
    proc.wait()
    return err


def bench_lab(prefix: str) -> Lab:
    """The lab, up, with a program already on the gateway's c0 (netbpf stands in front of
    it; it also gives the veth the NAPI context that XDP frames sent to it need)."""
    lab = Lab(f"{prefix}{os.getpid() % 10000}", backends=0).up()
    try:
        lab.wait_reachable()

        def attach_pass() -> None:
            fd = features.load_trivial(6, 37, verdict=2, name="bench_pass")
            xdp.attach_xdp_netlink(Program("bench_pass", fd=fd), xdp.XdpOptions("c0", "drv"), None)
        netns.run_in(f"/run/netns/{lab.gateway}", attach_pass)
    except BaseException:
        lab.down()
        raise
    return lab


def run_tcpdump(lab: Lab, packets: int, one_percent: bool) -> dict[str, float]:
    argv = ["ip", "netns", "exec", lab.gateway, "tcpdump", "-i", "c0", "-w", "/dev/null", "-nn"]
    proc = subprocess.Popen(argv + ([FILTER] if one_percent else []), stderr=subprocess.PIPE,
                            preexec_fn=pin(CAPTURE_CPU))
    assert proc.stderr is not None
    try:
        sent, seconds, cpu = flood_measured(proc, b"listening on", lab, packets, one_percent)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    err = interrupted(proc)
    captured_m = re.search(r"(\d+) packets? captured", err)
    dropped_m = re.search(r"(\d+) packets? dropped by kernel", err)
    if not (captured_m and dropped_m):
        raise BenchError(f"tcpdump ended without its counts: {err.strip()[-300:]!r}")
    captured, dropped = int(captured_m.group(1)), int(dropped_m.group(1))
    return {"sent": sent, "seconds": seconds, "captured": captured, "lost": dropped, "cpu": cpu}


def run_netbpf(lab: Lab, packets: int, one_percent: bool) -> dict[str, float]:
    argv = [sys.executable, "-m", "netbpf", "--netns", lab.gateway, "dump", "-i", "c0", "-w", "/dev/null"]
    proc = subprocess.Popen(argv + ([FILTER] if one_percent else []), stderr=subprocess.PIPE,
                            preexec_fn=pin(CAPTURE_CPU), cwd=ROOT)
    assert proc.stderr is not None
    try:
        sent, seconds, cpu = flood_measured(proc, b"capturing on", lab, packets, one_percent)
    except BaseException:
        proc.send_signal(signal.SIGINT)  # netbpf detaches on SIGINT; then it must be gone
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    err = interrupted(proc)
    m = re.search(r"(\d+) packets captured, (\d+) matched in kernel, (\d+) lost", err)
    if not m:
        raise BenchError(f"netbpf dump ended without its summary: {err.strip()[-300:]!r}")
    return {"sent": sent, "seconds": seconds, "captured": int(m.group(1)), "lost": int(m.group(3)), "cpu": cpu}


def median_run(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=4_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--flood", choices=floods.CHOICES, default=os.environ.get(floods.ENV) or "auto",
                        help="the flood generator: live XDP frames, an AF_PACKET socket, or auto "
                             "(live where the kernel allows them; default: $NETBPF_FLOOD or auto)")
    args = parser.parse_args()
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        sys.exit("needs two CPUs: one sends, one captures")
    try:
        return measure(args)
    except (NetbpfError, BenchError) as e:
        print(f"dump_capture: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)


def measure(args: argparse.Namespace) -> int:
    global GENERATOR
    GENERATOR = floods.choose(args.flood)  # before the lab: a refused generator costs nothing
    print(f"flood generator: {GENERATOR} (--flood {args.flood})\n", flush=True)
    lab = bench_lab("bd")
    try:
        results: dict[tuple[str, bool], list[dict[str, float]]] = {}
        for _ in range(args.repeat):
            for one_percent in (False, True):
                for tool, runner in (("tcpdump", run_tcpdump), ("netbpf dump", run_netbpf)):
                    results.setdefault((tool, one_percent), []).append(runner(lab, args.packets, one_percent))
        print(f"UDP 64-byte frames from {GENERATOR}, {args.packets:,} per run, median of {args.repeat} runs; "
              f"capture pinned to CPU {CAPTURE_CPU}, sender to CPU {SENDER_CPU}\n")
        print("| tool | filter | offered pkt/s | offered | matching | captured | lost "
              "| capture CPU s | CPU s per M captured | CPU ns per offered packet |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        summary = {}
        for (tool, one_percent), rows in results.items():
            m = median_run(rows)
            matching = m["sent"] / 100 if one_percent else m["sent"]
            per_m = m["cpu"] / (m["captured"] / 1e6) if m["captured"] else float("nan")
            per_offered = m["cpu"] / m["sent"] * 1e9
            summary[(tool, one_percent)] = (per_m, per_offered, m)
            print(f"| {tool} | {FILTER if one_percent else '(none)'} | {m['sent'] / m['seconds']:,.0f} "
                  f"| {m['sent']:,.0f} | {matching:,.0f} | {m['captured']:,.0f} | {m['lost']:,.0f} "
                  f"| {m['cpu']:.3f} | {per_m:.3f} | {per_offered:.1f} |")
        all_ratio = summary[("netbpf dump", False)][0] / summary[("tcpdump", False)][0]
        one_ratio = summary[("netbpf dump", True)][1] / summary[("tcpdump", True)][1]
        print(f"\nnetbpf / tcpdump, CPU per million captured (no filter): {all_ratio:.2f}x (target <= 1.0)")
        print(f"netbpf / tcpdump, CPU per offered packet (1% filter):   {one_ratio:.2f}x (target < 1.0)")
        return 0
    finally:
        lab.down()


if __name__ == "__main__":
    sys.exit(main())
