#!/usr/bin/env python3
"""A drop storm in the lab: a UDP flood to a closed port, watched by ``netbpf drops``.

Two floods of 1-byte UDP datagrams to the gateway's closed port 9, each
dropped by the gateway's UDP stack (NO_SOCKET); the kernel's own count of
them (UdpNoPorts, nstat) is the truth every figure is checked against:

- ``sendmmsg``: from the client namespace through the veth (256 datagrams per
  call), the way an application floods; about 6 us of kernel work per packet
  on this machine, sending and receiving on the same CPU.
- ``xdp-live``: the kernel's own packet generator, the one xdp-trafficgen
  uses: BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES and an XDP program
  that returns XDP_PASS injects the frame on the gateway's c0 as if received,
  and it goes up the real receive path (ip_rcv, udp_rcv) to its drop. Only
  the receive half: the highest drop rate this machine can offer.

1. stream: ``netbpf drops --in-netns GW --port 9 > /dev/null`` (text lines) on
   one CPU, the flood on the other: events consumed and lost per offered rate
   (shown + lost must equal the kernel's count), and the reader alone draining
   300k events that filled the ring while it was stopped.
2. summary: the flood's cost per drop with no program on kfree_skb, with an
   empty one (the anchor: the hook alone), with ``netbpf drops --summary``, in a
   random order each round; the median of per-round ratios. The tool's final
   count must equal the kernel's.
3. cost: each program's own ns per drop from bpf_stats.

    sudo .venv/bin/python bench/drops_flood.py [--duration 5] [--rounds 9] [--only stream|summary|cost]
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import random
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from netbpf.lab import Lab  # noqa: E402

PREFIX = "nbflood"
PORT = 9
BATCH = 256


# -- the sender (runs inside the client namespace) -------------------------------------------
class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(Iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", Msghdr), ("len", ctypes.c_uint32)]


def send(dst: str, rate: float, duration: float) -> None:
    """Send 1-byte datagrams to dst:9 at `rate` per second (0: as fast as possible)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Unconnected: the ICMP port unreachable replies must not turn into send errors.
    addr = struct.pack("<H", socket.AF_INET) + struct.pack(">H", PORT) + socket.inet_aton(dst) + bytes(8)
    name = ctypes.create_string_buffer(addr, len(addr))
    payload = ctypes.create_string_buffer(b"x", 1)
    iov = Iovec(ctypes.cast(payload, ctypes.c_void_p), 1)
    msgs = (Mmsghdr * BATCH)()
    for m in msgs:
        m.hdr.name = ctypes.cast(name, ctypes.c_void_p)
        m.hdr.namelen = len(addr)
        m.hdr.iov = ctypes.pointer(iov)
        m.hdr.iovlen = 1
    fd = sock.fileno()
    sent = 0
    start = time.monotonic()
    end = start + duration
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if rate:
            ahead = sent / rate - (now - start)
            if ahead > 0:
                time.sleep(ahead)
        n = libc.sendmmsg(fd, msgs, BATCH, 0)
        if n > 0:
            sent += n
    print(sent, cpu_self(), time.monotonic() - start, flush=True)


