"""The demo scene of ``netbpf drops`` and ``netbpf tcp`` on live lab traffic."""
from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

NFT_RULE = "add rule inet netbpf_demo in udp dport 5555 counter drop"


def _udp(demo: Any, dst: str, port: int, count: int) -> None:
    """`count` datagrams of 100 bytes from one socket (one flow)."""
    demo.run(["python3", "-c", "import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              f'[(s.sendto(b"x" * 100, ("{dst}", {port})), time.sleep(0.002)) for _ in range({count})]'],
             netns=demo.lab.client)


def _settle(demo: Any) -> None:
    """Give the command a moment to attach (it says so on stderr, merged into its output)."""
    demo.wait(2.5)


def scene(demo: Any) -> None:
    lab = demo.lab
    gw = lab.gateway
    demo.title("netbpf drops: why did the kernel drop that packet?")
    demo.say("tcpdump shows what crossed the wire; the kernel's skb:kfree_skb tracepoint says why a")
    demo.say("packet died and where. Watch the gateway while the client knocks on closed ports and")
    demo.say("an nftables rule drops UDP to port 5555:")
    lab.run(gw, "nft", "add table inet netbpf_demo; "
            "add chain inet netbpf_demo in { type filter hook input priority 0; }; " + NFT_RULE)
    try:
        watch = demo.start(["netbpf", "drops", "-p", "tcp", "--port", "81"], netns=gw)
        _settle(demo)
        demo.run(["curl", "-sS", "--max-time", "2", f"http://{lab.GATEWAY_IP}:81/"], netns=lab.client)
        demo.finish(watch)
        watch = demo.start(["netbpf", "drops", "-p", "udp"], netns=gw)
        _settle(demo)
        _udp(demo, lab.GATEWAY_IP, 9, 2)
        _udp(demo, lab.GATEWAY_IP, 5555, 2)
        demo.finish(watch)
        lab.run(gw, "nft", "flush chain inet netbpf_demo in; " + NFT_RULE)  # its counter from 0

        demo.say("A drop storm costs a map update, not an event: --summary counts in the kernel,")
        demo.say("by reason and location (and with --by-flow, by flow), and redraws every second:")
        summary = demo.start(["netbpf", "drops", "--summary", "--by-flow", "-p", "udp", "--duration", "6"],
                             netns=gw)
        _settle(demo)
        _udp(demo, lab.GATEWAY_IP, 5555, 500)
        _udp(demo, lab.GATEWAY_IP, 9, 200)
        out = summary.communicate(timeout=30)[0]
        for line in out.rsplit("--- ", 1)[-1].splitlines()[1:]:  # the last table
            demo.say(line)
        demo.say("nftables' own counter agrees:")
        demo.run(["nft", "list", "chain", "inet", "netbpf_demo", "in"], netns=gw)
    finally:
        lab.run(gw, "nft", "delete table inet netbpf_demo", check=False)

    demo.title("netbpf tcp: retransmits, resets, state changes, connection lifetimes")
    backend = lab.backends[0] if lab.backends else None
    server = None
    if backend is not None:
        server = lab.popen(backend.netns, sys.executable, "-m", "http.server", "8081", "--bind", backend.ip,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    try:
        watch = demo.start(["netbpf", "tcp", "--events", "state,reset,life"], netns=lab.client)
        _settle(demo)
        demo.run(["curl", "-sS", "--max-time", "2", f"http://{lab.GATEWAY_IP}:81/"], netns=lab.client)
        if backend is not None:
            demo.run(["curl", "-sS", "-o", "/dev/null", "-w", "curl: %{size_request} bytes sent, "
                      "%{size_header}+%{size_download} received\\n", f"http://{backend.ip}:8081/"],
                     netns=lab.client)
        demo.finish(watch)
    finally:
        if server is not None:
            server.kill()
            server.wait()
    demo.say("(tx/rx count sequence space as bcc tcplife does: a SYN and a FIN count one byte each)")
