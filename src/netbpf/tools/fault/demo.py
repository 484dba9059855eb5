"""The demo's fault scene: the seed's two faults on live lab traffic."""
from __future__ import annotations

import subprocess

from ... import netns
from ...lab.demo import Demo
from . import ifinfo


def scene(demo: Demo) -> None:
    lab = demo.lab
    demo.title("netbpf fault: reproduce network bugs by mangling chosen packets")
    demo.say("The seed's first program: received ping replies get a random TTL in 1..TTL, the IP")
    demo.say("checksum fixed incrementally (XDP on the client's interface):")
    fault = demo.start(["netbpf", "fault", "ttl", "-i", "eth0", "--hook", "xdp", "--interval", "60", "icmp"],
                       netns=lab.client)
    demo.wait(2)
    demo.run(["ping", "-c", "5", "-i", "0.2", lab.GATEWAY_IP], netns=lab.client)
    demo.finish(fault)
    if not lab.backends:
        return
    be = lab.backends[0]
    demo.say("The seed's bug: PSH set on 1 in 10 TCP segments the gateway sends to backend 1 (tc egress);")
    demo.say("segments with SYN, FIN, RST or PSH are left alone, checksums stay valid. With TSO the client")
    demo.say("would hand over 64 KiB packets that nearly all carry PSH already, so its veth segments and")
    demo.say("checksums itself here, as a NIC would (ethtool -K eth0 tx off):")
    netns.run_in(f"/run/netns/{lab.client}", lambda: ifinfo.tx_checksum("eth0", False))
    server = lab.popen(be.netns, "iperf3", "-s", "-1", "-B", be.ip, stdout=subprocess.DEVNULL)
    try:
        demo.wait(0.5)
        fault = demo.start(["netbpf", "fault", "tcp-flags", "--set", "PSH", "--ratio", "10", "-i", be.gateway_dev,
                            "--direction", "egress", "--interval", "60", "tcp", "dst", "port", "5201"],
                           netns=lab.gateway)
        demo.wait(2)
        demo.run(["iperf3", "-c", be.ip, "-t", "2", "-i", "0", "--format", "m"], netns=lab.client)
        demo.finish(fault)
    finally:
        server.kill()
        server.wait()
    demo.say("Only the first packet of each connection (the seed's real bug), 20 connections with curl-like")
    demo.say("clients; the fault stops by itself after --limit 20 hits:")
    fault = demo.start(["netbpf", "fault", "tcp-flags", "--set", "PSH", "--first-per-flow", "--limit", "20",
                        "-i", be.gateway_dev, "--direction", "egress", "--interval", "60",
                        "tcp", "dst", "port", "7000"], netns=lab.gateway)
    listener = lab.popen(be.netns, "python3", "-c",
                         "import socket\ns = socket.create_server(('0.0.0.0', 7000), backlog=64)\n"
                         "for _ in range(20):\n    c, _ = s.accept(); c.recv(100); c.close()\n",
                         stdout=subprocess.DEVNULL)
    try:
        demo.wait(2)
        lab.run(lab.client, "python3", "-c",
                "import socket\nfor _ in range(20):\n"
                f"    s = socket.create_connection(('{be.ip}', 7000)); s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
                "    s.recv(10); s.close()\n", check=False)
        demo.finish(fault)
    finally:
        listener.kill()
        listener.wait()
        netns.run_in(f"/run/netns/{lab.client}", lambda: ifinfo.tx_checksum("eth0", True))
