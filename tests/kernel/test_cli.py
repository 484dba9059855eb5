"""Every error reaches the user as one line, with the exit code scripts expect."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import skip_unless_nobody_can_run_netbpf


def run_as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbpf", *args], capture_output=True, text=True,
                          user=65534, group=65534, extra_groups=[], timeout=60, cwd="/")


# One command line per tool, each valid but for the interface (or the user).
TOOL_COMMANDS = [
    ["dump", "-i", "nosuch0", "icmp"],
    ["http", "-i", "nosuch0", "--port", "80"],
    ["fault", "drop", "-i", "nosuch0", "udp"],
    ["drops", "-i", "nosuch0"],
    ["tcp", "--duration", "1"],
    ["xdp", "chain", "-i", "nosuch0", "list"],
    ["accel", "status"],
]


@pytest.mark.parametrize("args", [["status"], ["cleanup"], ["lab", "up", "--prefix", "nobody"],
                                  ["--netns", "nosuch", "status"], *TOOL_COMMANDS],
                         ids=lambda a: " ".join(a))
def test_non_root_gets_one_line_and_exit_1(args: list[str]) -> None:
    skip_unless_nobody_can_run_netbpf()
    result = run_as_nobody(*args)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "permission denied (run as root)" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_namespace_is_bad_input() -> None:
    """A name that is not there is bad input (exit 1, as tcpdump -i nosuch), not a usage error."""
    result = subprocess.run([sys.executable, "-m", "netbpf", "--netns", "nosuch-ns", "status"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr == "netbpf: no such network namespace: nosuch-ns (ip netns list)\n"


def test_bad_usage_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "netbpf", "no-such-command"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice" in result.stderr


@pytest.mark.parametrize("args", [c for c in TOOL_COMMANDS if "nosuch0" in c], ids=lambda a: a[0])
def test_missing_interface_is_one_line(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "netbpf", *args], capture_output=True, text=True,
                            timeout=60)
    assert (result.returncode, result.stderr) == (1, "netbpf: no such interface: nosuch0\n")
    assert result.stdout == ""


@pytest.mark.parametrize("args", [["dump", "-i", "lo", "tcp port"], ["fault", "drop", "-i", "lo", "tcp port"]],
                         ids=["dump", "fault"])
def test_bad_filter_is_libpcaps_message_and_exit_2(args: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "netbpf", *args], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("netbpf: bad filter expression 'tcp port': can't parse filter expression: "
                             "syntax error\n")
