"""Bad input on the command line: one line, exit 2, before anything is touched (no root)."""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import random

import pytest

from netbpf import cliutil
from netbpf.cli import build_parser, netns_name
from netbpf.tools.fault.cli import probability
from netbpf.tools.http.cli import backend_list, header_name
from tests.argfuzz import Limits, commands, vector


def parse(argv: list[str], parser: argparse.ArgumentParser | None = None) -> tuple[int | None, str, str]:
    """(exit code or None when parsed, stdout, stderr) of parsing ``argv``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            (parser or build_parser()).parse_args(argv)
        except SystemExit as e:
            return int(e.code or 0), out.getvalue(), err.getvalue()
    return None, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "1e309", "0", "-1", "1e30", "", "x"])
def test_a_duration_must_be_a_finite_positive_number(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cliutil.duration(text)


def test_durations_and_intervals_that_pass() -> None:
    assert cliutil.duration("0.5") == 0.5 and cliutil.duration(str(cliutil.MAX_DURATION)) == cliutil.MAX_DURATION
    assert cliutil.interval("3600") == 3600.0
    with pytest.raises(argparse.ArgumentTypeError, match="at most 3600"):
        cliutil.interval("3601")


def test_counts_fit_a_u64() -> None:
    assert cliutil.positive_int(str(2 ** 64 - 1)) == 2 ** 64 - 1
    assert cliutil.positive_int("0x10") == 16
    for bad in (str(2 ** 64), str(10 ** 30), "0", "-5", "1.5", "", "nan", "9" * 5000):
        with pytest.raises(argparse.ArgumentTypeError):
            cliutil.positive_int(bad)


def test_metrics_port_alone_is_loopback() -> None:
    assert cliutil.host_port(":9464") == ("127.0.0.1", 9464)
    assert cliutil.host_port("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert cliutil.host_port("[::]:9464") == ("::", 9464)
    assert cliutil.host_port("[::1]:9464") == ("::1", 9464)
    for bad in ("9464", ":0", ":65536", ":", "::1", ":９", "a\0b:1", "[::1:80"):
        with pytest.raises(argparse.ArgumentTypeError):
            cliutil.host_port(bad)


def test_netns_name_is_a_name_not_a_path() -> None:
    assert netns_name("nb-gw") == "nb-gw"
    for bad in ("", ".", "..", "../../proc/1/ns/net", "a/b", "a\0"):
        with pytest.raises(argparse.ArgumentTypeError):
            netns_name(bad)


def test_fault_probability() -> None:
    assert probability("1") == 1.0 and probability("0.3") == 0.3
    for bad in ("0", "-0.1", "1.5", "nan", "inf", "1e-12", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            probability(bad)


def test_http_backends_and_tag_header() -> None:
    assert backend_list("10.0.11.2:8080,[FD00::2]:8080") == ["10.0.11.2:8080", "[fd00::2]:8080"]
    for bad in ("foo", "10.0.0.1", "10.0.0.1:0", "10.0.0.1:http", "fd00::2:80", "[10.0.0.1]:80",
                "10.0.0.1:80,", "", "10.0.0.256:80"):
        with pytest.raises(argparse.ArgumentTypeError):
            backend_list(bad)
    assert header_name("X-Test-Id") == "X-Test-Id"
    for bad in ("", "X Test", "X:Id", "é"):
        with pytest.raises(argparse.ArgumentTypeError):
            header_name(bad)


@pytest.mark.parametrize("argv, message", [
    (["dump", "-i", "lo", "--duration", "nan"], "argument --duration: must be a finite number: nan"),
    (["fault", "drop", "-i", "lo", "--every", str(10 ** 30)], "argument --every: at most 18446744073709551615"),
    (["fault", "drop", "-i", "lo", "--limit", str(10 ** 30)], "argument --limit: at most 18446744073709551615"),
    (["fault", "drop", "-i", "lo", "--probability", "0"], "argument --probability: must be above 0"),
    (["fault", "drop", "-i", "lo", "--ratio", str(2 ** 32 + 1)], "argument --ratio: at most 4294967296"),
    (["http", "-i", "lo", "--port", "80", "-B", "99999999"], "argument -B/--buffer-size: at most 4194048"),
    (["http", "-i", "lo", "--port", "80", "--backends", "foo"], "argument --backends: not ADDR:PORT"),
    (["dump", "-i", "lo", "-B", str(2 ** 40)], "argument -B: at most 1048576"),
    (["dump", "-i", "lo", "-w", "x", "-C", "inf"], "argument -C: not a size: 'inf'"),
    (["dump", "-i", "lo", "-w", "x", "-C", "nank"], "argument -C: not a size: 'nank'"),
    (["dump", "-i", "lo", "-w", "x", "-C", "1e300"], "argument -C: at most 18446744073709551615 bytes"),
    (["accel", "enable", "--small-bytes", str(2 ** 32)], "argument --small-bytes: at most 4294967295"),
    (["--netns", "", "status"], "argument --netns: not a network namespace name: ''"),
    (["drops", "--interval", "nan"], "argument --interval: must be a finite number"),
    # an unknown flag is named by the command that did not know it, whose --help is the way on
    (["status", "--bogus"], "netbpf status: error: unrecognized arguments: --bogus (see netbpf status --help)"),
    (["dump", "-i", "lo", "--bogus", "tcp"], "netbpf dump: error: unrecognized arguments: --bogus (see netbpf dump --help)"),
    (["fault", "drop", "-i", "lo", "--bogus"], "(see netbpf fault drop --help)"),
    (["xdp", "chain", "list", "-i", "lo", "--bogus"], "(see netbpf xdp chain list --help)"),
])
def test_usage_errors_are_one_line(argv: list[str], message: str) -> None:
    code, out, err = parse(argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert message in err, err


def test_every_subcommand_is_fuzzed() -> None:
    paths = {" ".join(p) for p, _ in commands(build_parser())}
    assert {"dump", "http", "fault drop", "fault stop", "drops", "tcp", "status", "cleanup",
            "accel status", "xdp chain add"} <= paths


def test_random_command_lines_parse_or_fail_in_one_line() -> None:
    """Thousands of random argument vectors, hostile values included (NUL, lone
    surrogates, huge numbers, NaN, paths to /dev/full): argparse and every option's
    type either accept them or say why in one line with exit 2; nothing else escapes."""
    seed = int(os.environ.get("NETBPF_FUZZ_SEED", "11"))
    rng = random.Random(seed)
    parser = build_parser()
    limits = Limits(interfaces=["lo", "nosuch0"], in_process=True)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(int(os.environ.get("NETBPF_FUZZ_RUNS", "3000"))):
        argv = vector(rng, parser, limits)
        code, _out, err = parse(argv, parser)
        if code is None:
            outcomes["parsed"] += 1
            continue
        outcomes["refused"] += 1
        assert code == 2, (seed, argv, err)
        assert err.count("\n") == 1 and err.startswith("netbpf"), (seed, argv, err)
    # Both kinds of outcome, or the generator is not doing its job.
    assert outcomes["parsed"] > 100 and outcomes["refused"] > 100, outcomes


def test_parsed_numbers_are_in_bounds() -> None:
    """What parses is within the bounds the kernel side can hold."""
    rng = random.Random(7)
    parser = build_parser()
    limits = Limits(interfaces=["lo"], in_process=True)
    for _ in range(2000):
        argv = vector(rng, parser, limits)
        try:
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                args = parser.parse_args(argv)
        except SystemExit:
            continue
        for name, v in vars(args).items():
            if isinstance(v, float):
                assert math.isfinite(v) and v <= cliutil.MAX_DURATION, (argv, name, v)
            if isinstance(v, int) and not isinstance(v, bool):
                assert v <= cliutil.U64_MAX, (argv, name, v)


def test_interface_names_the_kernel_could_give() -> None:
    assert cliutil.interface_name("eth0") == "eth0" and cliutil.interface_name("veth-ab.12") == "veth-ab.12"
    for bad in ("", ".", "..", "a/b", "a:b", "a b", "a\0", "x" * 16, "é" * 8):
        with pytest.raises(argparse.ArgumentTypeError):
            cliutil.interface_name(bad)


def test_in_netns_refuses_what_is_no_namespace() -> None:
    from netbpf.errors import NetbpfError, UsageError
    from netbpf.tracepoints.names import parse_protocol
    from netbpf.tracepoints.scope import netns_inode

    for bad in ("", "..", "a/b", str(1 << 32), str(10 ** 30)):  # not a name, path or inode
        with pytest.raises(UsageError):
            netns_inode(bad)
    with pytest.raises(NetbpfError, match="no such network namespace: ²"):  # a name, not there: bad input
        netns_inode("²")
    with pytest.raises(UsageError):
        parse_protocol("²")


def test_libbpf_errors_are_named() -> None:
    from netbpf.errors import BpfError

    assert str(BpfError("open BPF object x", 4001)) == "open BPF object x: not a valid BPF object (ELF) file"


def test_an_error_quoting_output_is_one_line() -> None:
    from netbpf.cli import one_line

    assert one_line("lab: ip exited 1:\n  RTNETLINK answers: File exists\n\n") == \
        "lab: ip exited 1: RTNETLINK answers: File exists"
    assert one_line("a\nb") == "a; b" and one_line("one") == "one"


@pytest.mark.parametrize("old, new, dest", [
    (["drops", "--hook", "tracepoint"], ["drops", "--attach", "tracepoint"], "hook"),
    (["xdp", "chain", "-i", "lo", "--mode", "skb"], ["xdp", "chain", "-i", "lo", "--xdp-mode", "skb"], "mode"),
    (["accel", "bench", "--seconds", "3"], ["accel", "bench", "--duration", "3"], "seconds"),
])
def test_a_renamed_flag_keeps_its_old_spelling(old: list[str], new: list[str], dest: str) -> None:
    """One meaning per flag name (README's shared flags); a user's script with the old name still runs,
    and --help shows only the new one."""
    parser = build_parser()
    assert getattr(parser.parse_args(old), dest) == getattr(parser.parse_args(new), dest)
    assert getattr(parser.parse_args(new[:new.index(new[-2])]), dest) != getattr(parser.parse_args(new), dest)
    code, out, _err = parse([*new[:new.index(new[-2])], "--help"], parser)
    assert code == 0 and new[-2] in out and f"{old[-2]} " not in out.replace("--xdp-mode", "")


def test_only_the_tool_named_is_imported() -> None:
    """`netbpf dump -r F` loads no other tool (the registry lists them by name and line)."""
    import subprocess
    import sys

    code = ("import sys; from netbpf.cli import build_parser; build_parser(['dump', '-r', 'x.pcap']); "
            "print(sorted({m.split('.')[2] for m in sys.modules if m.startswith('netbpf.tools.')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['dump']"
