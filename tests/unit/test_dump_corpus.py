"""netbpf dump -r prints tcpdump's lines on every packet of a 36-frame, 30+ protocol corpus.

The corpus (tests/corpus.py, built with scapy) is written as pcap (netbpf hands
the file to tcpdump) and as pcapng (netbpf reads it and pipes each packet to
tcpdump); both must print exactly what ``tcpdump -nn -r`` prints of the pcap,
plain, with -v, -e and -vv -e. The live half is tests/kernel/test_dump_corpus.py.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import corpus

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
FLAGS = [[], ["-v"], ["-e"], ["-vv", "-e"]]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    pytest.importorskip("scapy")
    tmp = tmp_path_factory.mktemp("corpus")
    names = corpus.write_pcap(tmp / "corpus.pcap")
    corpus.write_pcapng(tmp / "corpus.pcapng")
    return tmp / "corpus.pcap", tmp / "corpus.pcapng", names


def tcpdump(path: Path, flags: list[str]) -> list[str]:
    return subprocess.run(["tcpdump", "-nn", *flags, "-r", str(path)], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def test_the_corpus_holds_at_least_25_protocols_tcpdump_decodes(files: tuple[Path, Path, list[str]]) -> None:
    pcap_file, _, names = files
    text = "\n".join(tcpdump(pcap_file, ["-t"]))  # VXLAN's inner packet is a line of its own
    assert sorted(names) == sorted(corpus.SAID)
    pos, undecoded = 0, []
    for name in names:  # each packet's text, in the order of the packets
        found = text.find(corpus.SAID[name], pos)
        if found < 0:
            undecoded.append(name)
        else:
            pos = found
    assert not undecoded, (undecoded, text)
    assert len(set(names)) >= 25


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: " ".join(f) or "plain")
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_lines_from_a_file_equal_tcpdump_nn_r(files: tuple[Path, Path, list[str]], kind: str,
                                              flags: list[str]) -> None:
    pcap_file, pcapng_file, _ = files
    ours = subprocess.run([sys.executable, "-m", "netbpf", "dump", *flags, "-r",
                           str(pcap_file if kind == "pcap" else pcapng_file)],
                          capture_output=True, text=True, timeout=120)
    assert ours.returncode == 0 and "Traceback" not in ours.stderr, ours.stderr
    theirs = tcpdump(pcap_file, flags)
    assert ours.stdout.splitlines() == theirs
