#!/usr/bin/env python3
"""Where the http counting program's time goes, stage by stage, on replayed frames.

The program is built again with ``-DHTTP_CUT=n`` (see CUT() in http.bpf.c and
count.h): it returns at stage n, so the difference between two stages is what
the code between them costs. Each variant runs (BPF_PROG_TEST_RUN, one run per
frame, the kernel's own ns per run; the variants take turns, round by round) on the frames of keep-alive connections
like wrk's against nginx: a handshake, then ``--exchanges`` request/response
pairs (one segment each, as wrk and nginx send them), replayed ``--rounds``
times with the connection table cleared in between. No traffic and no other
process is involved, so the figures are steadier than under wrk (the machine
is still shared). The duration of a run includes the kernel's two clock reads
around it, as BPF_ENABLE_STATS does. Stages:

    1 at entry                          2 IP and TCP headers read, port known
    3 payload-less ACKs left            4 http_count_segment entered
    5 the connection looked up
    6 the backend's figures found      7 all but the payload's parse
    10 the head's parse entered (taken for a head without a body, as 8 and 9)
    8 the head copied to scratch        9 and its lines found (8, 9: taken for
                                          a head without a body)
    full: the program as built for use
    a git revision (e.g. HEAD, main): the program as it was there, to compare with


    sudo .venv/bin/python bench/http_prog_cost.py [--stages 1,2,full] [--rounds 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import buildbpf  # noqa: E402
from netbpf.bpf import BpfObject  # noqa: E402
from netbpf.tools.http.kernel import PROGRAMS, make_config  # noqa: E402
from tests.http_frames import TcpFlow, ethernet, ethertype_of  # noqa: E402

SOURCE = ROOT / "src/netbpf/tools/http/http.bpf.c"
STAGES = {"1": "at entry", "2": "IP and TCP headers, port", "3": "payload-less ACKs left",
          "4": "http_count_segment entered", "5": "connection lookup", "6": "backend's figures (per-CPU array)", "7": "all but the payload parse",
          "10": "head parse entered", "8": "head copied", "9": "head's lines found", "full": "as built for use"}
REQUEST = b"GET / HTTP/1.1\r\nHost: 10.0.11.2:8080\r\n\r\n"  # what wrk sends
RESPONSE = (b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0 (Ubuntu)\r\nDate: Mon, 07 Dec 2026 00:20:00 GMT\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n")


def build(cut: str, target: Path) -> None:
    """Stage `cut` of the source in the tree, or (a git revision) the program as it was then."""
    source = SOURCE
    extra = [] if cut == "full" else [f"-DHTTP_CUT={cut}"]
    if cut not in STAGES:
        source = target.with_suffix("") / SOURCE.name
        source.parent.mkdir()
        for path in SOURCE.parent.glob("*.[ch]"):
            old = subprocess.run(["git", "-C", str(ROOT), "show", f"{cut}:{path.relative_to(ROOT)}"],
                                 capture_output=True, check=False)
            if old.returncode == 0:
                (source.parent / path.name).write_bytes(old.stdout)
        extra = []
    cmd = [buildbpf.clang(), *buildbpf.cflags(), *extra, f"-I{source.parent}", "-c", str(source),
           "-o", str(target)]
    subprocess.run(cmd, check=True)


def frames(exchanges: int) -> tuple[list[bytes], list[str]]:
    flow = TcpFlow().handshake()
    for _ in range(exchanges):
        flow.send(0, REQUEST)
        flow.send(1, RESPONSE)
    flow.fin(0).fin(1)
    out, kinds = [], []
    for pkt in flow.packets:
        ip = flow.render(pkt)
        out.append(ethernet(ip, ethertype_of(ip)))
        kinds.append("request" if pkt.payload and pkt.direction == 0 else
                     "response" if pkt.payload else "other")
    return out, kinds


def load(hook: str, path: Path) -> BpfObject:
    obj = BpfObject.open(path)
    for kind, name in PROGRAMS.items():
        obj.program(name).set_autoload(kind == hook)
    obj.set_rodata(config=bytes(make_config([8080], count_in_kernel=True, hand_off=hook == "socket")))
    return obj.load()


def replay(obj: BpfObject, hook: str, packets: list[bytes], kinds: list[str],
           per: dict[str, list[int]]) -> None:
    prog = obj.program(PROGRAMS[hook])
    obj.map("connections").clear()
    for data, kind in zip(packets, kinds, strict=True):
        per[kind].append(prog.test_run(data).duration_ns)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hook", choices=("socket", "tc"), default="socket")
    parser.add_argument("--exchanges", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--stages", default=",".join(STAGES))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/http_prog_cost.py: run as root (BPF)")
    packets, kinds = frames(args.exchanges)
    stages = args.stages.split(",")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="netbpf-bench-") as d:
        objs = {}
        try:
            for stage in stages:
                build(stage, Path(d) / f"http-{stage}.bpf.o")
                objs[stage] = load(args.hook, Path(d) / f"http-{stage}.bpf.o")
            per = {s: {"request": [], "response": [], "other": []} for s in stages}
            for _ in range(args.rounds):  # the variants alternate: the machine's load hits all alike
                for stage in stages:
                    replay(objs[stage], args.hook, packets, kinds, per[stage])
        finally:
            for obj in objs.values():
                obj.close()
    for stage in stages:
        every = [x for v in per[stage].values() for x in v]
        results[stage] = {"all": statistics.median(every),
                          **{k: statistics.median(v) for k, v in per[stage].items()}}
    print(f"hook {args.hook}; {args.exchanges} exchanges per connection, {args.rounds} rounds; "
          "ns per run (BPF_PROG_TEST_RUN)\n")
    print("| stage | returns | median, every frame | median, request | median, response |")
    print("|---|---|---:|---:|---:|")
    for stage, r in results.items():
        print(f"| {stage} | {STAGES.get(stage, stage)} | {r['all']:.0f} | {r['request']:.0f} | "
              f"{r['response']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
