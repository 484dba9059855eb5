"""Bad input, as a user types it: one line on stderr, exit 1 or 2, nothing attached.

Every command runs in the gateway namespace of a pair of the test's own
(``--netns``), on its interfaces only.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netbpf.cli import build_parser
from netbpf.lab import Lab, stop_process
from tests.argfuzz import Limits, vector

from .conftest import free_port, netbpf, tc_filters, xdp_prog_on

BIG = str(10 ** 30)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("netbpf"), result.stderr
    return result.stderr.strip()


def nothing_attached(lab: Lab) -> None:
    ns = lab.gateway
    assert xdp_prog_on(lab, ns, "c0") == 0
    assert tc_filters(lab, ns, "c0") == [] and tc_filters(lab, ns, "lo") == []
    net = json.loads(lab.run(ns, "bpftool", "-j", "net", "show").stdout or "[{}]")
    assert not any(net[0].get(kind) for kind in ("xdp", "tc", "tcx")), net
    root = Path("/sys/fs/bpf/netbpf")
    mine = [p for p in root.rglob("*") if ns in p.name] if root.exists() else []
    assert mine == []


@pytest.mark.parametrize("argv, code, message", [
    (["dump", "-i", "c0", "-w", "/nonexistent-dir/x.pcap"], 1,
     "netbpf: -w /nonexistent-dir/x.pcap: No such file or directory"),
    (["dump", "-i", "c0", "-w", "/tmp"], 1, "netbpf: -w /tmp: Is a directory"),
    (["dump", "-i", "c0", "-w", "/dev/full"], 1, "netbpf: -w /dev/full: No space left on device"),
    (["dump", "-i", "c0", "-w", "/proc/version"], 1, "netbpf: -w /proc/version: "),
    (["dump", "-i", "c0", "-w", ""], 2, "netbpf: -w needs a file name (- for stdout)"),
    (["fault", "drop", "-i", "c0", "--every", BIG], 2,
     f"netbpf fault drop: error: argument --every: at most 18446744073709551615 (a 64-bit counter): {BIG}"),
    (["fault", "drop", "-i", "c0", "--limit", BIG], 2,
     "netbpf fault drop: error: argument --limit: at most 18446744073709551615"),
    (["dump", "-i", "c0", "--duration", "nan"], 2, "argument --duration: must be a finite number: nan"),
    (["dump", "-i", "c0", "--duration", "inf"], 2, "argument --duration: must be a finite number: inf"),
    (["dump", "-i", "c0", "--duration", "-1"], 2, "argument --duration: must be positive: -1"),
    (["dump", "-i", "c0", "--duration", "1e30"], 2, "argument --duration: at most 31536000 (a year)"),
    (["http", "-i", "c0", "--port", "80", "-B", "99999999"], 2,
     "argument -B/--buffer-size: at most 4194048 (a packet ring's 4 GiB): 99999999"),
    (["http", "-i", "c0", "--port", "80", "--backends", "foo"], 2, "argument --backends: not ADDR:PORT"),
    (["http", "-i", "c0", "--port", "80", "--backends", "10.0.0.2:81"], 2,
     "netbpf: --backends 10.0.0.2:81: not on --port 80"),
    (["fault", "drop", "-i", "c0", "--probability", "0"], 2, "argument --probability: must be above 0"),
    (["fault", "drop", "-i", "c0", "--probability", "1.5"], 2, "argument --probability: must be above 0"),
    (["fault", "drop", "-i", "c0", "--probability", "nan"], 2, "argument --probability: must be above 0"),
    (["fault", "drop", "-i", "c0", "--pin", "--metrics", ":9464"], 2, "a --pin fault outlives it"),
    (["fault", "stop", "-i", "nosuch0"], 1, "netbpf: no such interface: nosuch0"),
    (["tcp", "--interval", "inf"], 2, "argument --interval: must be a finite number: inf"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_input_is_one_line(pair: Lab, argv: list[str], code: int, message: str) -> None:
    result = netbpf(*argv, "--duration", "2", netns=pair.gateway) if "stop" not in argv and "--pin" not in argv \
        else netbpf(*argv, netns=pair.gateway)
    assert result.returncode == code, result.stderr
    assert message in one_line(result)
    assert result.stdout == ""
    nothing_attached(pair)


LONG = "a" * 300  # longer than a file name may be (NAME_MAX 255): ENAMETOOLONG from the first stat


@pytest.mark.parametrize("argv, message", [
    (["dump", "-i", "c0", "-w", LONG, "--duration", "2"], f"netbpf: -w {LONG}: File name too long"),
    (["dump", "-i", "c0", "-w", f"/tmp/{LONG}/x", "--duration", "2"], "File name too long"),
    (["dump", "-i", "c0", "--cgroup", f"/{LONG}", "--duration", "2"], "netbpf: "),
    (["accel", "enable", "--cgroup", f"/{LONG}"], f"netbpf: cgroup /{LONG}: File name too long"),
    (["xdp", "chain", "-i", "c0", "add", f"{LONG}.o"], f"netbpf: object file {LONG}.o: File name too long"),
], ids=["-w", "-w dir", "dump --cgroup", "accel --cgroup", "xdp chain add"])
def test_a_name_too_long_is_one_line(pair: Lab, argv: list[str], message: str) -> None:
    """Python's Path.is_dir()/is_file() raise ENAMETOOLONG rather than answer False:
    each place a user's path is first looked at says it in one line (a fuzzed -w found it)."""
    result = netbpf(*argv, netns=pair.gateway)
    assert result.returncode == 1, result.stderr
    assert message in one_line(result)
    nothing_attached(pair)


