"""netbpf dump's live lines are tcpdump's, to the character; direction filters at tc.

tcpdump captures the same arriving packets (AF_PACKET, -Q in) into a file;
``tcpdump -nn -t [-v|-e] -r`` of that file is the reference, and netbpf's
live lines with the same flags must equal it line for line (time stamps are
left out with -t: the two capture points stamp the same packet differently).
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netbpf.lab import Lab

from .test_dump import TCP_SERVER, ping, start, stop, summary


def traffic(pair: Lab) -> None:
    """ARP, ICMP, ICMPv6 with neighbour discovery, TCP with options (handshake, data, FIN), UDP."""
    server = pair.popen(pair.gateway, sys.executable, "-c", TCP_SERVER, pair.GATEWAY_IP, stdout=subprocess.PIPE)
    assert server.stdout is not None and b"ready" in server.stdout.readline()
    pair.run(pair.client, "ip", "neigh", "flush", "dev", "eth0")
    ping(pair, 2)
    ping(pair, 2, pair.GATEWAY_IP6)
    for _ in range(2):
        pair.run(pair.client, "curl", "-s", "-o", "/dev/null", f"http://{pair.GATEWAY_IP}:8000/", check=False)
    pair.run(pair.client, sys.executable, "-c", "import socket; s=socket.socket(socket.AF_INET, "
             f"socket.SOCK_DGRAM); [s.sendto(b'u' * n, ('{pair.GATEWAY_IP}', 53)) for n in (12, 50)]")
    server.wait(timeout=10)


@pytest.mark.parametrize("flags", [[], ["-v"], ["-e"], ["-vv", "-e"]])
def test_live_lines_equal_tcpdump_r_of_the_same_packets(pair: Lab, tmp_path: Path, flags: list[str]) -> None:
    pair.run(pair.gateway, "ethtool", "-K", "c0", "gro", "off", check=False)
    reference = tmp_path / "in.pcap"
    expression = ["arp", "or", "host", pair.CLIENT_IP, "or", "host", pair.CLIENT_IP6]
    tcpdump = pair.popen(pair.gateway, "tcpdump", "-i", "c0", "-Q", "in", "--immediate-mode", "-U",
                         "-w", str(reference), *expression, stderr=subprocess.PIPE)
    assert tcpdump.stderr is not None and b"listening on" in tcpdump.stderr.readline()
    proc = start(pair, "-i", "c0", "-t", *flags, *expression)
    traffic(pair)
    time.sleep(1)
    out, err = stop(proc)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.communicate(timeout=10)
    theirs = subprocess.run(["tcpdump", "-nn", "-t", *flags, "-r", str(reference)], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    ours = out.decode().splitlines()
    assert ours == theirs, "\n".join([*ours, "--- tcpdump:", *theirs])
    text = "\n".join(ours)
    for what in ("who-has", "ICMP echo request", "ICMP6, echo request", "Flags [S]", "Flags [P.]", ".53: "):
        assert what in text, what
    captured, matched, lost = summary(err)
    assert lost == 0 and captured == matched >= 16


def test_outbound_at_tc_egress_and_q_out(pair: Lab) -> None:
    """-Q out captures at tc-egress; 'outbound' matches there, 'inbound' never does."""
    for args, want_some in ((["-Q", "out", "icmp"], True), (["--hook", "tc-egress", "outbound and icmp"], True),
                            (["--hook", "tc-egress", "inbound"], False),
                            (["--hook", "tc-ingress", "inbound and icmp"], True)):
        proc = start(pair, "-i", "c0", *args)
        ping(pair, 3)
        time.sleep(0.5)
        _, err = stop(proc)
        captured, matched, lost = summary(err)
        assert (captured >= 3) == want_some and captured == matched and lost == 0, (args, err)


def test_inbound_is_refused_at_xdp_in_one_line(pair: Lab) -> None:
    run = subprocess.run([sys.executable, "-m", "netbpf", "--netns", pair.gateway, "dump", "-i", "c0", "inbound"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "direction is not known" in run.stderr and "Traceback" not in run.stderr
