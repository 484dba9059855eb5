"""``netbpf dump -r F EXPR`` to lines takes a path of its own (file_lines.run_plain), before
the parser: it must say and do exactly what the parser's path (offline.read_file) does.

- Every command line run_plain takes, argparse takes too, with the same file, count,
  expression and tcpdump flags (random command lines from dump's own words).
- Run whole, the two paths print the same lines, the same messages, the same exit status,
  on good, damaged and odd files, bad filters, missing files (``-rFILE``, one word, is a
  spelling run_plain leaves to the parser).
- The path imports none of what it exists to avoid (argparse, subprocess, ctypes...).
"""
from __future__ import annotations

import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from netbpf.cli import build_parser
from netbpf.tools.dump import cli as dump_cli
from netbpf.tools.dump import file_lines

from .test_dump_files import DLT_EN10MB, arp, ether, good_file, l3_packets, pcap_file

pytestmark = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
NETBPF = [sys.executable, "-m", "netbpf.cli"]

WORDS = ["-r", "F", "-c", "3", "-c", "0", "-c", "010", "-c", "0x3", "-n", "-nn", "-e", "-v", "-vv",
         "-vvvv", "-X", "-A", "-q", "-t", "-tttt", "-tttttt", "-l", "-S", "-nnvX", "-eS", "-s", "100",
         "-w", "G", "--json", "--", "-", "-x", "-rF", "tcp", "port", "80", "and", "not", "udp", ""]


def what_read_file_runs(args: object, expression: str) -> tuple[object, ...]:
    return (args.read, args.count, expression,  # type: ignore[attr-defined]
            file_lines.tcpdump_flags(args) + (["-l"] if args.td_l else []))  # type: ignore[arg-type, attr-defined]


def argparse_of(words: list[str]) -> tuple[object, ...] | None:
    parser = build_parser(["dump", *words])
    try:
        args = parser.parse_args(["dump", *words])
    except SystemExit:
        return None
    return what_read_file_runs(args, dump_cli.expression_of(args))


def test_each_command_line_it_takes_means_what_it_means_to_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(14)
    taken = 0
    for n in range(3000):
        words = ["-r", "F", *rng.choices(WORDS, k=rng.randint(0, 6))] if n % 2 else \
            rng.choices(WORDS, k=rng.randint(1, 7))
        if n % 3 == 0:  # tcpdump's letters in one word, as argparse splits them (-Stnv)
            words.insert(rng.randint(0, len(words)), "-" + "".join(rng.choices("nevXAqtlS", k=rng.randint(1, 8))))
        plain = file_lines.parse_plain(words)
        if plain is None:
            continue
        taken += 1
        assert argparse_of(words) == what_read_file_runs(plain, " ".join(plain.expression)), words
    capsys.readouterr()  # argparse's usage errors
    assert taken > 300  # the comparison ran on many forms, not on none
    for refused in (["-r", "F", "-c", "0"], ["-r", "F", "-c", "010"], ["-r"], ["-c", "3", "tcp"],
                    ["tcp", "-r", "F"], ["-r", "F", "-s", "100"], ["-r", "F", "-w", "G"], ["-rF"],
                    ["-r", "F", "--", "tcp"], ["-r", "-", "tcp"]):
        assert file_lines.parse_plain(refused) is None, refused


def run(*argv: str) -> tuple[str, str, int]:
    done = subprocess.run([*NETBPF, "dump", *argv], capture_output=True, text=True)
    return done.stdout, done.stderr, done.returncode


def files(tmp_path: Path) -> dict[str, Path]:
    good = good_file(tmp_path).read_bytes()
    first = 24 + 16 + 42  # the file header and the first record (UDP, no payload)
    frames = [ether(p, e) for e, p in l3_packets()] + [ether(arp(1), 0x0806)]
    mixed = pcap_file(tmp_path / "mixed.pcap", DLT_EN10MB, frames).read_bytes()
    made = {
        "mixed": mixed,
        "good": good,
        "cut-mid-record": good[:first + 30],
        "cut-mid-file-header": good[:13],
        "empty": b"",
        "huge-caplen": good[:first] + struct.pack("<IIII", 1, 0, 10_000_000, 60) + good[first + 16:],
        "version-543": good[:4] + struct.pack("<HH", 543, 0) + good[8:],  # libpcap reads it, netbpf not
        "version-2.5": good[:4] + struct.pack("<HH", 2, 5) + good[8:],  # netbpf's reader would, libpcap not
        "link-type-999": good[:20] + struct.pack("<I", 999) + good[24:],
        "big-endian-null": struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 0),
    }
    paths = {name: tmp_path / f"{name}.pcap" for name in made}
    for name, data in made.items():
        paths[name].write_bytes(data)
    paths["missing"] = tmp_path / "missing.pcap"
    paths["directory"] = tmp_path
    return paths


def test_both_paths_print_and_say_the_same(tmp_path: Path) -> None:
    paths = files(tmp_path)
    cases = [("mixed", words) for words in ([], ["-c", "3", "udp"], ["-e", "-vv", "icmp6", "or", "arp"],
                                              ["-nnX", "-c", "2"], ["-tttt", "-q", "tcp"], ["-l", "-S"])]
    cases += [(name, words) for name in paths for words in ([], ["tcp"], ["tcp", "port"])
              if name != "mixed" or words]
    printed = 0
    for name, words in cases:
        path = str(paths[name])
        plain = run("-r", path, *words)
        parsed = run("-r" + path, *words)
        assert plain == parsed, (name, words)
        assert "Traceback" not in plain[1] and len(plain[1].splitlines()) <= 1, (name, words, plain[1])
        printed += bool(plain[0])
    assert printed >= 8  # lines were compared, not only messages


def test_the_path_imports_nothing_it_exists_to_avoid(tmp_path: Path) -> None:
    path = good_file(tmp_path)
    code = ("import sys\n"
            "from netbpf.cli import main\n"
            f"code = main(['dump', '-r', {str(path)!r}, '-c', '2', 'udp'])\n"
            "print(code, ' '.join(m for m in ('argparse', 'subprocess', 'shutil', 'signal', 'ctypes', 'typing',"
            " 'logging', 'netbpf.packet.pcap', 'netbpf.packet.libpcap', 'netbpf.cliutil') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and lines[-1].split() == ["0"], done.stdout  # two tcpdump lines, then exit 0, nothing


def test_a_nul_in_a_word_is_left_to_the_parsers_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No exec passes a NUL (main(argv) in process can): the parser's path says what it says."""
    from netbpf.cli import main

    assert file_lines.run_plain(["-r", str(good_file(tmp_path)), "a\0b"]) is None
    assert main(["dump", "-r", str(good_file(tmp_path)), "a\0b"]) == 2
    assert "bad filter expression" in capsys.readouterr().err
