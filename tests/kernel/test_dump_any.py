"""netbpf dump -i any against tcpdump -i any on the same bounded traffic.

Both capture at once in the gateway's namespace (loopback and c0). The
files must hold the same packets, Linux cooked v2 headers included
(interface index, packet type, ARPHRD type, protocol), tshark must read
netbpf's, and the lines (interface name, In/Out) must equal tcpdump's.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from netbpf.lab import Lab
from netbpf.packet import pcap

from .test_dump import ping, start, stop, summary

# Only what traffic() sends: a fresh namespace's own ICMPv6 (router solicitations, DAD)
# comes at any time, before one capture started or after the other stopped.
EXPRESSION = ["icmp or udp port 9 or (icmp6 and (ip6[40] = 128 or ip6[40] = 129))"]


def tcpdump_any(lab: Lab, *args: str) -> subprocess.Popen[bytes]:
    proc = lab.popen(lab.gateway, "tcpdump", "-i", "any", "--immediate-mode", "-U", *args, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    first = proc.stderr.readline()  # "data link type LINUX_SLL2", then "listening on any"
    assert b"LINUX_SLL2" in first and b"listening on any" in proc.stderr.readline(), first
    return proc


def traffic(lab: Lab) -> None:
    """Arriving and leaving on c0, both copies on loopback, ICMPv6 and UDP."""
    ping(lab, 3)
    ping(lab, 2, lab.GATEWAY_IP6)
    lab.run(lab.gateway, "ping", "-c", "2", "-i", "0.2", "127.0.0.1")
    lab.run(lab.gateway, sys.executable, "-c", "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            f"[s.sendto(b'x' * n, ('{lab.CLIENT_IP}', 9)) for n in (10, 300)]")
    time.sleep(0.5)


def records(path: Path) -> tuple[int, Counter[tuple[bytes, int]]]:
    """(link type, the packets as (bytes, length on the wire)), time stamps left out:
    two sockets stamp the same packet a few microseconds apart."""
    reader, f = pcap.open_reader(str(path))
    with f:
        packets = Counter((p.data, p.orig_len) for p in reader)
    return reader.linktype, packets


def end(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)


@pytest.mark.parametrize("direction", [[], ["-Q", "in"], ["-Q", "out"]])
def test_any_writes_what_tcpdump_any_writes(pair: Lab, tmp_path: Path, direction: list[str]) -> None:
    theirs, ours = tmp_path / "theirs.pcap", tmp_path / "ours.pcap"
    tcpdump = tcpdump_any(pair, *direction, "-w", str(theirs), *EXPRESSION)
    proc = start(pair, "-i", "any", *direction, "-U", "-w", str(ours), *EXPRESSION)
    traffic(pair)
    _, err = stop(proc)
    end(tcpdump)
    their_type, their_packets = records(theirs)
    our_type, our_packets = records(ours)
    assert their_type == our_type == 276  # LINKTYPE_LINUX_SLL2
    assert our_packets == their_packets
    assert sum(our_packets.values()) >= (7 if direction else 14)
    captured, matched, lost = summary(err)
    assert captured == matched == sum(our_packets.values()) and lost == 0, err
    if shutil.which("tshark"):
        run = subprocess.run(["tshark", "-r", str(ours), "-T", "fields", "-e", "sll.ifindex", "-e", "sll.pkttype"],
                             capture_output=True, text=True)
        assert run.returncode == 0 and len(run.stdout.splitlines()) == captured, run.stderr
        kinds = {line.split("\t")[1] for line in run.stdout.splitlines()}
        want = {"0"} if direction == ["-Q", "in"] else {"4"} if direction == ["-Q", "out"] else {"0", "4"}
        assert kinds == want, kinds  # 0: to us (host), 4: outgoing


def test_any_lines_equal_tcpdump_any(pair: Lab, tmp_path: Path) -> None:
    """The lines of -i any: interface name and direction, as tcpdump -i any prints them."""
    theirs = tmp_path / "theirs.pcap"
    tcpdump = tcpdump_any(pair, "-w", str(theirs), *EXPRESSION)
    proc = start(pair, "-i", "any", "-t", "-v", *EXPRESSION)
    traffic(pair)
    out, err = stop(proc)
    end(tcpdump)
    reference = pair.run(pair.gateway, "tcpdump", "-nn", "-t", "-v", "-r", str(theirs)).stdout.splitlines()
    ours = out.decode().splitlines()
    assert ours == reference, "\n".join([*ours, "--- tcpdump:", *reference])
    text = "\n".join(ours)
    assert "c0    In  IP" in text and "c0    Out IP" in text and "lo    In  IP" in text, text
    captured, matched, lost = summary(err)
    assert captured == matched and lost == 0
    assert "Warning" not in err and "Traceback" not in err


def test_any_refuses_what_goes_with_one_interface_in_one_line(pair: Lab, tmp_path: Path) -> None:
    for args in (["--hook", "tc-ingress"], ["--json"], ["-w", str(tmp_path / "x.pcapng")], ["--process"],
                 ["-w", str(tmp_path / "x.pcap"), "-C", "1"]):
        run = subprocess.run([sys.executable, "-m", "netbpf", "--netns", pair.gateway, "dump", "-i", "any", *args],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, (args, run.stderr)
        assert "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_any_captures_on_an_interface_that_appears_during_the_capture(pair: Lab) -> None:
    """A veth pair made after the capture began: its packets are in it, named by tcpdump."""
    proc = start(pair, "-i", "any", "-t", "icmp and net 10.98.0.0/24")
    pair.run(pair.gateway, "ip", "link", "add", "n0", "type", "veth", "peer", "name", "n1", "netns", pair.client)
    pair.run(pair.gateway, "ip", "addr", "add", "10.98.0.1/24", "dev", "n0")
    pair.run(pair.client, "ip", "addr", "add", "10.98.0.2/24", "dev", "n1")
    pair.run(pair.gateway, "ip", "link", "set", "n0", "up")
    pair.run(pair.client, "ip", "link", "set", "n1", "up")
    ping(pair, 3, "10.98.0.1")
    time.sleep(0.5)
    out, err = stop(proc)
    lines = out.decode().splitlines()
    requests = [line for line in lines if line.startswith("n0    In  IP 10.98.0.2 > 10.98.0.1: ICMP echo request")]
    replies = [line for line in lines if line.startswith("n0    Out IP 10.98.0.1 > 10.98.0.2: ICMP echo reply")]
    assert len(requests) == len(replies) == 3, lines
    captured, matched, lost = summary(err)
    assert captured == matched == len(lines) and lost == 0, err


def test_any_c_to_standard_output_reads_as_tcpdump_reads_it(pair: Lab) -> None:
    """-c 4 -w -: four records on standard output, the capture ends by itself."""
    proc = start(pair, "-i", "any", "-c", "4", "-w", "-", "icmp")
    ping(pair, 3)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    read = subprocess.run(["tcpdump", "-nn", "-r", "-"], input=out, capture_output=True)
    assert read.returncode == 0 and b"LINUX_SLL2" in read.stderr, read.stderr
    assert len(read.stdout.splitlines()) == 4
    captured, matched, lost = summary(err.decode())
    assert captured == 4 and matched >= 4 and lost == 0, err
