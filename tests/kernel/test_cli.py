"""Every error reaches the user as one line, with the exit code scripts expect."""
from __future__ import annotations

import subprocess
import sys

import pytest


def run_as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netbpf", *args], capture_output=True, text=True,
                          user=65534, group=65534, extra_groups=[], timeout=60, cwd="/")


@pytest.mark.parametrize("args", [["status"], ["cleanup"], ["lab", "up", "--prefix", "nobody"],
                                  ["--netns", "nosuch", "status"]])
def test_non_root_gets_one_line_and_exit_1(args: list[str]) -> None:
    result = run_as_nobody(*args)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "permission denied (run as root)" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_namespace_is_a_usage_error() -> None:
    result = subprocess.run([sys.executable, "-m", "netbpf", "--netns", "nosuch-ns", "status"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "netbpf: no such network namespace: nosuch-ns (ip netns list)\n"


def test_bad_usage_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "netbpf", "no-such-command"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice" in result.stderr
