"""Live lines on the 30+ protocol corpus equal tcpdump's, on the same interface.

The corpus (tests/corpus.py) is replayed frame by frame from the client's
eth0 (an AF_PACKET socket) into the gateway's c0, where tcpdump (-Q in, its
own file) and netbpf dump (at XDP, lines) capture at once. netbpf's lines must
equal ``tcpdump -nn -t [-v|-e] -r`` of tcpdump's capture, and of the corpus
file itself (the frames arrive as they were sent).
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netbpf.lab import Lab
from tests import corpus

from .test_dump import start, stop, summary

# Only the corpus: the namespaces' own IPv6 (router solicitations, DAD) comes at any time.
EXPRESSION = [f"ether src {corpus.MAC_SRC} or ether src 00:00:5e:00:01:07"]
SEND = """
import socket, sys, time
from netbpf.packet import pcap
reader, f = pcap.open_reader(sys.argv[1])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for packet in reader:
    s.send(packet.data)
    time.sleep(0.002)
"""


@pytest.mark.parametrize("flags", [[], ["-v"], ["-e"]], ids=lambda f: " ".join(f) or "plain")
def test_live_corpus_lines_equal_tcpdump(pair: Lab, tmp_path: Path, flags: list[str]) -> None:
    pytest.importorskip("scapy")
    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    source, reference = tmp_path / "corpus.pcap", tmp_path / "tcpdump.pcap"
    names = corpus.write_pcap(source)
    tcpdump = pair.popen(pair.gateway, "tcpdump", "-i", "c0", "-Q", "in", "--immediate-mode", "-U",
                         "-w", str(reference), *EXPRESSION, stderr=subprocess.PIPE)
    assert tcpdump.stderr is not None and b"listening on" in tcpdump.stderr.readline()
    proc = start(pair, "-i", "c0", "-t", *flags, *EXPRESSION)
    pair.run(pair.client, sys.executable, "-c", SEND, str(source))
    time.sleep(1)
    out, err = stop(proc)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.communicate(timeout=10)
    ours = out.decode().splitlines()
    theirs = subprocess.run(["tcpdump", "-nn", "-t", *flags, "-r", str(reference)], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    assert ours == theirs, "\n".join([*ours, "--- tcpdump:", *theirs])
    sent = subprocess.run(["tcpdump", "-nn", "-t", *flags, "-r", str(source)], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    assert ours == sent, "\n".join([*ours, "--- the corpus file:", *sent])
    captured, matched, lost = summary(err)
    assert captured == matched == len(names) and lost == 0, err
