"""A network namespace and cgroup v2 children of accel's own, for tests, the
benchmark and the demo.

The cgroup v2 root holds every process on the machine: accelerating it while
measuring would also change everybody else's local traffic. A sandbox makes
``{root}/netbpf-accel-{tag}/{name}`` for each cgroup it is asked for and a
namespace ``nbacc-{tag}`` with only ``lo`` (up), so that a capture on ``lo``
sees nothing but the sandbox's own traffic. Processes are started inside
both (setns and a write to ``cgroup.procs`` between fork and exec); ``down()``
kills what is left in its cgroups (``cgroup.kill``) and removes everything.
"""
from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...bpf import fs
from ...errors import NetbpfError
from ...libc import libc
from ...netns import CLONE_NEWNET, NETNS_RUN_DIR


class SandboxError(NetbpfError):
    pass


class Sandbox:
    def __init__(self, tag: str, cgroups: Sequence[str] = ("accel", "plain")) -> None:
        self.tag = tag
        self.netns = f"nbacc-{tag}"
        self.base = fs.cgroup2_root() / f"netbpf-accel-{tag}"
        self.cgroups = {name: self.base / name for name in cgroups}

    def up(self) -> Sandbox:
        try:
            subprocess.run(["ip", "netns", "add", self.netns], check=True, capture_output=True, text=True)
            subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True,
                           capture_output=True, text=True)
            self.base.mkdir()
            for path in self.cgroups.values():
                path.mkdir()
        except (subprocess.CalledProcessError, OSError) as e:
            self.down()
            detail = e.stderr.strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
            raise SandboxError(f"cannot make sandbox {self.tag}: {detail}") from e
        return self

    def __enter__(self) -> Sandbox:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    def preexec(self, cgroup: str | None, netns: bool = True) -> Callable[[], None]:
        """What a child runs before exec: enter the namespace, join the cgroup."""
        procs = str(self.cgroups[cgroup] / "cgroup.procs") if cgroup else None
        ns_path = str(NETNS_RUN_DIR / self.netns)

        def enter() -> None:
            if netns:
                fd = os.open(ns_path, os.O_RDONLY)
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    os._exit(126)
                os.close(fd)
            if procs:
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))
        return enter

    def popen(self, argv: Sequence[str], cgroup: str | None, netns: bool = True,
              **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(list(argv), preexec_fn=self.preexec(cgroup, netns), **kwargs)

    def run(self, argv: Sequence[str], cgroup: str | None, netns: bool = True, timeout: float = 60,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(list(argv), preexec_fn=self.preexec(cgroup, netns), timeout=timeout,
                              check=False, **kwargs)

    def kill(self) -> None:
        """Kill every process in the sandbox's cgroups, and wait until they are gone."""
        for path in self.cgroups.values():
            _kill(path)

    def down(self) -> None:
        for path in self.cgroups.values():
            _kill_and_remove(path)
        _kill_and_remove(self.base)
        if (NETNS_RUN_DIR / self.netns).exists():
            subprocess.run(["ip", "netns", "del", self.netns], check=False, capture_output=True)


def _kill(path: Path, timeout: float = 5) -> None:
    procs = path / "cgroup.procs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not procs.read_text().strip():
                return
            (path / "cgroup.kill").write_text("1")
        except OSError:
            return
        time.sleep(0.02)


def _kill_and_remove(path: Path) -> None:
    if not path.is_dir():
        return
    kill = path / "cgroup.kill"
    deadline = time.monotonic() + 5
    while True:
        try:
            path.rmdir()
            return
        except OSError:
            if time.monotonic() > deadline:
                return
        if kill.exists():
            try:
                kill.write_text("1")
            except OSError:
                pass
        time.sleep(0.05)
