"""Running ``netbpf drops`` / ``netbpf tcp`` as a user would, and making traffic in the lab."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import Any

from netbpf.lab import Lab

from .conftest import bpftool_json


class Tool:
    """``netbpf ARGS`` in the background: started, waited for, stopped with SIGTERM."""

    def __init__(self, *args: str, netns: str | None = None, ready: str = "watching") -> None:
        argv = [sys.executable, "-m", "netbpf"] + (["--netns", netns] if netns else []) + list(args)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        self.stderr_head = []
        self.stdout_head = b""  # what wait_lines() read before stop()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                out, err = self.proc.communicate(timeout=10)
                raise AssertionError(f"netbpf {' '.join(args)} exited {self.proc.returncode}: "
                                     f"{''.join(self.stderr_head)}{err}{out}")
            self.stderr_head.append(line)
            if ready in line:
                return
        raise AssertionError(f"netbpf {' '.join(args)} never became ready")

    def stop(self, sig: int = signal.SIGTERM, settle: float = 0.3) -> tuple[str, str]:
        """Stop as a user or a service manager would; the command must exit 0."""
        time.sleep(settle)  # let the last events reach the ring
        self.proc.send_signal(sig)
        return self.wait()

    def wait_lines(self, count: int, timeout: float = 30) -> None:
        """Until the tool has printed ``count`` lines on stdout (kept for ``stop()``)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()  # read raw: the text wrapper's buffer stays empty
        deadline = time.monotonic() + timeout
        while self.stdout_head.count(b"\n") < count:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 1 << 16) if ready else b""
            if not chunk:
                raise AssertionError(f"fewer than {count} lines: {self.stdout_head!r}")
            self.stdout_head += chunk

    def wait(self, timeout: float = 60) -> tuple[str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        out = self.stdout_head.decode() + out
        err = "".join(self.stderr_head) + err
        assert self.proc.returncode == 0, err
        assert "Traceback" not in err, err
        return out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def python(lab: Lab, netns: str, script: str, timeout: float = 60) -> str:
    return lab.run(netns, sys.executable, "-c", script, timeout=timeout).stdout


def send_udp(lab: Lab, netns: str, dst: str, port: int, count: int, size: int = 1,
             sport: int = 0) -> None:
    family = "AF_INET6" if ":" in dst else "AF_INET"
    python(lab, netns, f"import socket, time\n"
                       f"s = socket.socket(socket.{family}, socket.SOCK_DGRAM)\n"
                       f"s.bind(('', {sport}))\n"
                       f"for _ in range({count}):\n"
                       f"    s.sendto(b'x' * {size}, ('{dst}', {port}))\n"
                       f"    time.sleep(0.001)\n")


def nstat(lab: Lab, netns: str, *counters: str) -> dict[str, int]:
    """The kernel's own SNMP counters of a namespace (absolute values), from iproute2's nstat."""
    out = lab.run(netns, "nstat", "-asz", "--json", *counters).stdout
    data = json.loads(out)
    table = data.get("kernel", data)
    return {name: int(table.get(name, 0)) for name in counters}


def netbpf_programs(prefix: str) -> list[dict[str, object]]:
    return [p for p in bpftool_json("prog", "show") if str(p.get("name", "")).startswith(prefix)]


def wait_gone(prefix: str, timeout: float = 3) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    left = netbpf_programs(prefix)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = netbpf_programs(prefix)
    return left


def inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino
