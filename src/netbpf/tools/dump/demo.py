"""The demo scene of ``netbpf dump``: capture what an XDP program drops, beside it.

The gateway's c0 gets an XDP program that netbpf did not write (a stand-in
for a DDoS filter: it drops ICMP). tcpdump on c0 cannot see the pings it
drops; ``netbpf dump`` does, while the filter keeps dropping them, and puts
it back as it was when it exits.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any

from ... import netns
from ...bpf.attach import xdp
from ...bpf.program import Program

# if data + 24 > data_end: pass; if ethertype != IPv4 or protocol != ICMP: pass; drop
DROP_ICMP = bytes.fromhex(
    "61120000000000006113040000000000bf2400000000000007040000180000002d34060000000000"
    "69250c0000000000550504000800000071251700000000005505020001000000b700000001000000"
    "9500000000000000b7000000020000009500000000000000")


def _attach_ddos_filter(gateway: str) -> None:
    def attach() -> None:
        with Program.load(6, "ddos_filter", DROP_ICMP, expected_attach_type=37) as prog:
            # netlink holds it once our fd is closed, as if another tool had attached it
            xdp.attach_xdp_netlink(prog, xdp.XdpOptions("c0", "drv"), None)

    netns.run_in(f"/run/netns/{gateway}", attach)


def _beside_pings(demo: Any, argv: list[str], settle: float, count: int, address: str,
                  max_lines: int) -> None:
    """Run ``argv`` on the gateway while the client pings ``address``, then show what it printed."""
    lab = demo.lab
    proc = demo.start(argv, netns=lab.gateway)
    try:
        demo.wait(settle)
        demo.run(["ping", "-c", str(count), "-i", "0.3", "-W", "1", address], netns=lab.client,
                 max_lines=max_lines)
        demo.finish(proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def scene(demo: Any) -> None:
    lab = demo.lab
    gw = lab.gateway
    demo.title("netbpf dump: capture at XDP, in front of the XDP program already there")
    demo.say("The gateway's c0 runs an XDP program netbpf did not write (a DDoS filter, here")
    demo.say("dropping ICMP). Pings die before the stack, so tcpdump never sees them:")
    _attach_ddos_filter(gw)
    pcap = os.path.join(tempfile.mkdtemp(prefix="netbpf-demo-"), "c0.pcapng")
    try:
        demo.run(["ip", "link", "show", "dev", "c0"], netns=gw)
        _beside_pings(demo, ["tcpdump", "-i", "c0", "-nn", "icmp"], 1.0, 3, lab.GATEWAY_IP, 8)
        demo.say("netbpf dump puts its capture program in front and tail-calls the filter; the")
        demo.say("tcpdump expression runs in the kernel:")
        _beside_pings(demo, ["netbpf", "dump", "-i", "c0", "icmp"], 2.5, 3, lab.GATEWAY_IP, 8)
        demo.say("Same program id, same mode (drv) as before:")
        demo.run(["ip", "link", "show", "dev", "c0"], netns=gw)
        demo.say("pcapng for Wireshark, and what the gateway sends (tc egress, which XDP cannot see):")
        _beside_pings(demo, ["netbpf", "dump", "-i", "c0", "--hook", "tc-egress", "-w", pcap, "-c", "4"],
                      2.5, 2, lab.GATEWAY_IP6, 3)
        demo.run(["tshark", "-r", pcap], max_lines=6)
    finally:
        demo.lab.run(gw, "ip", "link", "set", "dev", "c0", "xdp", "off", check=False)
        try:
            os.unlink(pcap)
            os.rmdir(os.path.dirname(pcap))
        except OSError:
            pass
