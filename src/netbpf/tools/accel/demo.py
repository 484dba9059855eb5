"""The demo scene of ``netbpf accel``: local TCP on the gateway, with the data
off the loopback stack.

Acceleration goes on a cgroup of the demo's own, not on the whole machine: the
iperf3 server and client on the gateway join it by writing their pid into its
``cgroup.procs`` (what systemd or a container runtime does for a service).
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from ...bpf import fs
from ...lab import stop_process
from . import accel

PORT = 5201


def _in_cgroup(cgroup: Path, netns: str, *argv: str) -> list[str]:
    # Join the cgroup first: `ip netns exec` mounts a /sys of its own, without cgroup2.
    return ["sh", "-c", f"echo $$ > {cgroup}/cgroup.procs && exec ip netns exec {netns} {' '.join(argv)}"]


def scene(demo: Any) -> None:
    gw = demo.lab.gateway
    cgroup = fs.cgroup2_root() / f"netbpf-demo-accel-{os.getpid()}"
    demo.title("netbpf accel: local TCP connections skip the TCP/IP stack (sockops + sk_msg)")
    if accel.read_status().enabled:
        demo.say("accel is already enabled on this machine: the scene would change it, skipped")
        return
    demo.say("On the gateway, two local processes talk over 127.0.0.1 (iperf3 here; a proxy and")
    demo.say(f"its sidecar in real life). Both run in the cgroup {cgroup.name}.")
    cgroup.mkdir(exist_ok=True)
    server = capture = None
    try:
        demo.run(["netbpf", "accel", "enable", "--cgroup", str(cgroup)])
        capture = demo.start(["tcpdump", "-i", "lo", "-n", "-l", "tcp", "port", str(PORT)], netns=gw)
        server = demo.start(_in_cgroup(cgroup, gw, "iperf3", "-s", "-1", "-p", str(PORT)))
        demo.wait(1.0)
        demo.say("2 seconds at 1 Gbit/s (flat out: `netbpf accel bench`):")
        demo.run(_in_cgroup(cgroup, gw, "iperf3", "-c", "127.0.0.1", "-p", str(PORT), "-t", "2", "-b", "1G",
                            "-f", "g"), max_lines=12)
        demo.wait(0.5)
        demo.say("What tcpdump saw on lo meanwhile: the handshakes and teardowns of iperf3's two")
        demo.say("connections, no data (were the reader to fall 36 MiB behind, the rest would go")
        demo.say("through TCP and show here: `status` counts it as \"reader behind\"):")
        demo.finish(capture, max_lines=24)
        capture = None
        demo.run(["netbpf", "accel", "status"])
        demo.run(["netbpf", "accel", "disable"])
    finally:
        for proc in (capture, server):
            if proc is not None:
                stop_process(proc, timeout=5)
        subprocess.run([*demo.netbpf, "accel", "disable"], capture_output=True, check=False)
        try:
            cgroup.rmdir()
        except OSError:
            pass