def test_a_namespace_name_too_long_is_one_line() -> None:
    result = netbpf("--netns", LONG, "status")
    assert result.returncode == 1
    assert f"netbpf: network namespace {LONG}: File name too long" in one_line(result)


def test_empty_netns_name_is_refused() -> None:
    result = netbpf("--netns", "", "status")
    assert result.returncode == 2
    assert "argument --netns: not a network namespace name: ''" in one_line(result)


def test_a_read_only_file_system_is_one_line(pair: Lab, tmp_path: Path) -> None:
    """A tmpfs mounted read-only in a private mount namespace."""
    script = (f"mount --make-rprivate / && mount -t tmpfs -o ro,size=64k none {tmp_path} && "
              f"exec {sys.executable} -m netbpf --netns {pair.gateway} dump -i c0 -w {tmp_path}/x.pcap "
              "--duration 2")
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert one_line(result) == f"netbpf: -w {tmp_path}/x.pcap: Read-only file system"
    nothing_attached(pair)


def _flood(lab: Lab, seconds: int = 4) -> subprocess.Popen[bytes]:
    return lab.popen(lab.client, "ping", "-q", "-f", "-s", "1000", "-w", str(seconds), Lab.GATEWAY_IP,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _started(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    return proc.stderr.readline()  # the capture banner, once attached


def test_a_full_file_system_stops_the_capture_in_one_line(pair: Lab, tmp_path: Path) -> None:
    """ENOSPC in the middle of a capture (a 64 KiB tmpfs): the capture is detached, the
    error says the file is cut short, and no summary pretends it holds the rest."""
    script = (f"mount --make-rprivate / && mount -t tmpfs -o size=64k none {tmp_path} && "
              f"exec {sys.executable} -m netbpf --netns {pair.gateway} dump -i c0 -w {tmp_path}/x.pcap "
              "--duration 30")
    proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "capturing on c0" in _started(proc)
        flood = _flood(pair)
        _, err = proc.communicate(timeout=60)
        flood.wait(timeout=30)
    finally:
        stop_process(proc)
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert err.splitlines() == [f"netbpf: -w {tmp_path}/x.pcap: No space left on device "
                                "(capture stopped, the file is cut short)"]
    nothing_attached(pair)


@pytest.mark.parametrize("output", ["text", "json", "pcap"])
def test_stdout_on_a_full_device_is_one_line(pair: Lab, output: str) -> None:
    extra = {"text": [], "json": ["--json"], "pcap": ["-w", "-"]}[output]
    with open("/dev/full", "w") as full:
        proc = subprocess.Popen([sys.executable, "-m", "netbpf", "--netns", pair.gateway, "dump", "-i", "c0",
                                 *extra, "--duration", "20", "icmp"],
                                stdout=full, stderr=subprocess.PIPE, text=True)
        try:
            if output != "pcap":  # the pcap header fails before anything is attached
                assert "capturing on c0" in _started(proc)
                _flood(pair).wait(timeout=30)
            _, err = proc.communicate(timeout=60)
        finally:
            stop_process(proc)
    assert proc.returncode == 1
    lines = err.splitlines()
    assert "Traceback" not in err and "Exception ignored" not in err
    assert lines[-1] == ("netbpf: -w -: No space left on device" if output == "pcap"
                         else "netbpf: standard output: No space left on device")
    assert not any("packets captured" in line for line in lines)
    nothing_attached(pair)


@pytest.mark.parametrize("argv", [["status"], ["dump", "--help"], ["--version"]], ids=" ".join)
def test_short_output_on_a_full_device_is_one_line(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "netbpf", *argv], stdout=full, stderr=subprocess.PIPE,
                                text=True, timeout=60)
    assert result.returncode == 1
    assert one_line(result) == "netbpf: standard output: No space left on device"


# -- --metrics -------------------------------------------------------------------------------

METRICS_TOOLS = [
    ["dump", "-i", "c0"],
    ["fault", "drop", "-i", "c0"],
    ["drops"],
    ["tcp"],
    ["http", "-i", "c0", "--port", "80"],
    ["accel", "status"],
]


@pytest.mark.parametrize("argv", METRICS_TOOLS, ids=lambda a: a[0])
def test_a_busy_metrics_port_is_found_before_attaching(pair: Lab, argv: list[str]) -> None:
    port = free_port()
    holder = pair.popen(pair.gateway, sys.executable, "-c",
                        "import socket, sys, time\n"
                        f"s = socket.create_server(('127.0.0.1', {port}))\n"
                        "print('ready', flush=True)\ntime.sleep(60)\n",
                        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        result = netbpf(*argv, "--metrics", f":{port}", "--duration", "5", netns=pair.gateway)
    finally:
        stop_process(holder)
    assert result.returncode == 2
    assert one_line(result) == f"netbpf: --metrics 127.0.0.1:{port}: address already in use"
    assert result.stdout == ""
    nothing_attached(pair)


def test_an_unassignable_metrics_address_is_found_before_attaching(pair: Lab) -> None:
    result = netbpf("dump", "-i", "c0", "--metrics", "10.255.255.1:9464", "--duration", "5", netns=pair.gateway)
    assert result.returncode == 2
    assert one_line(result) == "netbpf: --metrics 10.255.255.1:9464: Cannot assign requested address"
    nothing_attached(pair)


def test_metrics_port_alone_listens_on_loopback_and_says_so(pair: Lab) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "netbpf", "--netns", pair.gateway, "dump", "-i", "c0",
                             "--metrics", f":{port}", "--duration", "30"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "capturing on c0" in proc.stderr.readline()
        assert proc.stderr.readline() == f"netbpf: serving metrics on http://127.0.0.1:{port}/metrics\n"
        listening = pair.run(pair.gateway, "ss", "-Hltn", f"sport = :{port}").stdout.split()
        assert f"127.0.0.1:{port}" in listening, listening
        local = pair.run(pair.gateway, "curl", "-sS", "--max-time", "10",
                         f"http://127.0.0.1:{port}/metrics").stdout
        assert "netbpf_dump_seen_packets" in local
        remote = pair.run(pair.client, "curl", "-sS", "--max-time", "10",
                          f"http://{Lab.GATEWAY_IP}:{port}/metrics", check=False)
        assert remote.returncode == 7, remote  # curl: failed to connect (refused)
    finally:
        stop_process(proc, timeout=30)
    nothing_attached(pair)


# -- the property test ---------------------------------------------------------------------

FUZZ_SECONDS = float(os.environ.get("NETBPF_FUZZ_SECONDS", "60"))


@pytest.mark.timeout(FUZZ_SECONDS + 240)  # the last run, the pair's setup and teardown
def test_random_command_lines_never_trace_hang_or_leave_anything(pair: Lab, tmp_path: Path) -> None:
    """Random argument vectors at every subcommand (from the argparse tree) for a bounded
    time, each run in the pair's gateway namespace on its interfaces: no traceback, exit
    0, 1 or 2, an error is one line, no hang, nothing left attached there."""
    budget = FUZZ_SECONDS
    seed = int(os.environ.get("NETBPF_FUZZ_SEED", str(int(time.time()))))
    rng = random.Random(seed)
    parser = build_parser()
    limits = Limits(netns=pair.gateway, interfaces=["c0", "lo"], scratch=str(tmp_path))
    end = time.monotonic() + budget
    runs: dict[int, int] = {}
    try:
        _fuzz(rng, seed, parser, limits, pair, end, runs)
    finally:  # whatever a failed run left in the test's namespace goes with it
        netbpf("cleanup", "--this-netns", netns=pair.gateway)
        root = Path("/sys/fs/bpf/netbpf")
        for left in (sorted(root.rglob(f"*{pair.gateway}*"), reverse=True) if root.exists() else []):
            subprocess.run(["rm", "-rf", str(left)], check=False)
    print(f"seed {seed}: exit codes {runs}")
    assert sum(runs.values()) >= 5, runs


def _fuzz(rng: random.Random, seed: int, parser: argparse.ArgumentParser, limits: Limits, pair: Lab,
          end: float, runs: dict[int, int]) -> None:
    while time.monotonic() < end:
        argv = vector(rng, parser, limits)
        try:
            # stdout may be a pcap (-w -): not read. One run in five writes it to /dev/full.
            full = rng.random() < 0.2
            with open("/dev/full" if full else os.devnull, "w") as out:
                result = subprocess.run([sys.executable, "-m", "netbpf", *argv], stdout=out,
                                        stderr=subprocess.PIPE, text=True, errors="replace",
                                        timeout=60, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"hang (seed {seed}): netbpf {' '.join(map(repr, argv))}")
        where = (f"seed {seed}: netbpf {' '.join(map(repr, argv))}{' > /dev/full' if full else ''}\n"
                 f"{result.stderr[-3000:]}")
        assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, where
        assert result.returncode in (0, 1, 2), where
        if result.returncode and full:  # the banner may come before stdout fails: the error is the last line
            assert result.stderr.splitlines()[-1].startswith("netbpf"), where
        elif result.returncode:
            assert result.stderr.count("\n") == 1 and result.stderr.startswith("netbpf"), where
        try:
            nothing_attached(pair)
        except AssertionError as e:
            raise AssertionError(f"left attached after {where}") from e
        runs[result.returncode] = runs.get(result.returncode, 0) + 1
