#!/usr/bin/env python3
"""How fast can Python drain a BPF ring buffer, and does it lose anything?

A producer process (pinned to one CPU) runs the self-test program
``netbpf_st_ring`` with BPF_PROG_TEST_RUN; each run emits a batch of 64-byte
records with bpf_loop + bpf_ringbuf_reserve/submit, paced to an offered
rate. The consumer (this process, pinned to the other CPU) reads them with
:class:`netbpf.bpf.ringbuf.RingBuffer`, checks that sequence numbers arrive
complete and in order, and counts. Lost records are the BPF side's failed
reservations, counted in the kernel, never inferred.

    sudo .venv/bin/python bench/ringbuf_drain.py [--seconds 3] [--ring-mib 8]
"""
from __future__ import annotations

import argparse
import os
import resource
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from netbpf.bpf import selftest
from netbpf.bpf.ringbuf import RingBuffer

RECORD = 64
_seq = struct.Struct("<Q")


def produce(prog, rate: float, seconds: float, batch: int) -> None:  # type: ignore[no-untyped-def]
    """Child process: emit `rate` records/s (0: as fast as possible) for `seconds`."""
    os.sched_setaffinity(0, {1})
    sent = 0
    start = time.perf_counter()
    interval = batch / rate if rate else 0.0
    while True:
        now = time.perf_counter()
        if now - start >= seconds:
            break
        prog.test_run(struct.pack("<IIQ", batch, 0, sent) + bytes(48))
        sent += batch
        if interval:
            delay = start + (sent / batch) * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    os.write(3, struct.pack("<Q", sent))  # report to the parent through fd 3
    os._exit(0)


def run(rate: float, seconds: float, ring_bytes: int) -> dict[str, float]:
    obj = selftest.open_object()
    obj.set_map_size("records", ring_bytes)
    obj.load()
    ring = RingBuffer(obj.map("records"), obj.map("records_lost"))
    prog = obj.program("netbpf_st_ring")
    batch = 2000 if rate == 0 or rate >= 500_000 else 500
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 3)
        produce(prog, rate, seconds, batch)
    os.close(w)
    os.sched_setaffinity(0, {0})
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    consumed, expected, out_of_order = 0, 0, 0
    first = last = 0.0
    done = False
    while True:
        records = ring.poll(timeout=0.05)
        if records:
            last = time.perf_counter()
            first = first or last
        for rec in records:
            seq = _seq.unpack_from(rec)[0]
            if seq != expected:
                out_of_order += 1
            expected = seq + 1
        consumed += len(records)
        if done and not records:
            break
        if not done and os.waitpid(pid, os.WNOHANG)[0]:
            done = True
    elapsed = max(last - first, 1e-9)  # from the first batch to the last one
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    sent = struct.unpack("<Q", os.read(r, 8))[0]
    os.close(r)
    lost = ring.lost
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    ring.release()
    obj.close()
    # Losses make later sequence numbers jump; only count gaps when nothing was lost.
    return {"offered": rate, "sent": sent, "consumed": consumed, "lost": lost,
            "rate": consumed / elapsed, "cpu_per_m": cpu / consumed * 1e6 if consumed else 0,
            "gaps": out_of_order if not lost else 0, "accounted": consumed + lost == sent}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--ring-mib", type=int, default=8)
    parser.add_argument("--rates", default="250000,500000,1000000,1500000,0",
                        help="offered records/s, 0 = as fast as the producer can")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("ringbuf_drain: run as root")
    print(f"ring buffer drain, {RECORD}-byte records, ring {args.ring_mib} MiB, "
          f"{args.seconds:.0f} s per row, producer and consumer on separate CPUs")
    print("| offered rec/s | produced | consumed | lost | consumed rec/s | consumer CPU s per M records | all accounted, in order |")
    print("|---:|---:|---:|---:|---:|---:|:---:|")
    worst_ok = True
    for rate in (float(x) for x in args.rates.split(",")):
        r = run(rate, args.seconds, args.ring_mib << 20)
        offered = f"{rate:,.0f}" if rate else "max"
        ok = r["accounted"] and r["gaps"] == 0
        worst_ok &= ok
        print(f"| {offered} | {r['sent']:,} | {r['consumed']:,} | {r['lost']:,} | "
              f"{r['rate']:,.0f} | {r['cpu_per_m']:.2f} | {'yes' if ok else 'NO'} |", flush=True)
    return 0 if worst_ok else 1


if __name__ == "__main__":
    sys.exit(main())