def cpu_self() -> float:
    """CPU seconds this process used: the kernel's work for its packets is charged to it
    (this kernel has no IRQ time accounting: softirqs count to the task they interrupt)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def inject(rate: float, duration: float, count: int = 0) -> None:
    """Inside the gateway namespace: XDP live frames on c0, `rate` per second (0: unpaced);
    with `count`, exactly that many frames, as fast as they go."""
    from netbpf.bpf import _libbpf as L
    from netbpf.bpf import features

    mac = Path("/sys/class/net/c0/address").read_text().strip()
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 29, 0, 0x4000, 64, 17, 0, socket.inet_aton(Lab.CLIENT_IP),
                     socket.inet_aton(Lab.GATEWAY_IP))
    total = sum(struct.unpack("!10H", ip))
    total = (total >> 16) + (total & 0xFFFF)
    ip = ip[:10] + struct.pack("!H", ~(total + (total >> 16)) & 0xFFFF) + ip[12:]
    frame = (bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("020000000001") + b"\x08\x00" + ip
             + struct.pack("!HHHH", 40000, PORT, 9, 0) + b"x").ljust(60, b"\0")
    prog = features.load_trivial(6, verdict=2, name="netbpf_b_gen")  # XDP_PASS
    data = ctypes.create_string_buffer(frame, len(frame))
    ctx = ctypes.create_string_buffer(struct.pack("<6I", 0, len(frame), 0, socket.if_nametoindex("c0"), 0, 0), 24)
    # Each call costs ~50 ms of set-up here (the live-frame page pool), whatever its
    # size: calls are big, and paced ones come in bursts of a quarter of a second's worth.
    chunk = max(1000, int(rate / 4)) if rate else 100_000
    if count:
        chunk = min(chunk, count)
        while count % chunk:
            chunk -= 1  # exactly `count` frames
    sent = kernel_ns = 0
    start = time.monotonic()
    end = start + duration
    while True:
        now = time.monotonic()
        if (now >= end and not count) or (count and sent >= count):
            break
        if rate:
            ahead = sent / rate - (now - start)
            if ahead > 0:
                time.sleep(ahead)
        opts = L.TestRunOpts(sz=ctypes.sizeof(L.TestRunOpts), repeat=chunk, flags=1 << 1, batch_size=64)
        opts.data_in = ctypes.cast(data, ctypes.c_void_p)
        opts.data_size_in = len(frame)
        opts.ctx_in = ctypes.cast(ctx, ctypes.c_void_p)
        opts.ctx_size_in = 24
        if L.lib.bpf_prog_test_run_opts(prog, ctypes.byref(opts)) == 0:
            sent += chunk
            kernel_ns += opts.duration * chunk
    os.close(prog)
    # The kernel times its test-run loop itself (mean ns per frame), leaving out the
    # time the task was scheduled away: on a shared machine, the steadiest figure.
    print(sent, kernel_ns / 1e9, time.monotonic() - start, flush=True)


# -- the measurement ---------------------------------------------------------------------------
def no_ports(lab: Lab) -> int:
    out = lab.run(lab.gateway, "nstat", "-asz", "--json", "UdpNoPorts").stdout
    data = json.loads(out)
    return int(data.get("kernel", data)["UdpNoPorts"])


def flood(lab: Lab, how: str, rate: float, duration: float, senders: int) -> tuple[int, float, float]:
    """Run `senders` senders (each on its own CPU), each at rate/senders: (packets sent, the
    seconds their packets cost (xdp-live: the kernel's own timing; sendmmsg: CPU time),
    the longest sender's seconds)."""
    procs = []
    cpus = sorted(os.sched_getaffinity(0))
    for i in range(senders):
        if how == "sendmmsg":
            ns, tail = lab.client, ["--send", lab.GATEWAY_IP]
        else:
            ns, tail = lab.gateway, ["--inject"]
        argv = ["taskset", "-c", str(cpus[i % len(cpus)]), sys.executable, __file__, *tail,
                str(rate / senders), str(duration)]
        procs.append(lab.popen(ns, *argv, stdout=subprocess.PIPE, text=True))
    results = [p.communicate(timeout=duration + 60)[0].split() for p in procs]
    return (sum(int(r[0]) for r in results), sum(float(r[1]) for r in results),
            max(float(r[2]) for r in results))


def netbpf(lab: Lab, *args: str, stdout: int | None = None, cpu: int | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "netbpf", "drops", "--in-netns", lab.gateway, *args]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    proc = subprocess.Popen(argv, stdout=stdout if stdout is not None else subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "watching" not in line:
        raise SystemExit(f"netbpf drops did not start: {line}{proc.stderr.read()}")
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(pid: int, start: float | None = None) -> float:
    """Seconds (since `start`, default now) until a process stops using CPU: it has read
    everything. Idle means no CPU tick for 0.2 s (HZ=250 counts in 4 ms steps)."""
    start = time.monotonic() if start is None else start
    last, last_change = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - last_change < 0.2:
        time.sleep(0.01)
        now = cpu_seconds(pid)
        if now != last:
            last, last_change = now, time.monotonic()
    return max(0.0, last_change - start)


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return out or "", err


def burst(lab: Lab, count: int) -> dict[str, float]:
    """The reader alone: `count` drops fill the ring while it is stopped (SIGSTOP); then it
    drains them on its own CPU, and the time it takes is its consumption rate."""
    cpus = sorted(os.sched_getaffinity(0))
    with open(os.devnull, "w") as devnull:
        proc = netbpf(lab, "--port", str(PORT), stdout=devnull.fileno(), cpu=cpus[-1])
        before = no_ports(lab)
        os.kill(proc.pid, signal.SIGSTOP)
        lab.run(lab.gateway, "taskset", "-c", str(cpus[0]), sys.executable, __file__, "--inject", "0", "0",
                str(count), timeout=120)
        kernel = no_ports(lab) - before
        cpu_before = cpu_seconds(proc.pid)
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGCONT)
        drain = wait_idle(proc.pid, start)
        cpu = cpu_seconds(proc.pid) - cpu_before
        _, err = stop(proc)
    last = [ln for ln in err.splitlines() if "shown" in ln][-1]
    shown, lost = int(last.split()[0]), int(last.split(",")[1].split()[0])
    return {"kernel": kernel, "shown": shown, "lost": lost, "rate": shown / drain, "drain": drain,
            "accounted": shown + lost == kernel, "cpu_us": cpu / max(shown, 1) * 1e6}


def streaming(lab: Lab, how: str, rate: float, duration: float) -> dict[str, float]:
    """The tool on the last CPU, one sender on the first."""
    cpus = sorted(os.sched_getaffinity(0))
    with open(os.devnull, "w") as devnull:
        proc = netbpf(lab, "--port", str(PORT), stdout=devnull.fileno(), cpu=cpus[-1])
        cpu_before = cpu_seconds(proc.pid)
        before = no_ports(lab)
        sent, _, elapsed = flood(lab, how, rate, duration, senders=1)
        drain = wait_idle(proc.pid)  # the reader's backlog when the flood ended, in seconds
        kernel = no_ports(lab) - before
        cpu = cpu_seconds(proc.pid) - cpu_before
        _, err = stop(proc)
    last = [ln for ln in err.splitlines() if "shown" in ln][-1]  # "N drops shown, M lost"
    shown, lost = int(last.split()[0]), int(last.split(",")[1].split()[0])
    return {"offered": rate, "sent": sent, "kernel": kernel, "shown": shown, "lost": lost,
            "rate": shown / (elapsed + drain), "drain": drain, "accounted": shown + lost == kernel,
            "cpu_us": cpu / max(shown, 1) * 1e6}


class HookOnly:
    """The anchor: drops.bpf.o's empty program on tp_btf/kfree_skb, what any tool pays."""

    def __enter__(self) -> HookOnly:
        from netbpf.bpf import BpfObject, object_path
        from netbpf.bpf.attach import trace
        from netbpf.tools.drops import events

        self.obj = BpfObject.open(object_path(events.__file__, events.BPF_OBJECT))
        for name, prog in self.obj.programs.items():
            prog.set_autoload(name == "netbpf_drop_nop")
        self.obj.load()
        self.link = trace.attach_tp_btf(self.obj.program("netbpf_drop_nop"))
        return self

    def __exit__(self, *exc: object) -> None:
        self.link.close()
        self.obj.close()


def throughput(lab: Lab, how: str, duration: float, mode: str) -> tuple[float, float, bool]:
    """mode none | hook | tool: (drops per second, flood CPU ns per drop, tool's count = kernel's)."""
    if mode == "hook":
        with HookOnly():
            return throughput(lab, how, duration, "none")
    proc = netbpf(lab, "--summary", "--json") if mode == "tool" else None
    before = no_ports(lab)
    _sent, cpu, elapsed = flood(lab, how, 0, duration, senders=len(os.sched_getaffinity(0)))
    kernel = no_ports(lab) - before
    exact = True
    if proc is not None:
        out, _ = stop(proc)
        rows = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
        counted = sum(r["count"] for r in rows if r["reason"] == "NO_SOCKET")
        exact = counted == kernel
    return kernel / elapsed, cpu / max(kernel, 1) * 1e9, exact


class BpfStats:
    """kernel.bpf_stats_enabled on, for run_time_ns/run_cnt (restored afterwards)."""

    PATH = Path("/proc/sys/kernel/bpf_stats_enabled")

    def __enter__(self) -> BpfStats:
        self.before = self.PATH.read_text().strip()
        self.PATH.write_text("1")
        return self

    def __exit__(self, *exc: object) -> None:
        self.PATH.write_text(self.before)


def ns_per_run(prog_id: int) -> float:
    from netbpf.bpf.info import fd_by_id, prog_info

    fd = fd_by_id("prog", prog_id)
    try:
        info = prog_info(fd)
        return info.run_time_ns / max(info.run_cnt, 1)
    finally:
        os.close(fd)


def program_cost(lab: Lab, duration: float, mode: str) -> float:
    """ns per run of the program on kfree_skb under the xdp-live flood (bpf_stats)."""
    from netbpf import netns
    from netbpf.tools.drops.events import DropFilter, DropOptions, DropTracer

    with BpfStats():
        if mode == "hook":
            with HookOnly() as hook:
                flood(lab, "xdp-live", 0, duration, senders=1)
                return ns_per_run(hook.obj.program("netbpf_drop_nop").id)
        scope = DropFilter(netns=netns.inode_of(lab.gateway))
        if mode == "stream":  # the command itself, so that the ring is read as it fills
            with open(os.devnull, "w") as devnull:
                proc = netbpf(lab, "--port", str(PORT), stdout=devnull.fileno())
                try:
                    ids = subprocess.run(["bpftool", "-j", "prog", "show", "name", "netbpf_drop_btf"],
                                         capture_output=True, text=True).stdout
                    found = json.loads(ids)
                    prog_id = max(p["id"] for p in (found if isinstance(found, list) else [found]))
                    flood(lab, "xdp-live", 0, duration, senders=1)
                    return ns_per_run(prog_id)
                finally:
                    stop(proc)
        options = DropOptions(filter=scope, stream=False, summary=True, summary_flows=mode == "flows")
        with DropTracer(options) as tracer:
            flood(lab, "xdp-live", 0, duration, senders=1)
            return ns_per_run(tracer.program_id())


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--send":
        send(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--inject":
        inject(float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--rates", default="100000,200000,300000,400000,0",
                        help="offered rates for streaming, 0 = as fast as one sender goes")
    parser.add_argument("--only", choices=["stream", "summary", "cost"], action="append",
                        help="run only this part (repeatable; default: all)")
    args = parser.parse_args()
    parts = set(args.only or ["stream", "summary", "cost"])
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    lab = Lab(PREFIX, backends=0).up()
    try:
        lab.wait_reachable()
        print(f"## netbpf drops: UDP flood to a closed port ({len(os.sched_getaffinity(0))} CPUs, "
              f"{args.duration:.0f} s per run)\n")
        if "stream" in parts:
            streaming_table(lab, args)
        if "summary" in parts:
            summary_table(lab, args)
        if "cost" in parts:
            cost_table(lab, args)
    finally:
        lab.down()
    return 0


def streaming_table(lab: Lab, args: argparse.Namespace) -> None:
    print("### Streaming (`netbpf drops --in-netns GW --port 9 > /dev/null`: text lines; "
          "the tool on one CPU, one flood on the other)\n")
    print("| flood | offered drops/s | dropped (kernel) | shown | lost | consumed drops/s "
          "| backlog at end (s) | tool CPU us per drop | all accounted |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|:---:|")
    r = burst(lab, 300_000)
    print(f"| xdp-live into a stopped reader (SIGSTOP), then SIGCONT | 300,000 at once | {r['kernel']:,} | "
          f"{r['shown']:,} | {r['lost']:,} | {r['rate']:,.0f} | {r['drain']:.2f} (the drain) | "
          f"{r['cpu_us']:.2f} | {'yes' if r['accounted'] else 'NO'} |", flush=True)
    for how, rates in (("xdp-live", args.rates), ("sendmmsg", "0")):
        for rate in (float(r) for r in rates.split(",")):
            r = streaming(lab, how, rate, args.duration)
            offered = f"{rate:,.0f}" if rate else "max"
            print(f"| {how} | {offered} | {r['kernel']:,} | {r['shown']:,} | {r['lost']:,} | "
                  f"{r['rate']:,.0f} | {r['drain']:.2f} | {r['cpu_us']:.2f} | "
                  f"{'yes' if r['accounted'] else 'NO'} |",
                  flush=True)


def summary_table(lab: Lab, args: argparse.Namespace) -> None:
    print("\n### Summary mode: the flood's throughput without a program on kfree_skb (none), with an "
          "empty one (the hook alone, what any tool pays), with `netbpf drops --summary`; one flood per "
          "CPU, as fast as they go; the three in a random order each round\n")
    print("ns per drop: the kernel's own timing of its test-run loop for xdp-live, the senders' CPU "
          "time for sendmmsg (this kernel charges softirqs to the task they interrupt). Ratios are "
          "throughput ratios (none's ns / netbpf's ns), per round, then their median: the machine's "
          "load drifts between rounds, less within one.\n")
    print("| flood | round | none: drops/s | hook: drops/s | netbpf: drops/s | none: ns/drop "
          "| hook: ns/drop | netbpf: ns/drop | netbpf vs none | netbpf vs hook | count = kernel's |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    rng = random.Random(4)
    summary: list[str] = []
    for how in ("xdp-live", "sendmmsg"):
        vs_none, vs_hook = [], []
        for i in range(args.rounds):
            modes = ["none", "hook", "tool"]
            rng.shuffle(modes)
            runs = {mode: throughput(lab, how, args.duration, mode) for mode in modes}
            (a, a_ns, _), (h, h_ns, _), (b, b_ns, exact) = runs["none"], runs["hook"], runs["tool"]
            vs_none.append(a_ns / b_ns)
            vs_hook.append(h_ns / b_ns)
            print(f"| {how} | {i + 1} | {a:,.0f} | {h:,.0f} | {b:,.0f} | {a_ns:,.0f} | {h_ns:,.0f} | "
                  f"{b_ns:,.0f} | {vs_none[-1]:.3f} | {vs_hook[-1]:.3f} | {'yes' if exact else 'NO'} |",
                  flush=True)
        summary.append(f"| {how} | {statistics.median(vs_none):.3f} | {statistics.median(vs_hook):.3f} |")
    print("\n| flood | netbpf / none (median of rounds) | netbpf / hook alone (median of rounds) |")
    print("|---|---:|---:|")
    print("\n".join(summary))


def cost_table(lab: Lab, args: argparse.Namespace) -> None:
    print("\n### What the program itself costs per drop (bpf_stats run_time_ns / run_cnt, xdp-live "
          "flood; the empty program's figure is the clock reads bpf_stats adds)\n")
    print("| program on tp_btf/kfree_skb | ns per drop (median) | rounds |")
    print("|---|---:|---|")
    for mode, label in (("hook", "empty (`netbpf_drop_nop`)"), ("summary", "`--summary`"),
                        ("flows", "`--summary --by-flow`"), ("stream", "streaming (ring buffer)")):
        costs = [program_cost(lab, min(args.duration, 3), mode) for _ in range(3)]
        print(f"| {label} | {statistics.median(costs):.0f} | {', '.join(f'{c:.0f}' for c in costs)} |",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
