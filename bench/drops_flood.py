#!/usr/bin/env python3
"""A drop storm in the lab: a UDP flood to a closed port, watched by ``netbpf drops``.

Two floods of 1-byte UDP datagrams to the gateway's closed port 9, each
dropped by the gateway's UDP stack (NO_SOCKET); the kernel's own count of
them (UdpNoPorts, nstat) is the truth every figure is checked against:

- ``sendmmsg``: from the client namespace through the veth (256 datagrams per
  call), the way an application floods; about 6 us of kernel work per packet
  on this machine, sending and receiving on the same CPU.
- the frame generator of netbpf/tools/dump/flood.py, chosen by ``--flood``
  (default $NETBPF_FLOOD or auto) and printed first:
  ``xdp-live``: the kernel's own packet generator, the one xdp-trafficgen
  uses: BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES and an XDP program
  that returns XDP_PASS injects the frame on the gateway's c0 as if received,
  and it goes up the real receive path (ip_rcv, udp_rcv) to its drop. Only
  the receive half: the highest drop rate this machine can offer.
  ``af_packet`` (where live frames are refused, or forced): the same frame from
  an AF_PACKET socket on the client's eth0 (sendmmsg, no qdisc): the veth's
  transmit and the whole receive path, with no UDP/IP send stack.

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
                                               [--flood auto|live|socket]

The first error ends the run with one line on stderr and exit status 1.
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

from netbpf.errors import NetbpfError  # noqa: E402
from netbpf.lab import Lab  # noqa: E402
from netbpf.tools.dump import flood as floods  # noqa: E402

PREFIX = "nbflood"
PORT = 9
BATCH = 256
GENERATOR = floods.LIVE  # set by main() from --flood; children get it on their command line
STARTED: list[subprocess.Popen[str]] = []  # netbpf drops processes, stopped on the way out


class BenchError(Exception):
    """The run cannot go on: one line, exit 1."""


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


def inject(generator: str, mac: bytes, rate: float, duration: float, count: int = 0) -> None:
    """The generator's flood to the gateway's port 9 (c0's address `mac`), `rate` frames per
    second (0: unpaced); with `count`, exactly that many frames, as fast as they go. xdp-live
    runs in the gateway namespace (frames received on c0), af_packet in the client's (sent
    on eth0)."""
    frame = floods.udp_frame(bytes.fromhex("020000000001"), mac, Lab.CLIENT_IP, Lab.GATEWAY_IP, 40000, PORT,
                             size=60, payload=b"x")
    try:
        if generator == floods.LIVE:
            gen: floods.LiveFrames | floods.PacketSocket = floods.LiveFrames("c0", floods.XDP_PASS)
        else:
            gen = floods.PacketSocket("eth0")
    except NetbpfError as e:
        raise SystemExit(f"{generator}: {e}") from None
    # xdp-live: each call costs ~50 ms of set-up here (the live-frame page pool), whatever
    # its size: calls are big, and paced ones come in bursts of a quarter of a second's worth.
    chunk = max(1000, int(rate / 4)) if rate else 100_000
    if count:
        chunk = min(chunk, count)
        while count % chunk:
            chunk -= 1  # exactly `count` frames
    sent = 0
    start = time.monotonic()
    end = start + duration
    with gen:
        while (count and sent < count) or (not count and time.monotonic() < end):
            if rate:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
            try:
                sent += gen.send(frame, chunk)
            except NetbpfError as e:  # the first refusal ends the run: no retry loop
                raise SystemExit(f"{generator}: {e}") from None
    # xdp-live: the kernel times its test-run loop itself (mean ns per frame), leaving out
    # the time the task was scheduled away: on a shared machine, the steadiest figure.
    # af_packet: the CPU time of this process, which the veth's receive softirq is charged to.
    seconds = gen.kernel_ns / 1e9 if isinstance(gen, floods.LiveFrames) else cpu_self()
    print(sent, seconds, time.monotonic() - start, flush=True)


# -- the measurement ---------------------------------------------------------------------------
def c0_mac(lab: Lab) -> str:
    out = lab.run(lab.gateway, "ip", "-j", "link", "show", "c0").stdout
    return str(json.loads(out)[0]["address"]).replace(":", "")


def inject_argv(lab: Lab, how: str) -> tuple[str, list[str]]:
    """(namespace, argv tail) of a generator's sender."""
    ns = lab.gateway if how == floods.LIVE else lab.client
    return ns, ["--inject", how, c0_mac(lab)]


def no_ports(lab: Lab) -> int:
    out = lab.run(lab.gateway, "nstat", "-asz", "--json", "UdpNoPorts").stdout
    data = json.loads(out)
    return int(data.get("kernel", data)["UdpNoPorts"])


def flood(lab: Lab, how: str, rate: float, duration: float, senders: int) -> tuple[int, float, float]:
    """Run `senders` senders (each on its own CPU), each at rate/senders: (packets sent, the
    seconds their packets cost (xdp-live: the kernel's own timing; otherwise CPU time),
    the longest sender's seconds). `how`: sendmmsg or a flood generator."""
    procs = []
    cpus = sorted(os.sched_getaffinity(0))
    for i in range(senders):
        if how == "sendmmsg":
            ns, tail = lab.client, ["--send", lab.GATEWAY_IP]
        else:
            ns, tail = inject_argv(lab, how)
        argv = ["taskset", "-c", str(cpus[i % len(cpus)]), sys.executable, __file__, *tail,
                str(rate / senders), str(duration)]
        procs.append(lab.popen(ns, *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=duration + 60) for p in procs]
    failed = [(p, err) for p, (_, err) in zip(procs, outputs, strict=True) if p.returncode != 0]
    if failed:
        p, err = failed[0]
        raise BenchError(f"{how} sender exited {p.returncode}: {last_line(err)}")
    results = [out.split() for out, _ in outputs]
    return (sum(int(r[0]) for r in results), sum(float(r[1]) for r in results),
            max(float(r[2]) for r in results))


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no message)"


def netbpf(lab: Lab, *args: str, stdout: int | None = None, cpu: int | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", "netbpf", "drops", "--in-netns", lab.gateway, *args]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    proc = subprocess.Popen(argv, stdout=stdout if stdout is not None else subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    STARTED.append(proc)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if "watching" not in line:
        raise BenchError(f"netbpf drops did not start: {last_line(line + proc.stderr.read())}")
    return proc


def shown_lost(err: str) -> tuple[int, int]:
    """(shown, lost) from the tool's exit line "N drops shown, M lost"."""
    found = [ln for ln in err.splitlines() if "shown" in ln]
    if not found:
        raise BenchError(f"netbpf drops ended without its count: {last_line(err)}")
    return int(found[-1].split()[0]), int(found[-1].split(",")[1].split()[0])


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
        ns, tail = inject_argv(lab, GENERATOR)
        lab.run(ns, "taskset", "-c", str(cpus[0]), sys.executable, __file__, *tail, "0", "0", str(count),
                timeout=120)
        kernel = no_ports(lab) - before
        cpu_before = cpu_seconds(proc.pid)
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGCONT)
        drain = wait_idle(proc.pid, start)
        cpu = cpu_seconds(proc.pid) - cpu_before
        _, err = stop(proc)
    shown, lost = shown_lost(err)
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
    shown, lost = shown_lost(err)
    return {"offered": rate, "sent": sent, "kernel": kernel, "shown": shown, "lost": lost,
            "rate": shown / (elapsed + drain), "drain": drain, "accounted": shown + lost == kernel,
            "cpu_us": cpu / max(shown, 1) * 1e6}


class HookOnly:
    """The anchor: drops.bpf.o's empty program on tp_btf/kfree_skb, what any tool pays."""

    def __enter__(self) -> HookOnly:
        from netbpf.bpf import BpfObject, object_path
        from netbpf.bpf.attach import trace
        from netbpf.tools.drops import kernel as events

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
    """ns per run of the program on kfree_skb under the generator's flood (bpf_stats)."""
    from netbpf import netns
    from netbpf.tools.drops.kernel import DropFilter, DropOptions, DropTracer

    with BpfStats():
        if mode == "hook":
            with HookOnly() as hook:
                flood(lab, GENERATOR, 0, duration, senders=1)
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
                    flood(lab, GENERATOR, 0, duration, senders=1)
                    return ns_per_run(prog_id)
                finally:
                    stop(proc)
        options = DropOptions(filter=scope, stream=False, summary=True, summary_flows=mode == "flows")
        with DropTracer(options) as tracer:
            flood(lab, GENERATOR, 0, duration, senders=1)
            return ns_per_run(tracer.program_id())


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--send":
        send(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--inject":
        inject(sys.argv[2], bytes.fromhex(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]),
               int(sys.argv[6]) if len(sys.argv) > 6 else 0)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--rates", default="100000,200000,300000,400000,0",
                        help="offered rates for streaming, 0 = as fast as one sender goes")
    parser.add_argument("--only", choices=["stream", "summary", "cost"], action="append",
                        help="run only this part (repeatable; default: all)")
    parser.add_argument("--flood", choices=floods.CHOICES, default=os.environ.get(floods.ENV) or "auto",
                        help="the frame generator: live XDP frames, an AF_PACKET socket, or auto "
                             "(live where the kernel allows them; default: $NETBPF_FLOOD or auto)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    try:
        return measure(args)
    except (NetbpfError, BenchError, subprocess.TimeoutExpired) as e:
        print(f"drops_flood: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    finally:
        for proc in STARTED:  # a tool left running by an error: stopped, so that it detaches
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()


def measure(args: argparse.Namespace) -> int:
    global GENERATOR
    parts = set(args.only or ["stream", "summary", "cost"])
    GENERATOR = floods.choose(args.flood)  # before the lab: a refused generator costs nothing
    print(f"flood generator: {GENERATOR} (--flood {args.flood})\n", flush=True)
    lab = Lab(PREFIX, backends=0).up()
    try:
        lab.wait_reachable()
        print(f"## netbpf drops: UDP flood to a closed port ({len(os.sched_getaffinity(0))} CPUs, "
              f"{args.duration:.0f} s per run, generator {GENERATOR})\n")
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
    print(f"| {GENERATOR} into a stopped reader (SIGSTOP), then SIGCONT | 300,000 at once | {r['kernel']:,} | "
          f"{r['shown']:,} | {r['lost']:,} | {r['rate']:,.0f} | {r['drain']:.2f} (the drain) | "
          f"{r['cpu_us']:.2f} | {'yes' if r['accounted'] else 'NO'} |", flush=True)
    for how, rates in ((GENERATOR, args.rates), ("sendmmsg", "0")):
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
          "time for af_packet and sendmmsg (this kernel charges softirqs to the task they interrupt). Ratios are "
          "throughput ratios (none's ns / netbpf's ns), per round, then their median: the machine's "
          "load drifts between rounds, less within one.\n")
    print("| flood | round | none: drops/s | hook: drops/s | netbpf: drops/s | none: ns/drop "
          "| hook: ns/drop | netbpf: ns/drop | netbpf vs none | netbpf vs hook | count = kernel's |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    rng = random.Random(4)
    summary: list[str] = []
    for how in (GENERATOR, "sendmmsg"):
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
    print(f"\n### What the program itself costs per drop (bpf_stats run_time_ns / run_cnt, {GENERATOR} "
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
